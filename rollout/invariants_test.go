package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// harness wraps a Machine and checks, on every call, the invariants that
// hold whatever the plan and whatever the hosts answer. The golden scenario
// tests and the property tests both drive machines through it, so a
// scenario file that encodes a wrong trace still fails on the invariant.
//
// The invariants:
//   - skipped hosts never get an action; every action names its host's
//     group; a host has at most one step in flight;
//   - no promote-path action before every non-skipped host finished
//     staging, none for a host that failed staging, at most
//     StageParallelism stages in flight;
//   - at no time are more than Batch hosts of a group out of rotation
//     (from the depool's start until a repool reports ok; hosts handed to
//     a person — stuck or unreachable — no longer count), rollback included;
//   - promotion goes in plan order, and a group starts only when the
//     groups before it have nothing in flight and nothing out of rotation;
//   - after a halt no deploy-path step (stage, depool, switch, restart,
//     check, repool) is handed out, not even in the Ready that reports the
//     halt; a halt is reported in the Ready after the failure that exceeded
//     the limit, and only then or after an Abort;
//   - the rollback restores groups in reverse order;
//   - after a Freeze no action at all is handed out, not even one decided
//     before it, and the verdict needs a person;
//   - every note carries the `now` of one of the calls since the last Ready;
//   - at the end: the verdict agrees with what the hosts went through, every
//     switched host is back on its snapshot after a halt (unless stuck,
//     unreachable or a second interrupt stopped the rollback), no host is
//     left out of rotation, Done hosts went the whole deploy path.
type harness struct {
	m    *Machine
	plan Plan
	errs []string
	log  []string // what happened, for failure messages

	hosts  map[string]*hostTrack
	order  []string // plan order
	groups []groupTrack

	nows        []time.Time // passed in since the last Ready
	inflight    map[string]Action
	handedOut   []Action // every action, in order
	halted      bool
	expectHalt  string // why the next Ready must report a halt
	aborts      int
	stopped     bool // an abort after the halt
	frozen      bool // Freeze was called before the verdict
	rollingBack bool
	lastRbGroup int
	lastDepool  int // plan index of the last deploy-path depool
	stagesLeft  int
	stageFlight int
	waitStart   map[string]time.Time // group/gate → when its wait began
	bg          map[string]*bgHost   // blue/green rules (bluegreen_test.go)
}

type groupTrack struct {
	plan     GroupPlan
	failures int
}

type hostTrack struct {
	plan      HostPlan
	group     int
	index     int
	actions   int
	out       bool // depool handed out, no repool ok since
	lost      bool // unreachable, or a restoring step failed
	switched  bool // a switch was handed out
	restored  bool // a restore reported ok after the switch
	stageOK   bool
	staged    bool // stage reported
	failed    bool // counted a failure
	deployOK  []Step
	rbStarted bool
}

func newHarness(p Plan) (*harness, error) {
	m, err := New(p)
	if err != nil {
		return nil, err
	}
	h := &harness{m: m, plan: p, hosts: map[string]*hostTrack{}, inflight: map[string]Action{}, lastRbGroup: len(p.Groups), lastDepool: -1, waitStart: map[string]time.Time{}}
	for gi, g := range p.Groups {
		h.groups = append(h.groups, groupTrack{plan: g})
		for _, hp := range g.Hosts {
			h.hosts[hp.Name] = &hostTrack{plan: hp, group: gi, index: len(h.order)}
			h.order = append(h.order, hp.Name)
			if !hp.Skip && p.Mode == ModeDeploy {
				h.stagesLeft++
			}
		}
	}
	return h, nil
}

func (h *harness) errorf(format string, args ...any) {
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
}

func (h *harness) ready(now time.Time) Ready {
	h.nows = append(h.nows, now)
	rd := h.m.Ready(now)
	for _, n := range rd.Notes {
		h.log = append(h.log, formatNote(n))
		if !slices.ContainsFunc(h.nows, n.Time.Equal) {
			h.errorf("note %s %q has time %v, not the now of any call since the last Ready %v", n.Kind, n.Message, n.Time, h.nows)
		}
		switch n.Kind {
		case NoteHalt:
			if h.plan.Mode == ModeDeploy && !h.halted {
				if h.expectHalt == "" && h.aborts == 0 {
					h.errorf("halt %q without an abort and with no group past its limit", n.Message)
				}
				h.halted = true
				h.expectHalt = ""
			}
		case NoteRollbackStart:
			h.rollingBack = true
		case NoteGateStart, NoteGateDone:
			h.checkWait(n)
		}
	}
	if h.expectHalt != "" && !h.halted {
		h.errorf("no halt reported after %s", h.expectHalt)
		h.expectHalt = ""
	}
	h.nows = nil
	if h.frozen && len(rd.Actions) > 0 {
		h.errorf("%d actions handed out after a freeze, first %s %s", len(rd.Actions), rd.Actions[0].Host, rd.Actions[0].Step)
	}
	for _, a := range rd.Actions {
		h.action(a)
	}
	return rd
}

// freeze calls Freeze: from here on nothing is handed out, and whatever
// the hosts went through the verdict needs a person.
func (h *harness) freeze(now time.Time, reason string) {
	h.nows = append(h.nows, now)
	finished := h.m.Outcome().Verdict != Running
	h.m.Freeze(now, reason)
	h.log = append(h.log, "freeze "+reason)
	if finished {
		return
	}
	h.frozen = true
	// Hosts stay where they are: out of rotation or switched without a
	// rollback is what a freeze leaves, for the lock's new holder.
	h.stopped = true
}

// gateAction checks a gate handed out: only in a deploy, never after a
// halt, only once every host of its group (and of the groups before it) is
// done with its path and back in rotation.
func (h *harness) gateAction(a Action) {
	h.handedOut = append(h.handedOut, a)
	h.log = append(h.log, fmt.Sprintf("> @%s gate %s", a.Group, a.Gate))
	key := "@" + a.Group
	if prev, ok := h.inflight[key]; ok {
		h.errorf("gate %s of %s handed out while gate %s is in flight", a.Gate, a.Group, prev.Gate)
	}
	h.inflight[key] = a
	if h.plan.Mode != ModeDeploy {
		h.errorf("gate %s handed out in mode %s", a.Gate, h.plan.Mode)
	}
	if h.halted {
		h.errorf("after the halt: gate %s of %s", a.Gate, a.Group)
	}
	gi := -1
	for i, g := range h.plan.Groups {
		if g.Name == a.Group {
			gi = i
		}
	}
	if gi < 0 {
		h.errorf("gate %s names unknown group %q", a.Gate, a.Group)
		return
	}
	for _, name := range h.order {
		o := h.hosts[name]
		_, busy := h.inflight[name]
		if o.group <= gi && (busy || (o.out && !o.lost)) {
			h.errorf("gate %s of %s while host %s is busy or out of rotation", a.Gate, a.Group, name)
		}
	}
}

func (h *harness) action(a Action) {
	if a.Step == StepGate {
		h.gateAction(a)
		return
	}
	t := h.hosts[a.Host]
	if t == nil {
		h.errorf("action for unknown host %s", a.Host)
		return
	}
	h.handedOut = append(h.handedOut, a)
	h.log = append(h.log, fmt.Sprintf("> %s %s restoring=%v", a.Host, a.Step, a.Restoring))
	t.actions++
	if t.plan.Skip {
		h.errorf("skipped host %s got %s", a.Host, a.Step)
	}
	if g := h.plan.Groups[t.group].Name; a.Group != g {
		h.errorf("action %s %s names group %q, host is in %q", a.Host, a.Step, a.Group, g)
	}
	if prev, ok := h.inflight[a.Host]; ok {
		h.errorf("host %s got %s while %s is in flight", a.Host, a.Step, prev.Step)
	}
	h.inflight[a.Host] = a
	if t.lost {
		h.errorf("host %s got %s after it was handed to a person", a.Host, a.Step)
	}
	if h.plan.Mode == ModeRollback && !a.Restoring {
		h.errorf("rollback mode handed out deploy-path %s %s", a.Host, a.Step)
	}
	if !a.Restoring && h.halted {
		h.errorf("after the halt: deploy-path %s %s", a.Host, a.Step)
	}
	if a.Restoring && a.Step == StepStage {
		h.errorf("restoring stage for %s", a.Host)
	}
	switch {
	case a.Step == StepStage:
		h.stageFlight++
		if h.stageFlight > h.plan.StageParallelism {
			h.errorf("%d stages in flight > stage parallelism %d", h.stageFlight, h.plan.StageParallelism)
		}
	case !a.Restoring:
		if h.stagesLeft > 0 {
			h.errorf("promote-path %s %s while %d hosts have not finished staging", a.Host, a.Step, h.stagesLeft)
		}
		if !t.stageOK {
			h.errorf("promote-path %s %s for a host that did not stage", a.Host, a.Step)
		}
		if a.Step == StepDepool {
			if t.index <= h.lastDepool {
				h.errorf("deploy depool of %s out of plan order", a.Host)
			}
			h.lastDepool = t.index
			for _, name := range h.order {
				o := h.hosts[name]
				_, busy := h.inflight[name]
				if o.group < t.group && (busy || (o.out && !o.lost)) {
					h.errorf("group %s started while %s of an earlier group is busy", a.Group, name)
				}
			}
		}
	}
	if a.Restoring && (h.rollingBack || h.plan.Mode == ModeRollback) && !t.rbStarted {
		t.rbStarted = true
		if t.group > h.lastRbGroup {
			h.errorf("rollback of %s (group %d) after a later group %d: not in reverse order", a.Host, t.group, h.lastRbGroup)
		}
		h.lastRbGroup = t.group
	}
	h.bgAction(a, t)
	if a.Step == StepSwitch {
		t.switched = true
		t.restored = false
	}
	if a.Step == StepDepool {
		if t.out {
			h.errorf("depool of %s, which is already out of rotation", a.Host)
		}
		t.out = true
		n := 0
		for _, name := range h.order {
			if o := h.hosts[name]; o.group == t.group && o.out && !o.lost {
				n++
			}
		}
		if n > h.plan.Groups[t.group].Batch {
			h.errorf("%d hosts of group %s out of rotation > batch %d", n, a.Group, h.plan.Groups[t.group].Batch)
		}
	}
}

// report feeds a result; it returns the Machine's error.
func (h *harness) report(now time.Time, r Result) error {
	h.nows = append(h.nows, now)
	if r.Step == StepGate {
		return h.reportGate(now, r)
	}
	a, ok := h.inflight[r.Host]
	before := h.m.Outcome()
	inflight := h.m.InFlight()
	err := h.m.Report(now, r)
	h.log = append(h.log, fmt.Sprintf("< %s %s %s %q (err=%v)", r.Host, r.Step, r.Outcome, r.Reason, err))
	if !ok || a.Step != r.Step || (r.Outcome != OK && r.Outcome != Failed && r.Outcome != Unreachable && !(r.Outcome == NotRun && h.frozen)) {
		if err == nil {
			h.errorf("Report accepted %+v, which is not in flight", r)
		}
		if !slices.EqualFunc(before.Hosts, h.m.Outcome().Hosts, func(a, b HostReport) bool { return a == b }) || h.m.InFlight() != inflight {
			h.errorf("a rejected Report changed the machine")
		}
		return err
	}
	if err != nil {
		h.errorf("Report rejected %+v: %v", r, err)
		return err
	}
	delete(h.inflight, r.Host)
	t := h.hosts[r.Host]
	if r.Outcome == NotRun {
		// Never started: the host is as before the step.
		switch a.Step {
		case StepStage:
			h.stageFlight--
			h.stagesLeft--
		case StepDepool:
			t.out = false
		case StepSwitch:
			t.switched = false
		}
		return nil
	}
	h.bgReport(a, r)
	switch {
	case a.Step == StepStage:
		h.stageFlight--
		h.stagesLeft--
		t.staged = true
		t.stageOK = r.Outcome == OK
	case a.Step == StepRepool && r.Outcome == OK:
		t.out = false
	case a.Step == StepRestore && r.Outcome == OK:
		t.restored = true
	}
	if r.Outcome == Unreachable || (r.Outcome == Failed && a.Restoring) {
		t.lost = true
	}
	if !a.Restoring && r.Outcome == OK {
		t.deployOK = append(t.deployOK, a.Step)
	}
	if h.plan.Mode == ModeDeploy && !a.Restoring && r.Outcome != OK {
		if t.failed {
			h.errorf("host %s failed twice on the deploy path", r.Host)
		}
		t.failed = true
		g := &h.groups[t.group]
		g.failures++
		if g.failures > g.plan.FailureLimit && !h.halted && !h.frozen && h.expectHalt == "" {
			h.expectHalt = fmt.Sprintf("%s %s %s (%d > %d)", r.Host, r.Step, r.Outcome, g.failures, g.plan.FailureLimit)
		}
	}
	return nil
}

func (h *harness) abort(now time.Time, reason string) {
	h.nows = append(h.nows, now)
	finished := h.m.Outcome().Verdict != Running
	h.m.Abort(now, reason)
	h.log = append(h.log, "abort "+reason)
	if finished || h.frozen {
		return
	}
	h.aborts++
	// A failure past the limit already halted the machine, though the
	// halt note waits for the next Ready: this interrupt stops the rollback.
	if h.halted || h.expectHalt != "" || h.plan.Mode == ModeRollback {
		h.stopped = true
	} else {
		h.expectHalt = "abort"
	}
}

// final checks the end state; call it once Done.
func (h *harness) final() {
	m := h.m
	if !m.Done() {
		h.errorf("final: not done")
	}
	if m.InFlight() != 0 || len(h.inflight) != 0 {
		h.errorf("final: %d in flight by the machine, %d by the harness", m.InFlight(), len(h.inflight))
	}
	rep := m.Outcome()
	if rep.Verdict == Running {
		h.errorf("final: verdict still running")
	}
	if len(rep.Hosts) != len(h.order) {
		h.errorf("final: %d hosts in the report, plan has %d", len(rep.Hosts), len(h.order))
		return
	}
	needsPerson := false
	anyFailed := false
	anySwitched := false
	for i, hr := range rep.Hosts {
		t := h.hosts[h.order[i]]
		if hr.Name != t.plan.Name || hr.Group != h.plan.Groups[t.group].Name {
			h.errorf("final: report host %d is %s/%s, plan has %s", i, hr.Group, hr.Name, t.plan.Name)
			continue
		}
		if t.plan.Skip != (hr.Status == HostSkipped) {
			h.errorf("final: %s skip=%v status %s", hr.Name, t.plan.Skip, hr.Status)
		}
		if t.lost != (hr.Status == HostStuck || hr.Status == HostUnreachable) {
			h.errorf("final: %s lost=%v status %s", hr.Name, t.lost, hr.Status)
		}
		if h.plan.Mode == ModeDeploy && hr.Switched != t.switched {
			h.errorf("final: %s switched=%v, saw a switch: %v", hr.Name, hr.Switched, t.switched)
		}
		anySwitched = anySwitched || t.switched
		if t.out && !t.lost {
			if !h.stopped {
				h.errorf("final: %s left out of rotation", hr.Name)
			}
			needsPerson = true
		}
		if t.lost {
			needsPerson = true
		}
		switch hr.Status {
		case HostDone:
			if !slices.Equal(t.deployOK, h.donePath()) {
				h.errorf("final: %s done after deploy steps %v", hr.Name, t.deployOK)
			}
		case HostRolledBack:
			if !t.restored || t.out {
				h.errorf("final: %s rolled back but restored=%v out=%v", hr.Name, t.restored, t.out)
			}
		case HostFailed:
			anyFailed = true
			if !t.failed {
				h.errorf("final: %s failed without a counted failure", hr.Name)
			}
			if t.switched && !t.restored && !h.frozen {
				h.errorf("final: %s failed after a switch and was not restored", hr.Name)
			}
		case HostPending:
			if h.plan.Mode == ModeDeploy && t.switched && !h.stopped {
				h.errorf("final: %s pending after a switch", hr.Name)
			}
			if h.plan.Mode == ModeRollback && !h.stopped {
				h.errorf("final: %s never rolled back", hr.Name)
			}
		}
		if h.plan.Mode == ModeDeploy && h.halted && t.switched && !t.restored && !t.lost {
			if !h.stopped {
				h.errorf("final: %s switched and not rolled back after the halt", hr.Name)
			}
			needsPerson = true
		}
		if h.plan.Mode == ModeRollback && !t.plan.Skip && hr.Status != HostRolledBack {
			needsPerson = true
		}
	}
	h.bgFinal()
	var want Verdict
	switch {
	case needsPerson, h.frozen:
		want = NeedsPerson
	case h.plan.Mode == ModeRollback:
		want = Succeeded
	case h.halted && !anySwitched:
		// Halted before any host switched: nothing to roll back.
		want = Halted
	case h.halted:
		want = RolledBack
	case anyFailed:
		want = Partial
	default:
		want = Succeeded
	}
	if rep.Verdict != want {
		h.errorf("final: verdict %s, want %s", rep.Verdict, want)
	}
	if (rep.HaltReason != "") != (h.halted || h.frozen || (h.plan.Mode == ModeRollback && h.stopped)) {
		h.errorf("final: halt reason %q, halted %v", rep.HaltReason, h.halted)
	}
}

// reportGate feeds a gate's result. The gate in flight is found by name.
func (h *harness) reportGate(now time.Time, r Result) error {
	key := ""
	for k, a := range h.inflight {
		if a.Step == StepGate && a.Gate == r.Gate {
			key = k
		}
	}
	inflight := h.m.InFlight()
	err := h.m.Report(now, r)
	h.log = append(h.log, fmt.Sprintf("< gate %s %s %q (err=%v)", r.Gate, r.Outcome, r.Reason, err))
	valid := r.Outcome == OK || r.Outcome == Failed || r.Outcome == Unreachable || (r.Outcome == NotRun && h.frozen)
	if key == "" || !valid {
		if err == nil {
			h.errorf("Report accepted gate result %+v, which is not in flight", r)
		}
		if h.m.InFlight() != inflight {
			h.errorf("a rejected gate Report changed the machine")
		}
		return err
	}
	if err != nil {
		h.errorf("Report rejected %+v: %v", r, err)
		return err
	}
	delete(h.inflight, key)
	if r.Outcome != OK && r.Outcome != NotRun && !h.halted && !h.frozen && h.expectHalt == "" {
		h.expectHalt = "gate " + r.Gate + " " + string(r.Outcome)
	}
	return nil
}

// checkWait: a wait gate passes no earlier than its wait after it began, and
// never after a halt.
func (h *harness) checkWait(n Note) {
	name, _, _ := strings.Cut(n.Message, ":")
	var gate *Gate
	for _, g := range h.plan.Groups {
		for i := range g.Gates {
			if g.Name == n.Group && g.Gates[i].Name == name && g.Gates[i].Kind == GateWait {
				gate = &g.Gates[i]
			}
		}
	}
	if gate == nil {
		return
	}
	key := n.Group + "/" + name
	if n.Kind == NoteGateStart {
		h.waitStart[key] = n.Time
		return
	}
	if h.halted {
		h.errorf("wait gate %s passed after the halt", key)
	}
	start, ok := h.waitStart[key]
	if !ok {
		h.errorf("wait gate %s passed without starting", key)
	} else if n.Time.Sub(start) < gate.Wait {
		h.errorf("wait gate %s passed after %s, before its %s", key, n.Time.Sub(start), gate.Wait)
	}
}
