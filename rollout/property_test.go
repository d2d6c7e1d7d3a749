package rollout

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestProperties drives machines over random plans with random outcomes,
// random answer order and random interrupts, through the invariant harness
// (invariants_test.go). Every failure names its seed; rerun one with
// -run 'TestProperties/seed=N'.
func TestProperties(t *testing.T) {
	runs := 4000
	if testing.Short() {
		runs = 500
	}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		p := randomPlan(rng)
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

func randomPlan(rng *rand.Rand) Plan {
	p := Plan{Mode: ModeDeploy, StageParallelism: 1 + rng.IntN(5)}
	if rng.IntN(5) == 0 {
		p.Mode = ModeRollback
	}
	n := 0
	for gi := range 1 + rng.IntN(4) {
		g := GroupPlan{Name: fmt.Sprintf("g%d", gi), Batch: 1 + rng.IntN(4), FailureLimit: rng.IntN(3)}
		for gn := range rng.IntN(3) {
			if rng.IntN(2) == 0 {
				g.Gates = append(g.Gates, Gate{Name: fmt.Sprintf("bake%d", gn), Kind: GateWait, Wait: time.Duration(1+rng.IntN(300)) * time.Second})
			} else {
				g.Gates = append(g.Gates, Gate{Name: fmt.Sprintf("smoke%d", gn), Kind: GateRun})
			}
		}
		for range rng.IntN(8) {
			hp := HostPlan{Name: fmt.Sprintf("h%02d", n), From: "v1", Skip: rng.IntN(7) == 0}
			if rng.IntN(4) == 0 {
				hp.From = ""
			}
			n++
			g.Hosts = append(g.Hosts, hp)
		}
		p.Groups = append(p.Groups, g)
	}
	return p
}

func describePlan(p Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%s stage_parallelism=%d", p.Mode, p.StageParallelism)
	for _, g := range p.Groups {
		fmt.Fprintf(&b, "\ngroup %s batch=%d limit=%d:", g.Name, g.Batch, g.FailureLimit)
		for _, h := range g.Hosts {
			b.WriteString(" " + h.Name)
			if h.Skip {
				b.WriteString("(skip)")
			}
		}
	}
	return b.String()
}

// drive runs one random rollout to the end and returns the broken
// invariants.
func drive(rng *rand.Rand, p Plan) (errs, log []string) {
	h, err := newHarness(p)
	if err != nil {
		return []string{"New: " + err.Error()}, nil
	}
	return driveHarness(rng, h), h.log
}

func driveHarness(rng *rand.Rand, h *harness) []string {
	p := h.plan
	// How hostile the fleet is in this run.
	failP := []float64{0, 0.02, 0.1, 0.3}[rng.IntN(4)]
	lostP := []float64{0, 0, 0.01, 0.05}[rng.IntN(4)]
	abortP := []float64{0, 0, 0.01, 0.05}[rng.IntN(4)]
	freezeP := []float64{0, 0, 0, 0.01, 0.05}[rng.IntN(5)]

	now := time.Unix(1_700_000_000, 0)
	hosts := 0
	for _, g := range p.Groups {
		hosts += len(g.Hosts)
	}
	// Each host takes at most stage + 5 deploy steps + 5 restoring steps;
	// each gate one step, or one wake.
	gates := 0
	for _, g := range p.Groups {
		gates += len(g.Gates)
	}
	bound := 11*hosts + 2*gates + 5
	var pending []Action
	for i := 0; ; i++ {
		if i > bound {
			h.errorf("no end after %d steps", bound)
			break
		}
		now = now.Add(time.Duration(rng.IntN(3)) * time.Second)
		rd := h.ready(now)
		pending = append(pending, rd.Actions...)
		if h.m.InFlight() != len(pending) {
			h.errorf("InFlight %d, %d actions handed out and not answered", h.m.InFlight(), len(pending))
		}
		if h.m.Done() {
			if len(pending) > 0 {
				h.errorf("done with %d actions in flight", len(pending))
			}
			break
		}
		if len(pending) == 0 {
			if !rd.Wake.IsZero() {
				if !rd.Wake.After(now) {
					h.errorf("wake %v is not after now %v", rd.Wake, now)
					break
				}
				// Sometimes too early: a wait gate must not pass
				// before its time.
				if rng.IntN(3) == 0 {
					now = now.Add(rd.Wake.Sub(now) / 2)
					if h.ready(now).Wake != rd.Wake {
						h.errorf("the wake moved before its time")
					}
				}
				now = rd.Wake
				continue
			}
			h.errorf("stalled: not done, nothing in flight")
			break
		}
		if rng.Float64() < abortP {
			h.abort(now, "interrupted")
			continue
		}
		if rng.Float64() < freezeP {
			h.freeze(now, "lost the deploy lock")
			continue
		}
		// Results that must be refused, and must change nothing.
		if rng.IntN(10) == 0 {
			a := pending[rng.IntN(len(pending))]
			bads := []Result{
				{Host: "nosuch", Step: a.Step, Gate: "nosuch", Outcome: OK},
				{Host: a.Host, Step: otherStep(a.Step), Outcome: OK},
				{Host: a.Host, Step: a.Step, Outcome: "maybe"},
			}
			if !h.frozen {
				// Not run is for a frozen Machine only.
				bads = append(bads, Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: NotRun})
			}
			bad := bads[rng.IntN(len(bads))]
			if h.report(now, bad) == nil {
				h.errorf("Report accepted %+v", bad)
			}
		}
		k := rng.IntN(len(pending))
		a := pending[k]
		pending = append(pending[:k], pending[k+1:]...)
		r := Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: OK}
		switch x := rng.Float64(); {
		case h.frozen && x < 0.5:
			// Frozen before the runner started it.
			r.Outcome = NotRun
		case x < lostP:
			r.Outcome, r.Reason = Unreachable, "lost"
		case x < lostP+failP:
			r.Outcome, r.Reason = Failed, "boom"
		}
		if h.report(now, r) != nil {
			break
		}
		// The same result twice is a runner bug.
		if rng.IntN(20) == 0 && h.report(now, r) == nil {
			h.errorf("Report accepted %+v twice", r)
		}
		// An interrupt between a result and the next Ready: actions
		// decided on that result and not handed out yet must not move a
		// host further onto the new release.
		if rng.Float64() < abortP {
			h.abort(now, "interrupted between Report and Ready")
		}
		// A lost lock between a result and the next Ready: what was
		// decided on that result must not be handed out.
		if rng.Float64() < freezeP {
			h.freeze(now, "lost the deploy lock between Report and Ready")
		}
	}
	if h.m.Done() {
		h.final()
	}
	return h.errs
}

func otherStep(s Step) Step {
	if s == StepCheck {
		return StepRestart
	}
	return StepCheck
}

// TestPropertiesFindBugs makes sure the harness can fail: machines with a
// broken rule must be caught by the same random runs, and a broken
// rolling rule by the invariant that states it (want), not by chance.
func TestPropertiesFindBugs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		breakIt func(*Machine)
		want    string
	}{
		{"batch counted too big", func(m *Machine) {
			for _, g := range m.groups {
				g.plan.Batch++
			}
		}, ""},
		{"stage parallelism off by one", func(m *Machine) { m.stagePar++ }, ""},
		{"failure limit too lenient", func(m *Machine) {
			for _, g := range m.groups {
				g.plan.FailureLimit += 2
			}
		}, ""},
		{"rollback in forward order", func(m *Machine) { m.mutant = mutantForwardRollback }, "not in reverse order"},
		{"finished canaries spared by the rollback", func(m *Machine) { m.mutant = mutantSpareFinished }, "switched and not rolled back after the halt"},
		{"failed switch taken as unswitched", func(m *Machine) { m.mutant = mutantFailedSwitchUnswitched }, "failed after a switch and was not restored"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Seeds until the bug is caught a few times: the rarer rules
			// (a halt after a group finished, a failed switch) need a
			// few hundred runs to come up.
			caught, runs := 0, 0
			for seed := uint64(0); seed < 4000 && caught < 3; seed++ {
				runs++
				rng := rand.New(rand.NewPCG(seed, 0x5eed))
				p := randomPlan(rng)
				h, err := newHarness(p)
				if err != nil {
					t.Fatal(err)
				}
				tt.breakIt(h.m)
				errs := driveHarness(rng, h)
				if len(errs) > 0 && (tt.want == "" || slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.want) })) {
					caught++
				}
			}
			if caught == 0 {
				t.Errorf("the properties never caught %q in %d runs", tt.name, runs)
			}
			t.Logf("caught %d times in %d runs", caught, runs)
		})
	}
}
