package rollout

import (
	"fmt"
	"time"
)

// This file decides a group's gates: what must hold after every host of a
// group is done and before the deploy moves past it — a bake time, a smoke
// test through the load balancer, an invariant comparison, a person's
// approval. The Machine knows only two kinds: a wait, measured with the now
// it is given, and a step the runner runs and reports. What a named gate
// means is the runner's business.
//
// A failed gate halts the deploy whatever the failure limit: the limit
// counts hosts, and a gate speaks for the whole group — a canary group
// whose hosts all pass their own checks while the error rate through the
// load balancer doubles must not go on to the next group.

// gateState is where the current gate of a group is.
type gateState int

const (
	gateIdle    gateState = iota // not begun
	gateIssued                   // GateRun decided (maybe handed out), not reported
	gateWaiting                  // GateWait: until waitUntil
)

// stepGates moves g through its gates; it returns true when all passed.
func (m *Machine) stepGates(now time.Time, g *group) bool {
	for g.gatePos < len(g.plan.Gates) {
		gate := g.plan.Gates[g.gatePos]
		if gate.Skip != "" {
			m.gateNote(now, NoteGateSkipped, g, gate.Name, "%s skipped: %s", gate.Name, gate.Skip)
			g.gatePos++
			continue
		}
		switch gate.Kind {
		case GateWait:
			if g.gate == gateIdle {
				g.gate, g.waitUntil = gateWaiting, now.Add(gate.Wait)
				m.gateNote(now, NoteGateStart, g, gate.Name, "%s: waiting %s, until %s", gate.Name, gate.Wait, g.waitUntil.UTC().Format(time.RFC3339))
			}
			if now.Before(g.waitUntil) {
				return false
			}
			m.gateNote(now, NoteGateDone, g, gate.Name, "%s: waited %s", gate.Name, gate.Wait)
		default:
			switch g.gate {
			case gateIdle:
				g.gate = gateIssued
				m.issued++
				m.out = append(m.out, Action{Group: g.plan.Name, Step: StepGate, Gate: gate.Name})
				m.gateNote(now, NoteGateStart, g, gate.Name, "%s", gate.Name)
				return false
			case gateIssued:
				return false
			}
		}
		g.gate, g.waitUntil = gateIdle, time.Time{}
		g.gatePos++
	}
	return true
}

// reportGate feeds the result of a gate step.
func (m *Machine) reportGate(now time.Time, r Result) error {
	if m.phase != phasePromote || m.cur >= len(m.groups) {
		return errNotInFlight(r)
	}
	g := m.groups[m.cur]
	if g.gate != gateIssued || g.gatePos >= len(g.plan.Gates) || g.plan.Gates[g.gatePos].Name != r.Gate || !g.gateHanded {
		return errNotInFlight(r)
	}
	switch r.Outcome {
	case OK, Failed, Unreachable:
	case NotRun:
		if !m.frozen {
			return errNotInFlight(r)
		}
	default:
		return errNotInFlight(r)
	}
	m.issued--
	g.gateHanded = false
	if r.Outcome == NotRun {
		g.gate = gateIdle
	} else if r.Outcome == OK {
		m.gateNote(now, NoteGateDone, g, r.Gate, "%s passed", r.Gate)
		g.gate, g.waitUntil = gateIdle, time.Time{}
		g.gatePos++
	} else {
		what := r.Gate + " failed"
		if r.Reason != "" {
			what += ": " + r.Reason
		}
		m.gateNote(now, NoteGateFailed, g, r.Gate, "%s", what)
		g.gate = gateIdle
		if !m.halted && !m.frozen {
			m.halt(now, fmt.Sprintf("group %s: gate %s", g.plan.Name, what))
		}
	}
	m.step(now)
	return nil
}

// wake returns when the Machine next needs to be called without a result.
func (m *Machine) wake() time.Time {
	if m.phase == phasePromote && !m.halted && !m.frozen && m.cur < len(m.groups) {
		if g := m.groups[m.cur]; g.gate == gateWaiting {
			return g.waitUntil
		}
	}
	return time.Time{}
}
