package rollout

import (
	"strconv"
	"strings"
	"time"
)

// This file decides how a rollout ended and what the final report says.

// finish reaches the verdict.
func (m *Machine) finish(now time.Time) {
	m.phase = phaseFinished
	for _, h := range m.hosts {
		h.kind, h.path = pathNone, nil
		if !m.stopped || h.plan.Skip || h.lost() {
			continue
		}
		// Interrupted while restoring: say which hosts were left how.
		var left []string
		switch {
		case (m.mode == ModeRollback && h.status == HostPending) || (m.mode == ModeDeploy && h.switched && !h.restored):
			left = append(left, "not rolled back")
		case m.frozen && h.status == HostPending && h.staged:
			left = append(left, "staged, not switched")
		}
		if h.out {
			left = append(left, "left out of rotation")
		}
		if len(left) > 0 {
			h.reason = joinReason(h.reason, strings.Join(left, ", ")+": "+m.stopReason)
		}
	}
	m.verdict = m.decideVerdict()
	m.notes = append(m.notes, Note{Time: now, Kind: NoteVerdict, Verdict: m.verdict, Message: string(m.verdict) + ": " + m.summary(m.hosts)})
}

// decideVerdict maps the hosts' standing to a verdict. Needing a person
// wins over everything: an exit code that says "rolled back" while a host
// is unreachable, stuck, out of rotation or still on the new release after
// a halt sends everyone home with the fleet in a state nobody chose.
func (m *Machine) decideVerdict() Verdict {
	if m.frozen {
		// Whatever the hosts look like, this process no longer owns
		// them: the lock's holder decides, a person confirms.
		return NeedsPerson
	}
	if m.mode == ModeRollback {
		for _, h := range m.hosts {
			if !h.plan.Skip && h.status != HostRolledBack {
				return NeedsPerson
			}
		}
		return Succeeded
	}
	failed, switched := false, false
	for _, h := range m.hosts {
		switched = switched || h.switched
		switch {
		case h.lost():
			return NeedsPerson
		case h.out:
			return NeedsPerson
		case m.halted && h.switched && !h.restored:
			return NeedsPerson
		case h.status == HostFailed:
			failed = true
		}
	}
	switch {
	case m.halted && !switched:
		// Nothing to roll back: saying "rolled back" about hosts that
		// only failed staging, on a first deploy with no previous
		// release, sends a person looking for a rollback that never was.
		return Halted
	case m.halted:
		return RolledBack
	case failed:
		return Partial
	default:
		return Succeeded
	}
}

// Outcome returns the report: the verdict (Running until the end), why the
// deploy halted, and every host's standing in plan order.
func (m *Machine) Outcome() Report {
	r := Report{Verdict: m.verdict, HaltReason: m.haltReason}
	if m.phase != phaseFinished {
		r.Verdict = Running
	}
	for _, h := range m.hosts {
		r.Hosts = append(r.Hosts, HostReport{Name: h.plan.Name, Group: h.group.plan.Name, Status: h.status, Switched: h.switched, Reason: h.reason, From: h.plan.From})
	}
	return r
}

// statusOrder is the order of statuses in summaries.
var statusOrder = []HostStatus{HostDone, HostFailed, HostRolledBack, HostStuck, HostUnreachable, HostPending, HostSkipped}

// summary counts hosts by status: "3 done, 1 failed, 1 skipped".
func (m *Machine) summary(hosts []*host) string {
	count := map[HostStatus]int{}
	for _, h := range hosts {
		count[h.status]++
	}
	var parts []string
	for _, st := range statusOrder {
		if count[st] > 0 {
			parts = append(parts, itoa(count[st])+" "+strings.ReplaceAll(string(st), "_", " "))
		}
	}
	if len(parts) == 0 {
		return "no hosts"
	}
	return strings.Join(parts, ", ")
}

func (m *Machine) groupSummary(g *group) string { return m.summary(g.hosts) }

func itoa(n int) string { return strconv.Itoa(n) }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return itoa(n) + " " + word + "s"
}
