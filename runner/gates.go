package runner

import (
	"context"
	"time"

	"drover"
	"drover/rollout"
)

// This file turns what the spec asks for after a group — smoke tests,
// invariant comparisons, bake times, approvals — into the core's gates, and
// runs the gates the core hands out. The core only knows "wait" and "run";
// what a run gate does is decided here.

// groupGate is one gate of one group: what the core sees, and how to run it.
type groupGate struct {
	plan rollout.Gate
	// run passes the gate (GateRun only); an error fails it and halts
	// the deploy. It gets the whole timeout below.
	run     func(ctx context.Context) error
	timeout time.Duration
	// kind is what --skip-gate GROUP:KIND calls the gate (drover.GateKinds).
	kind string
}

// DefaultGateTimeout bounds a run gate that does not say otherwise.
const DefaultGateTimeout = 10 * time.Minute

// gateKey identifies a gate of a group.
func gateKey(group, name string) string { return group + "/" + name }

// groupGates returns the gates to run after group g, the last group of the
// deploy or not. GateFuncs contributed by the runner's options are asked in
// order; each may add gates.
func (r *Runner) groupGates(g drover.Group, last bool) []groupGate {
	var out []groupGate
	for _, f := range r.GateSources {
		out = append(out, f(g, last)...)
	}
	// A person is asked last, once the automatic gates have passed.
	out = append(out, r.confirmGates(g, last)...)
	return out
}

// GateSource adds gates after a group; see Runner.GateSources.
type GateSource func(g drover.Group, last bool) []groupGate

// addGates puts the gates of group name on gp and registers how to run them.
func (x *executor) addGates(gp *rollout.GroupPlan, gates []groupGate) {
	for _, gt := range gates {
		// An operator's override is handed to the core, which records the
		// gate as skipped with the reason; the runner never fakes a pass.
		if reason, ok := drover.Skips(x.overrides, drover.OverrideGate, gp.Name+":"+gt.kind); ok {
			gt.plan.Skip = reason
		}
		gp.Gates = append(gp.Gates, gt.plan)
		if gt.plan.Kind == rollout.GateRun {
			x.gates[gateKey(gp.Name, gt.plan.Name)] = gt
		}
	}
}

// runGate runs a gate the core handed out.
func (x *executor) runGate(ctx context.Context, a rollout.Action) error {
	gt, ok := x.gates[gateKey(a.Group, a.Gate)]
	if !ok || gt.run == nil {
		return drover.Errorf(drover.EINTERNAL, "no gate %q for group %s", a.Gate, a.Group)
	}
	return gt.run(ctx)
}

func (x *executor) gateTimeout(a rollout.Action) time.Duration {
	if gt, ok := x.gates[gateKey(a.Group, a.Gate)]; ok && gt.timeout > 0 {
		return gt.timeout
	}
	return DefaultGateTimeout
}
