package rollout

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// The blue/green rules of the invariant harness. They run on every
// scenario and property run; with strategy rolling they only check that no
// blue/green step is handed out.
//
//   - traffic never points at an unverified colour: a switch only after a
//     check of the new colour passed since it was started; a restore
//     (switch back) only after a check of the old colour passed on the
//     restoring path;
//   - the old colour is never stopped: stop_idle never while traffic may be
//     on the new colour, and never in ModeRollback;
//   - a host never switched is never switched back, and every colour a
//     deploy started is stopped again unless the host ended on it;
//   - a group starts only when the groups before it have nothing in flight.

// bgHost is what the harness knows about one blue/green host.
type bgHost struct {
	checkedNew  bool // a deploy-path check passed since the last start_idle
	checkedOld  bool // a restoring check passed since the last restore
	onNew       bool // a switch was handed out and no restore reported ok since
	started     bool // start_idle handed out (deploy path), no stop_idle ok since
	lastWasOldC bool // the previous step of this host was a restoring check
}

func (h *harness) bgOf(name string) *bgHost {
	if h.bg == nil {
		h.bg = map[string]*bgHost{}
	}
	b := h.bg[name]
	if b == nil {
		b = &bgHost{}
		h.bg[name] = b
	}
	return b
}

func (h *harness) blueGreen() bool { return h.plan.Strategy == StrategyBlueGreen }

// donePath is the deploy path of a host that ends done.
func (h *harness) donePath() []Step {
	if h.blueGreen() {
		return []Step{StepStage, StepStartIdle, StepCheck, StepSwitch}
	}
	return []Step{StepStage, StepDepool, StepSwitch, StepRestart, StepCheck, StepRepool}
}

func (h *harness) bgAction(a Action, t *hostTrack) {
	bgStep := a.Step == StepStartIdle || a.Step == StepStopIdle
	if !h.blueGreen() {
		if bgStep {
			h.errorf("rolling deploy handed out blue/green step %s %s", a.Host, a.Step)
		}
		return
	}
	switch a.Step {
	case StepDepool, StepRepool, StepRestart:
		h.errorf("blue/green handed out %s %s: a blue/green host never leaves rotation or restarts", a.Host, a.Step)
	}
	b := h.bgOf(a.Host)
	switch {
	case a.Step == StepStartIdle && !a.Restoring:
		b.checkedNew, b.started = false, true
		for _, name := range h.order {
			o := h.hosts[name]
			if _, busy := h.inflight[name]; busy && o.group < t.group {
				h.errorf("group %s started while %s of an earlier group is busy", a.Group, name)
			}
		}
	case a.Step == StepSwitch:
		if !b.checkedNew {
			h.errorf("traffic switched to an unverified colour: %s switch without a passed check of the new colour", a.Host)
		}
		b.onNew = true
	case a.Step == StepRestore:
		if !b.checkedOld {
			h.errorf("traffic switched back to an unverified colour: %s restore without a passed check of the old colour", a.Host)
		}
		if h.plan.Mode == ModeDeploy && !b.onNew {
			h.errorf("%s switched back although traffic never moved", a.Host)
		}
		b.checkedOld = false
	case a.Step == StepStopIdle:
		if h.plan.Mode == ModeRollback {
			h.errorf("rollback stopped a colour on %s: the colour it leaves runs until finalize", a.Host)
		}
		if b.onNew {
			h.errorf("%s stop_idle while traffic may be on the colour it stops", a.Host)
		}
	}
}

func (h *harness) bgReport(a Action, r Result) {
	if !h.blueGreen() {
		return
	}
	b := h.bgOf(a.Host)
	switch {
	case a.Step == StepCheck && !a.Restoring && r.Outcome == OK:
		b.checkedNew = true
	case a.Step == StepCheck && a.Restoring && r.Outcome == OK:
		b.checkedOld = true
	case a.Step == StepRestore && r.Outcome == OK:
		b.onNew = false
	case a.Step == StepStopIdle && r.Outcome == OK:
		b.started = false
	}
}

// bgFinal: after a deploy, a host not done has traffic on its old colour
// and no colour this deploy started still running — unless it was handed to
// a person or a second interrupt stopped the rollback.
func (h *harness) bgFinal() {
	if !h.blueGreen() || h.plan.Mode != ModeDeploy || h.stopped {
		return
	}
	rep := h.m.Outcome()
	for _, hr := range rep.Hosts {
		b := h.bgOf(hr.Name)
		if hr.Status == HostDone || hr.Status == HostStuck || hr.Status == HostUnreachable {
			continue
		}
		if b.onNew {
			h.errorf("final: %s (%s) ends with traffic on the new colour", hr.Name, hr.Status)
		}
		if b.started {
			h.errorf("final: %s (%s) ends with the new colour still running", hr.Name, hr.Status)
		}
	}
}

// TestBlueGreenProperties drives blue/green machines over random plans,
// outcomes and interrupts through the harness.
func TestBlueGreenProperties(t *testing.T) {
	runs := 3000
	if testing.Short() {
		runs = 400
	}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 0xb1ee))
		p := randomPlan(rng)
		p.Strategy = StrategyBlueGreen
		if errs, log := drive(rng, p); len(errs) > 0 {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Errorf("plan %s", describePlan(p))
				for _, e := range errs {
					t.Error(e)
				}
				if testing.Verbose() {
					t.Log("trace:\n" + strings.Join(log, "\n"))
				}
			})
		}
	}
}

// TestBlueGreenPropertiesFindBugs breaks the blue/green rules on purpose:
// the same random runs must catch each.
func TestBlueGreenPropertiesFindBugs(t *testing.T) {
	for name, breakIt := range map[string]func(*Machine){
		"switch before the check": func(m *Machine) { m.bgp.deploy = []Step{StepStartIdle, StepSwitch, StepCheck} },
		"stop the old colour":     func(m *Machine) { m.bgp.switchBack = []Step{StepCheck, StepStopIdle, StepRestore} },
		"no stop after a failure": func(m *Machine) { m.bgp.stopNew = []Step{StepCheck} },
		"switch back unchecked":   func(m *Machine) { m.bgp.switchBack = []Step{StepRestore, StepStopIdle} },
		"rollback stops a colour": func(m *Machine) { m.bgp.modeRollback = []Step{StepStartIdle, StepCheck, StepRestore, StepStopIdle} },
	} {
		t.Run(name, func(t *testing.T) {
			caught := 0
			for seed := range uint64(300) {
				rng := rand.New(rand.NewPCG(seed, 0xb1ee))
				p := randomPlan(rng)
				p.Strategy = StrategyBlueGreen
				h, err := newHarness(p)
				if err != nil {
					t.Fatal(err)
				}
				breakIt(h.m)
				if errs := driveHarness(rng, h); len(errs) > 0 {
					caught++
				}
			}
			if caught == 0 {
				t.Errorf("the properties never caught %q", name)
			}
		})
	}
}
