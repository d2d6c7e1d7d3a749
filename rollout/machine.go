package rollout

import (
	"fmt"
	"time"

	"drover"
)

// This file holds the Machine itself: its state, the inputs (Ready, Report,
// Abort) and the bookkeeping every phase shares. What to do next is decided
// by the phase files: stage.go, promote.go, rollback.go; verdict.go ends it.

// phase is where a Machine is in its life.
type phase int

const (
	phaseInit     phase = iota // New returned; nothing decided until the first Ready
	phaseStage                 // ModeDeploy: staging every host
	phasePromote               // ModeDeploy: promoting group by group
	phaseRollback              // restoring hosts: after a halt, or ModeRollback
	phaseFinished              // verdict reached
)

// pathKind is the path a host is on.
type pathKind int

const (
	pathNone     pathKind = iota
	pathStage             // stage
	pathDeploy            // depool → switch → restart → check → repool
	pathRestore           // restore → restart → check → repool, after the host's own failure
	pathRepool            // repool, after a failed depool: the host was never switched
	pathRollback          // [depool] → restore → restart → check → repool, or repool alone
)

// restoring reports whether the path undoes this deploy. Restoring paths
// keep going after a halt: stopping a host half-way through its restore
// would leave it out of rotation or on the bad release.
func (k pathKind) restoring() bool {
	return k == pathRestore || k == pathRepool || k == pathRollback
}

// Machine decides a rollout. It is not safe for concurrent use: the runner
// owns it from one goroutine, feeds it results and hands its actions to
// workers.
type Machine struct {
	mode     Mode
	stagePar int
	groups   []*group
	hosts    []*host // plan order
	byName   map[string]*host

	// blueGreen: hosts take the blue/green paths bgp (bluegreen.go).
	blueGreen bool
	bgp       bgPaths

	phase      phase
	halted     bool   // ModeDeploy: limit exceeded or interrupted
	haltReason string // for Report.HaltReason
	stopped    bool   // interrupted while restoring: start no more hosts
	stopReason string
	// frozen: this process may no longer own the fleet (its deploy lock
	// was lost); no step of any kind starts, not even a rollback.
	frozen bool

	stageQueue []*host // ModeDeploy: every non-skipped host, plan order
	stageNext  int     // index into stageQueue of the next host to stage

	cur int // phasePromote: index of the group being promoted

	rbOrder []*group // phaseRollback: groups with hosts to restore, in restore order
	rbPos   int      // index into rbOrder of the group being restored

	issued  int      // actions decided and not yet reported (handed out or not)
	out     []Action // decided, not yet handed out by Ready
	notes   []Note   // not yet handed out by Ready
	verdict Verdict
}

// group is one group of the plan and its progress.
type group struct {
	plan     GroupPlan
	index    int
	hosts    []*host
	failures int // counted failures over the whole group, never per batch

	started bool    // group_start noted
	queue   []*host // hosts to promote, plan order
	next    int     // index into queue of the next batch
	batch   []*host // the batch being promoted

	rbQueue []*host // hosts to restore, in restore order
	rbNext  int     // index into rbQueue of the next host to start

	gatePos    int       // index into plan.Gates of the current gate
	gate       gateState // where the current gate is
	gateHanded bool      // the GateRun action was handed out by Ready
	waitUntil  time.Time // GateWait: when it passes
}

// host is one host and everything the Machine knows about it.
type host struct {
	plan   HostPlan
	group  *group
	status HostStatus
	reason string

	kind   pathKind
	path   []Step // remaining steps of kind; path[0] is in flight when issued
	issued bool   // path[0] decided and not yet reported
	handed bool   // path[0] handed out by Ready
	begun  bool   // a step of the current path has been reported

	staged bool // stage reported ok
	// switched is true once a switch was reported, whatever its outcome:
	// a switch that failed or timed out may have swapped the link before
	// it failed, and a host assumed unswitched would be left silently on
	// the bad release.
	switched bool
	restored bool // restore reported ok
	// startedIdle (blue/green) is true from a start_idle report, whatever
	// its outcome, until a stop_idle reports ok: a colour that may run.
	startedIdle bool
	// out is true from the moment a depool is decided until a repool is
	// reported ok: a failed depool may have half-happened, so the host
	// counts as out of rotation until it is repooled.
	out bool
}

// lost reports whether the host is handed to a person: nothing more is
// done to it.
func (h *host) lost() bool { return h.status == HostUnreachable || h.status == HostStuck }

// New validates p and returns a Machine for it. Errors are *drover.Error
// with code EINVALID: the plan is the runner's, so an invalid plan is a bug
// there, and nothing has been touched.
func New(p Plan) (*Machine, error) {
	if err := validate(p); err != nil {
		return nil, err
	}
	m := &Machine{mode: p.Mode, stagePar: p.StageParallelism, blueGreen: p.Strategy == StrategyBlueGreen, bgp: blueGreenPaths, byName: map[string]*host{}}
	for gi, gp := range p.Groups {
		g := &group{plan: gp, index: gi}
		for _, hp := range gp.Hosts {
			h := &host{plan: hp, group: g, status: HostPending}
			if hp.Skip {
				h.status = HostSkipped
			}
			g.hosts = append(g.hosts, h)
			m.hosts = append(m.hosts, h)
			m.byName[hp.Name] = h
		}
		m.groups = append(m.groups, g)
	}
	return m, nil
}

func validate(p Plan) error {
	invalid := func(format string, args ...any) error {
		return drover.Errorf(drover.EINVALID, "rollout plan: "+format, args...)
	}
	switch p.Mode {
	case ModeDeploy:
		if p.StageParallelism < 1 {
			return invalid("stage parallelism %d: must be at least 1", p.StageParallelism)
		}
	case ModeRollback:
		// Nothing is staged; StageParallelism is not used.
		if p.StageParallelism < 0 {
			return invalid("stage parallelism %d: must not be negative", p.StageParallelism)
		}
	default:
		return invalid("unknown mode %q (want %q or %q)", p.Mode, ModeDeploy, ModeRollback)
	}
	if !validStrategy(p.Strategy) {
		return invalid("unknown strategy %q (want %q or %q)", p.Strategy, StrategyRolling, StrategyBlueGreen)
	}
	groups := map[string]bool{}
	hosts := map[string]string{}
	for i, g := range p.Groups {
		if g.Name == "" {
			return invalid("group %d has no name", i+1)
		}
		if groups[g.Name] {
			return invalid("group %q appears twice", g.Name)
		}
		groups[g.Name] = true
		if g.Batch < 1 {
			return invalid("group %s: batch %d: must be at least 1", g.Name, g.Batch)
		}
		if g.FailureLimit < 0 {
			return invalid("group %s: failure limit %d: must not be negative", g.Name, g.FailureLimit)
		}
		for _, h := range g.Hosts {
			if h.Name == "" {
				return invalid("group %s: a host has no name", g.Name)
			}
			if other, ok := hosts[h.Name]; ok {
				return invalid("host %s is in group %s and in group %s", h.Name, other, g.Name)
			}
			hosts[h.Name] = g.Name
		}
	}
	return nil
}

// Ready returns the actions to start now and the notes produced since the
// previous call. Each action is handed out exactly once; the runner reports
// each with Report when it finishes.
func (m *Machine) Ready(now time.Time) Ready {
	m.step(now)
	rd := Ready{Actions: m.out, Notes: m.notes, Wake: m.wake()}
	for _, a := range m.out {
		if a.Step == StepGate {
			m.groups[m.cur].gateHanded = true
			continue
		}
		m.byName[a.Host].handed = true
	}
	m.out, m.notes = nil, nil
	return rd
}

// Report feeds the result of a finished step. It returns an *drover.Error
// with code EINTERNAL, and changes nothing, when no such step was handed
// out and is still in flight: that is a bug in the runner.
func (m *Machine) Report(now time.Time, r Result) error {
	if r.Step == StepGate {
		return m.reportGate(now, r)
	}
	h := m.byName[r.Host]
	switch {
	case h == nil:
		return drover.Errorf(drover.EINTERNAL, "rollout: result for unknown host %q", r.Host)
	case !h.issued || !h.handed:
		return drover.Errorf(drover.EINTERNAL, "rollout: result for host %s step %s, which is not in flight", r.Host, r.Step)
	case h.path[0] != r.Step:
		return drover.Errorf(drover.EINTERNAL, "rollout: result for host %s step %s, but its step in flight is %s", r.Host, r.Step, h.path[0])
	}
	switch r.Outcome {
	case OK, Failed, Unreachable:
	case NotRun:
		if !m.frozen {
			return drover.Errorf(drover.EINTERNAL, "rollout: host %s step %s reported not run, but the rollout is not frozen", r.Host, r.Step)
		}
		m.notRun(now, h)
		return nil
	default:
		return drover.Errorf(drover.EINTERNAL, "rollout: result for host %s step %s has unknown outcome %q", r.Host, r.Step, r.Outcome)
	}

	h.issued, h.handed, h.begun = false, false, true
	m.issued--
	switch {
	case r.Step == StepStage && r.Outcome == OK:
		h.staged = true
	case r.Step == StepSwitch:
		h.switched = r.Outcome == OK || !r.Unchanged
	case r.Step == StepRestore && r.Outcome == OK:
		h.restored = true
	case r.Step == StepStartIdle:
		h.startedIdle = true
	case r.Step == StepStopIdle && r.Outcome == OK:
		h.startedIdle = false
	case r.Step == StepRepool && r.Outcome == OK:
		h.out = false
	}
	if r.Outcome == OK {
		h.path = h.path[1:]
		m.advance(now, h)
	} else {
		m.fail(now, h, r)
	}
	m.step(now)
	return nil
}

// Abort is an operator's interrupt. During a deploy it is the same as
// exceeding a failure limit: halt, let running steps finish, roll back. Once
// the Machine is restoring (a rollback after a halt, or ModeRollback), it
// stops starting hosts: those already being restored finish their restore
// path, the rest stay where they are and the verdict needs a person.
func (m *Machine) Abort(now time.Time, reason string) {
	if reason == "" {
		reason = "aborted"
	}
	switch {
	case m.phase == phaseFinished || m.stopped:
		return
	case m.mode == ModeDeploy && !m.halted:
		m.halt(now, reason)
	default:
		m.stop(now, reason)
	}
	m.step(now)
}

// Halt stops the deploy for a reason no host's step reported: a failed
// analysis running in the background, say. During a deploy it is the same
// as exceeding a failure limit; afterwards it does nothing.
func (m *Machine) Halt(now time.Time, reason string) {
	if m.mode != ModeDeploy || m.halted || m.frozen || m.phase == phaseFinished {
		return
	}
	m.halt(now, reason)
	m.step(now)
}

// Freeze stops the rollout without a rollback of its own: steps already
// handed out finish and are reported, nothing else starts — no next step,
// no restore of a failed host, no rollback — and the verdict needs a
// person. It is for a runner that lost its deploy lock: another process may
// hold it now and be recovering this very deploy from the journal, and two
// actors restoring one host (or one deploying while the other restores)
// is how a host ends on a release nobody recorded. Leaving every host
// exactly where it is lets the new holder's recovery, which trusts the
// journal and not this process, put it back. Freeze wins over everything
// and cannot be undone; after the verdict it does nothing.
func (m *Machine) Freeze(now time.Time, reason string) {
	if m.phase == phaseFinished || m.frozen {
		return
	}
	if reason == "" {
		reason = "lost the deploy lock"
	}
	m.frozen, m.stopped, m.stopReason = true, true, reason
	if m.haltReason == "" {
		m.haltReason = reason
	} else {
		m.haltReason += "; then " + reason
	}
	m.notes = append(m.notes, Note{Time: now, Kind: NoteFreeze, Message: "frozen: " + reason + ": steps in flight finish, no step starts, nothing is rolled back"})
	m.withdraw(func(*host) bool { return true })
	m.step(now)
}

// notRun takes back a step handed out and never started (frozen): the host
// is exactly as before it, and takes no further step.
func (m *Machine) notRun(now time.Time, h *host) {
	if h.path[0] == StepDepool {
		// A depool is decided only for a host in rotation.
		h.out = false
	}
	h.issued, h.handed = false, false
	h.kind, h.path = pathNone, nil
	m.issued--
	m.step(now)
}

func errNotInFlight(r Result) error {
	return drover.Errorf(drover.EINTERNAL, "rollout: result for gate %q of step %s, which is not in flight", r.Gate, r.Step)
}

// InFlight returns how many handed-out actions have not been reported.
func (m *Machine) InFlight() int { return m.issued - len(m.out) }

// Done reports whether the rollout is over: a verdict is reached, nothing is
// in flight and every action and note has been handed out by Ready.
func (m *Machine) Done() bool {
	return m.phase == phaseFinished && m.issued == 0 && len(m.out) == 0 && len(m.notes) == 0
}

// step makes every decision the current state allows: it starts hosts,
// moves between phases and reaches the verdict.
func (m *Machine) step(now time.Time) {
	if m.frozen {
		// Nothing is decided any more; the verdict comes once the last
		// step in flight has reported.
		if m.phase != phaseFinished && m.issued == 0 {
			m.finish(now)
		}
		return
	}
	for {
		var moved bool
		switch m.phase {
		case phaseInit:
			moved = m.begin(now)
		case phaseStage:
			moved = m.stepStage(now)
		case phasePromote:
			moved = m.stepPromote(now)
		case phaseRollback:
			moved = m.stepRollback(now)
		case phaseFinished:
			return
		}
		if !moved {
			return
		}
	}
}

func (m *Machine) begin(now time.Time) bool {
	if m.mode == ModeRollback {
		m.startModeRollback(now)
	} else {
		m.startStage(now)
	}
	return true
}

// start puts h on a path and issues its first step.
func (m *Machine) start(h *host, kind pathKind, path ...Step) {
	h.kind, h.path, h.begun = kind, path, false
	m.issue(h)
}

// issue decides h's next step.
func (m *Machine) issue(h *host) {
	a := Action{Host: h.plan.Name, Group: h.group.plan.Name, Step: h.path[0], Restoring: h.kind.restoring()}
	h.issued = true
	m.issued++
	if a.Step == StepDepool {
		h.out = true
	}
	m.out = append(m.out, a)
}

// advance moves h on after a step went well.
func (m *Machine) advance(now time.Time, h *host) {
	if len(h.path) == 0 {
		m.complete(now, h)
		return
	}
	// After a halt no host takes another step towards the new release:
	// its step in flight finished, it waits for the rollback. Frozen, no
	// host takes any step: it stays where it is for the lock's new holder.
	if m.frozen || (m.halted && !h.kind.restoring()) {
		return
	}
	m.issue(h)
}

// complete ends h's path after its last step went well.
func (m *Machine) complete(now time.Time, h *host) {
	kind := h.kind
	h.kind, h.path = pathNone, nil
	switch kind {
	case pathDeploy:
		h.status = HostDone
		m.note(now, NoteHostDone, h, "on the new release")
	case pathRestore:
		m.note(now, NoteHostRestored, h, "restored to "+h.from())
	case pathRepool:
		m.note(now, NoteHostRestored, h, "repooled; never switched")
	case pathRollback:
		if m.mode == ModeRollback || h.switched {
			h.status = HostRolledBack
			m.note(now, NoteHostRolledBack, h, "back on "+h.from())
		} else {
			m.note(now, NoteHostRestored, h, "repooled; never switched")
		}
	}
}

// fail handles a step that did not go well.
func (m *Machine) fail(now time.Time, h *host, r Result) {
	what := describe(r)
	kind := h.kind
	h.kind, h.path = pathNone, nil
	switch kind {
	case pathStage:
		h.status, h.reason = lostOr(r.Outcome, HostFailed), what
		m.countFailure(now, h, what)
	case pathDeploy:
		h.status, h.reason = lostOr(r.Outcome, HostFailed), what
		// The host's own undo starts before the limit is checked, and
		// goes on after a halt: a host that just failed its check is
		// serving (or about to serve) the bad release.
		switch {
		case r.Outcome == Unreachable, m.frozen:
			// Frozen: the host's own undo is the new lock holder's.
		case m.blueGreen:
			m.start(h, pathRestore, m.bgUndo(h)...)
		case r.Step == StepDepool, r.Step == StepSwitch && !h.switched:
			// Never switched: only put back what the depool may have
			// half-done, so no host stays out of rotation.
			m.start(h, pathRepool, StepRepool)
		default:
			// Already out of rotation: no depool.
			m.start(h, pathRestore, StepRestore, StepRestart, StepCheck, StepRepool)
		}
		m.countFailure(now, h, what)
	default:
		// A restoring path failed: the host is in a state this Machine
		// can no longer reason about.
		h.status = lostOr(r.Outcome, HostStuck)
		if kind == pathRollback {
			h.reason = joinReason(h.reason, "while rolling back: "+what)
		} else {
			h.reason = joinReason(h.reason, "while restoring: "+what)
		}
		m.note(now, NoteHostStuck, h, h.reason+"; needs a person")
	}
}

// lostOr returns HostUnreachable for an unreachable outcome, else st.
func lostOr(o Outcome, st HostStatus) HostStatus {
	if o == Unreachable {
		return HostUnreachable
	}
	return st
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// describe says what went wrong in a result: "check: 503", "switch failed",
// "restart: unreachable: no route to host".
func describe(r Result) string {
	switch {
	case r.Outcome == Unreachable && r.Reason == "":
		return string(r.Step) + ": unreachable"
	case r.Outcome == Unreachable:
		return string(r.Step) + ": unreachable: " + r.Reason
	case r.Reason == "":
		return string(r.Step) + " failed"
	default:
		return string(r.Step) + ": " + r.Reason
	}
}

// from names the release h was on before, for people.
func (h *host) from() string {
	if h.plan.From == "" {
		return "none"
	}
	return h.plan.From
}

func (m *Machine) note(now time.Time, kind NoteKind, h *host, msg string) {
	n := Note{Time: now, Kind: kind, Message: msg}
	if h != nil {
		n.Host, n.Group = h.plan.Name, h.group.plan.Name
	}
	m.notes = append(m.notes, n)
}

func (m *Machine) groupNote(now time.Time, kind NoteKind, g *group, format string, args ...any) {
	m.notes = append(m.notes, Note{Time: now, Kind: kind, Group: g.plan.Name, Message: fmt.Sprintf(format, args...)})
}

// gateNote is a note about gate of group g.
func (m *Machine) gateNote(now time.Time, kind NoteKind, g *group, gate, format string, args ...any) {
	m.notes = append(m.notes, Note{Time: now, Kind: kind, Group: g.plan.Name, Gate: gate, Message: fmt.Sprintf(format, args...)})
}
