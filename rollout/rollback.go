package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file decides halting and rolling back: what a halt stops, which hosts
// go back, in which order and how many at once. ModeRollback uses the same
// machinery for every host of its plan.

// halt stops the deploy: no host takes another step towards the new
// release. Steps already handed out finish; steps decided but not yet handed
// out are withdrawn, so that nothing the runner has not started yet moves a
// host further onto a release that was just found bad. Restoring steps are
// kept: they take hosts back.
func (m *Machine) halt(now time.Time, reason string) {
	m.halted, m.haltReason = true, reason
	m.notes = append(m.notes, Note{Time: now, Kind: NoteHalt, Message: reason})
	m.withdraw(func(h *host) bool { return !h.kind.restoring() })
}

// stop is an interrupt while restoring: hosts already being restored finish
// their restore path — one cut off half-way would be out of rotation or on
// a release nobody checked — and no other host starts.
func (m *Machine) stop(now time.Time, reason string) {
	m.stopped, m.stopReason = true, reason
	if m.haltReason == "" {
		m.haltReason = reason
	} else {
		m.haltReason += "; then " + reason
	}
	kind := NoteAbort
	if m.mode == ModeRollback {
		kind = NoteHalt
	}
	m.notes = append(m.notes, Note{Time: now, Kind: kind, Message: "rollback stopped: " + reason + ": hosts restoring finish, no other host starts"})
	m.withdraw(func(h *host) bool { return h.kind == pathRollback && !h.begun })
}

// withdraw takes back decided actions that were not handed out yet, of
// hosts for which drop is true. Such a host stays where it is.
func (m *Machine) withdraw(drop func(*host) bool) {
	kept := m.out[:0]
	for _, a := range m.out {
		if a.Step == StepGate {
			// A gate not yet run is moot once the deploy halts.
			m.issued--
			m.groups[m.cur].gate = gateIdle
			continue
		}
		h := m.byName[a.Host]
		if !drop(h) {
			kept = append(kept, a)
			continue
		}
		h.issued = false
		m.issued--
		if h.kind == pathRollback {
			// Never started: the host is exactly as before.
			h.kind, h.path = pathNone, nil
			if a.Step == StepDepool {
				h.out = false
			}
		} else if a.Step == StepDepool {
			// The depool was never run: the host is in rotation.
			h.out = false
		}
	}
	m.out = kept
}

// startRollback decides, once nothing is in flight after a halt, which hosts
// go back to their pre-deploy snapshot.
//
// Every host this deploy switched goes back, in every group, including
// canaries that finished and passed their checks: a canary left on the bad
// release keeps serving it after everyone believes the deploy was undone.
// Groups go in reverse order, the group that was running first: its hosts
// are the ones out of rotation or half-switched, and undoing in the reverse
// order of doing is what Scap's rollback does.
func (m *Machine) startRollback(now time.Time) {
	if m.stopped {
		// Interrupted again before the rollback began: leave every
		// host where it is, for a person.
		m.finish(now)
		return
	}
	total := 0
	var parts []string
	for gi := min(m.cur, len(m.groups)-1); gi >= 0; gi-- {
		g := m.groups[gi]
		if m.mutant == mutantSpareFinished && gi < m.cur {
			continue
		}
		// Hosts out of rotation come first so that, with at most Batch
		// hosts restoring at once, the group never has more than Batch
		// hosts out of rotation.
		var out, in []*host
		for _, h := range g.hosts {
			if h.kind != pathNone {
				// Frozen half-way on the deploy path by the halt.
				h.kind, h.path = pathNone, nil
			}
			switch {
			case h.plan.Skip || h.lost():
				// Unreachable hosts are skipped, not waited for: a
				// rollback blocked on a dead host leaves every other
				// host on the bad release. They are reported.
			case h.out:
				out = append(out, h)
			case h.switched && !h.restored, m.bgNeedsRollback(h):
				in = append(in, h)
			}
		}
		g.rbQueue = append(out, in...)
		if len(g.rbQueue) > 0 {
			m.rbOrder = append(m.rbOrder, g)
			total += len(g.rbQueue)
			parts = append(parts, fmt.Sprintf("%s %d", g.plan.Name, len(g.rbQueue)))
		}
	}
	if m.mutant == mutantForwardRollback {
		slices.Reverse(m.rbOrder)
	}
	if total == 0 {
		m.finish(now)
		return
	}
	m.phase = phaseRollback
	m.notes = append(m.notes, Note{Time: now, Kind: NoteRollbackStart,
		Message: fmt.Sprintf("rolling back %s: %s", plural(total, "host"), strings.Join(parts, ", "))})
}

// startModeRollback queues every non-skipped host, groups in reverse order.
func (m *Machine) startModeRollback(now time.Time) {
	total := 0
	var parts []string
	for gi := len(m.groups) - 1; gi >= 0; gi-- {
		g := m.groups[gi]
		for _, h := range g.hosts {
			if !h.plan.Skip {
				g.rbQueue = append(g.rbQueue, h)
			}
		}
		if len(g.rbQueue) > 0 {
			m.rbOrder = append(m.rbOrder, g)
			total += len(g.rbQueue)
			parts = append(parts, fmt.Sprintf("%s %d", g.plan.Name, len(g.rbQueue)))
		}
	}
	if m.stopped || total == 0 {
		m.finish(now)
		return
	}
	m.phase = phaseRollback
	m.notes = append(m.notes, Note{Time: now, Kind: NoteRollbackStart,
		Message: fmt.Sprintf("rolling back %s: %s", plural(total, "host"), strings.Join(parts, ", "))})
}

// stepRollback restores one group at a time, at most Batch hosts of it at
// once: a rollback that depools a whole group at once takes the service
// down while trying to save it.
func (m *Machine) stepRollback(now time.Time) bool {
	for ; m.rbPos < len(m.rbOrder); m.rbPos++ {
		g := m.rbOrder[m.rbPos]
		active := 0
		for _, h := range g.rbQueue {
			if h.kind == pathRollback {
				active++
			}
		}
		for !m.stopped && active < g.plan.Batch && g.rbNext < len(g.rbQueue) {
			h := g.rbQueue[g.rbNext]
			g.rbNext++
			m.start(h, pathRollback, m.rollbackPath(h)...)
			active++
		}
		if active > 0 {
			return false
		}
		if m.stopped {
			break
		}
	}
	m.finish(now)
	return true
}

// rollbackPath is what takes h back to its snapshot and into rotation.
func (m *Machine) rollbackPath(h *host) []Step {
	if m.blueGreen {
		return m.bgRollbackPath(h)
	}
	switch {
	case m.mode == ModeRollback:
		return []Step{StepDepool, StepRestore, StepRestart, StepCheck, StepRepool}
	case !h.switched:
		// Depooled, never switched: only back into rotation.
		return []Step{StepRepool}
	case h.out:
		// Already out of rotation: a second depool is pointless.
		return []Step{StepRestore, StepRestart, StepCheck, StepRepool}
	default:
		return []Step{StepDepool, StepRestore, StepRestart, StepCheck, StepRepool}
	}
}
