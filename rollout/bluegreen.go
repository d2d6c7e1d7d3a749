package rollout

// This file holds the blue/green strategy (Plan.Strategy StrategyBlueGreen):
// the same Machine — stage everywhere first, groups in order, batches,
// failure limits counted per group, gates, a rollback in reverse group
// order — with other paths for a host, because a blue/green host never
// leaves rotation: the new release starts beside the old one in the idle
// colour and traffic moves from one colour to the other.
//
//	deploy path:   stage → (every host staged) → start_idle → check → switch
//	undo, never switched:          stop_idle
//	undo, switched:                check → restore → stop_idle
//	ModeRollback:  start_idle → check → restore
//
// start_idle starts the new release in the idle colour; check runs the
// checks against that colour; switch moves traffic to it (new colour ready
// in the balancer, old colour drained) and points current at it. The old
// colour keeps running: the runner's finalize stops it later, never a path
// of this Machine. restore moves traffic back to the colour that served
// before the deploy — checked first, on the restoring path — and stop_idle
// then stops the colour that failed.
//
// The safety rules, each enforced here and checked by the property test:
//   - traffic never points at an unverified colour: a switch comes only
//     after the new colour's check passed, and a restore (switch back) only
//     after the old colour's check passed, on the same path;
//   - the old colour is never stopped by a deploy: stop_idle is only handed
//     out for a host whose traffic is on the old colour (never switched, or
//     switched back), and never by ModeRollback, which leaves the colour it
//     switched away from running for the next finalize;
//   - a failure before the switch stops the idle colour and leaves traffic
//     and current untouched;
//   - past a group's failure limit every switched host is switched back,
//     groups in reverse order (the rollback of rollback.go).

// Strategy is how a host moves to the new release.
type Strategy string

// Strategies.
const (
	// StrategyRolling (also ""): depool, switch, restart, check, repool.
	StrategyRolling Strategy = "rolling"
	// StrategyBlueGreen: start beside the old release, check, switch
	// traffic; see above.
	StrategyBlueGreen Strategy = "blue-green"
)

// Blue/green steps.
const (
	// StepStartIdle starts the idle colour (deploy path: the new release;
	// ModeRollback: the release going back to, unless still running).
	StepStartIdle Step = "start_idle"
	// StepStopIdle stops the colour this deploy started, once no traffic
	// goes to it.
	StepStopIdle Step = "stop_idle"
)

func validStrategy(s Strategy) bool {
	return s == "" || s == StrategyRolling || s == StrategyBlueGreen
}

// bgPaths are the blue/green paths. They are data so that the property
// test can break each rule and see the harness catch it.
type bgPaths struct {
	deploy       []Step // promote a host
	switchBack   []Step // undo a host traffic may have moved to
	stopNew      []Step // undo a host started and never switched
	modeRollback []Step // ModeRollback
}

var blueGreenPaths = bgPaths{
	deploy:       []Step{StepStartIdle, StepCheck, StepSwitch},
	switchBack:   []Step{StepCheck, StepRestore, StepStopIdle},
	stopNew:      []Step{StepStopIdle},
	modeRollback: []Step{StepStartIdle, StepCheck, StepRestore},
}

// deployPath is the path of a host being promoted.
func (m *Machine) deployPath() []Step {
	if m.blueGreen {
		return m.bgp.deploy
	}
	return []Step{StepDepool, StepSwitch, StepRestart, StepCheck, StepRepool}
}

// bgUndo is the path of a blue/green host that failed on the deploy path:
// switch back (after checking the old colour) if traffic may have moved,
// then stop the colour that failed.
func (m *Machine) bgUndo(h *host) []Step {
	if h.switched {
		return m.bgp.switchBack
	}
	return m.bgp.stopNew
}

// bgRollbackPath is rollbackPath for blue/green.
func (m *Machine) bgRollbackPath(h *host) []Step {
	switch {
	case m.mode == ModeRollback:
		return m.bgp.modeRollback
	case h.switched && !h.restored:
		return m.bgp.switchBack
	default:
		// Started beside the old colour, never switched: stop it.
		return m.bgp.stopNew
	}
}

// bgNeedsRollback reports whether a blue/green host must be undone after a
// halt although it was not switched: its new colour was started.
func (m *Machine) bgNeedsRollback(h *host) bool {
	return m.blueGreen && h.startedIdle
}
