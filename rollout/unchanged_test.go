package rollout

import (
	"slices"
	"testing"
	"time"
)

// drain runs m to the end with results from fn, and returns every action
// in the order it was handed out as host:step.
func drain(t *testing.T, m *Machine, fn func(a Action) Result) []string {
	t.Helper()
	now := time.Unix(100, 0)
	var trace []string
	for i := 0; i < 1000; i++ {
		rd := m.Ready(now)
		if len(rd.Actions) == 0 {
			if m.Done() {
				return trace
			}
			t.Fatalf("stalled after %v", trace)
		}
		for _, a := range rd.Actions {
			trace = append(trace, a.Host+":"+string(a.Step))
			r := fn(a)
			r.Host, r.Step, r.Gate = a.Host, a.Step, a.Gate
			if r.Outcome == "" {
				r.Outcome = OK
			}
			if err := m.Report(now, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatalf("no end after %v", trace)
	return nil
}

// TestSwitchFailedUnchanged: a switch that failed before changing anything
// (a before_promote hook said no) leaves the host never switched: it only
// goes back into rotation — no restore, no restart of a service that was
// never touched — and a rollback after a halt does not restore it either.
func TestSwitchFailedUnchanged(t *testing.T) {
	m, err := New(Plan{Mode: ModeDeploy, StageParallelism: 2, Groups: []GroupPlan{gp("g", 1, 1, "h1", "h2")}})
	if err != nil {
		t.Fatal(err)
	}
	trace := drain(t, m, func(a Action) Result {
		if a.Host == "h1" && a.Step == StepSwitch {
			return Result{Outcome: Failed, Reason: "before_promote hook exited 1", Unchanged: true}
		}
		return Result{}
	})
	want := []string{"h1:stage", "h2:stage", "h1:depool", "h1:switch", "h1:repool", "h2:depool", "h2:switch", "h2:restart", "h2:check", "h2:repool"}
	if !slices.Equal(trace, want) {
		t.Fatalf("trace\n got %v\nwant %v", trace, want)
	}
	rep := m.Outcome()
	if rep.Verdict != Partial {
		t.Errorf("verdict %s, want partial", rep.Verdict)
	}
	if h := rep.Hosts[0]; h.Status != HostFailed || h.Switched {
		t.Errorf("h1: %+v, want failed and never switched", h)
	}

	// Past the limit: the halt rolls back nothing, because nothing was
	// switched; the failed host is only repooled.
	m, _ = New(Plan{Mode: ModeDeploy, StageParallelism: 2, Groups: []GroupPlan{gp("g", 1, 0, "h1", "h2")}})
	trace = drain(t, m, func(a Action) Result {
		if a.Host == "h1" && a.Step == StepSwitch {
			return Result{Outcome: Failed, Unchanged: true}
		}
		return Result{}
	})
	want = []string{"h1:stage", "h2:stage", "h1:depool", "h1:switch", "h1:repool"}
	if !slices.Equal(trace, want) {
		t.Fatalf("trace\n got %v\nwant %v", trace, want)
	}
	if v := m.Outcome().Verdict; v != Halted {
		t.Errorf("verdict %s, want halted: nothing was switched", v)
	}

	// Without Unchanged a failed switch may have swapped the link: the
	// host is restored.
	m, _ = New(Plan{Mode: ModeDeploy, StageParallelism: 2, Groups: []GroupPlan{gp("g", 1, 1, "h1")}})
	trace = drain(t, m, func(a Action) Result {
		if a.Step == StepSwitch {
			return Result{Outcome: Failed}
		}
		return Result{}
	})
	want = []string{"h1:stage", "h1:depool", "h1:switch", "h1:restore", "h1:restart", "h1:check", "h1:repool"}
	if !slices.Equal(trace, want) {
		t.Fatalf("trace\n got %v\nwant %v", trace, want)
	}
}
