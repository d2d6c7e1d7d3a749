package rollout

import (
	"strings"
	"testing"
	"time"
)

// TestSkippedGates: a gate an operator skipped (Gate.Skip) is never handed
// out, a skipped bake does not wait, and each is noted as skipped with the
// reason, never as passed; the gate after them still runs.
func TestSkippedGates(t *testing.T) {
	const reason = "INC-42: smoke endpoint down"
	m, err := New(Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{{
		Name: "canary", Batch: 1, Hosts: []HostPlan{{Name: "h01", From: "v1"}},
		Gates: []Gate{
			{Name: "smoke lb", Kind: GateRun, Skip: reason},
			{Name: "bake", Kind: GateWait, Wait: time.Hour, Skip: reason},
			{Name: "confirm", Kind: GateRun},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	var gates []string
	var notes []Note
	for i := 0; !m.Done() && i < 100; i++ {
		rd := m.Ready(now)
		notes = append(notes, rd.Notes...)
		for _, a := range rd.Actions {
			if a.Step == StepGate {
				gates = append(gates, a.Gate)
			}
			if err := m.Report(now, Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: OK}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v := m.Outcome().Verdict; v != Succeeded {
		t.Fatalf("verdict %s, want succeeded (a skipped bake of an hour must not wait)", v)
	}
	if len(gates) != 1 || gates[0] != "confirm" {
		t.Errorf("gates handed out %q, want only confirm", gates)
	}
	var skipped, passed []string
	for _, n := range notes {
		switch n.Kind {
		case NoteGateSkipped:
			skipped = append(skipped, n.Message)
		case NoteGateDone:
			passed = append(passed, n.Message)
		}
	}
	if len(skipped) != 2 || skipped[0] != "smoke lb skipped: "+reason || skipped[1] != "bake skipped: "+reason {
		t.Errorf("skipped notes %q", skipped)
	}
	if len(passed) != 1 || !strings.HasPrefix(passed[0], "confirm") {
		t.Errorf("passed notes %q, want only confirm's", passed)
	}
}
