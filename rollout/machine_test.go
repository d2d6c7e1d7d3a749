package rollout

import (
	"strings"
	"testing"
	"time"

	"drover"
)

func gp(name string, batch, limit int, hosts ...string) GroupPlan {
	g := GroupPlan{Name: name, Batch: batch, FailureLimit: limit}
	for _, h := range hosts {
		g.Hosts = append(g.Hosts, HostPlan{Name: h, From: "v1"})
	}
	return g
}

func TestNew_Validate(t *testing.T) {
	ok := func(p Plan) Plan { return p }
	for _, tc := range []struct {
		name string
		plan Plan
		err  string // "" = valid
	}{
		{"deploy", ok(Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0, "h1")}}), ""},
		{"rollback without stage parallelism", Plan{Mode: ModeRollback, Groups: []GroupPlan{gp("a", 1, 0, "h1")}}, ""},
		{"no groups", Plan{Mode: ModeDeploy, StageParallelism: 1}, ""},
		{"empty group", Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0)}}, ""},
		{"no mode", Plan{StageParallelism: 1}, `unknown mode ""`},
		{"unknown mode", Plan{Mode: "yolo", StageParallelism: 1}, `unknown mode "yolo"`},
		{"stage parallelism 0", Plan{Mode: ModeDeploy}, "stage parallelism 0"},
		{"negative stage parallelism", Plan{Mode: ModeRollback, StageParallelism: -1}, "stage parallelism -1"},
		{"batch 0", Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 0, 0, "h1")}}, "group a: batch 0"},
		{"negative limit", Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, -1, "h1")}}, "group a: failure limit -1"},
		{"duplicate host in a group", Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0, "h1", "h1")}}, "host h1 is in group a and in group a"},
		{"duplicate host across groups", Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0, "h1"), gp("b", 1, 0, "h2", "h1")}}, "host h1 is in group a and in group b"},
		{"unnamed host", Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0, "")}}, "a host has no name"},
		{"unnamed group", Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("", 1, 0, "h1")}}, "group 1 has no name"},
		{"duplicate group", Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0, "h1"), gp("a", 1, 0, "h2")}}, `group "a" appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.plan)
			if tc.err == "" {
				if err != nil || m == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted the plan, want an error with %q", tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q, want it to contain %q", err, tc.err)
			}
			if code := drover.ErrorCode(err); code != drover.EINVALID {
				t.Errorf("error code %q, want %q", code, drover.EINVALID)
			}
		})
	}
}

// TestEmptyPlan: a plan with nothing to do succeeds at once.
func TestEmptyPlan(t *testing.T) {
	for _, mode := range []Mode{ModeDeploy, ModeRollback} {
		m, err := New(Plan{Mode: mode, StageParallelism: 1})
		if err != nil {
			t.Fatal(err)
		}
		if m.Done() {
			t.Errorf("%s: done before the first Ready handed out the verdict", mode)
		}
		rd := m.Ready(time.Unix(1, 0))
		if len(rd.Actions) != 0 || !m.Done() || m.Outcome().Verdict != Succeeded {
			t.Errorf("%s: actions %v, done %v, verdict %q", mode, rd.Actions, m.Done(), m.Outcome().Verdict)
		}
	}
}

// TestReportErrorsAreRunnerBugs: results for steps not in flight are
// refused with EINTERNAL, including one decided but not yet handed out.
func TestReportErrorsAreRunnerBugs(t *testing.T) {
	m, err := New(Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0, "h1", "h2")}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1, 0)
	if err := m.Report(now, Result{Host: "h1", Step: StepStage, Outcome: OK}); err == nil {
		t.Error("Report accepted a result before anything was handed out")
	}
	m.Ready(now)
	if err := m.Report(now, Result{Host: "h1", Step: StepStage, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	// h2's stage is decided, not yet handed out.
	if err := m.Report(now, Result{Host: "h2", Step: StepStage, Outcome: OK}); err == nil {
		t.Error("Report accepted a result for an action not handed out yet")
	} else if drover.ErrorCode(err) != drover.EINTERNAL {
		t.Errorf("code %q, want %q", drover.ErrorCode(err), drover.EINTERNAL)
	}
	if m.InFlight() != 0 {
		t.Errorf("InFlight %d before Ready hands h2's stage out", m.InFlight())
	}
	rd := m.Ready(now)
	if len(rd.Actions) != 1 || rd.Actions[0] != (Action{Host: "h2", Group: "a", Step: StepStage}) {
		t.Fatalf("actions %+v", rd.Actions)
	}
	if m.InFlight() != 1 {
		t.Errorf("InFlight %d, want 1", m.InFlight())
	}
}

// TestHaltWithdrawsUnhandedActions: an interrupt between a Report and the
// next Ready takes back the deploy-path step that Report decided: the
// runner never sees it.
func TestHaltWithdrawsUnhandedActions(t *testing.T) {
	m, err := New(Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0, "h1")}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1, 0)
	answer := func(step Step) {
		t.Helper()
		rd := m.Ready(now)
		if len(rd.Actions) != 1 || rd.Actions[0].Step != step {
			t.Fatalf("want %s, got %+v", step, rd.Actions)
		}
		if err := m.Report(now, Result{Host: "h1", Step: step, Outcome: OK}); err != nil {
			t.Fatal(err)
		}
	}
	answer(StepStage)
	answer(StepDepool)
	// The switch is decided, not handed out.
	m.Abort(now, "interrupted")
	rd := m.Ready(now)
	for _, a := range rd.Actions {
		if a.Step == StepSwitch {
			t.Fatalf("switch handed out after the interrupt: %+v", rd.Actions)
		}
	}
	// h1 was depooled and never switched: only a repool.
	if len(rd.Actions) != 1 || rd.Actions[0] != (Action{Host: "h1", Group: "a", Step: StepRepool, Restoring: true}) {
		t.Fatalf("want only h1's repool, got %+v", rd.Actions)
	}
	if err := m.Report(now, Result{Host: "h1", Step: StepRepool, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	m.Ready(now)
	rep := m.Outcome()
	if !m.Done() || rep.Verdict != Halted || rep.HaltReason != "interrupted" || rep.Hosts[0].Switched {
		t.Errorf("done %v, report %+v", m.Done(), rep)
	}
}

// TestNoteTimes: notes carry the now of the call that produced them, not of
// the Ready that hands them out.
func TestNoteTimes(t *testing.T) {
	m, err := New(Plan{Mode: ModeDeploy, StageParallelism: 1, Groups: []GroupPlan{gp("a", 1, 0, "h1")}})
	if err != nil {
		t.Fatal(err)
	}
	t0, t1, t2 := time.Unix(100, 0), time.Unix(200, 0), time.Unix(300, 0)
	m.Ready(t0)
	if err := m.Report(t1, Result{Host: "h1", Step: StepStage, Outcome: Failed, Reason: "disk full"}); err != nil {
		t.Fatal(err)
	}
	rd := m.Ready(t2)
	var kinds []string
	for _, n := range rd.Notes {
		kinds = append(kinds, string(n.Kind))
		if !n.Time.Equal(t1) {
			t.Errorf("note %s at %v, want %v", n.Kind, n.Time, t1)
		}
	}
	if want := []string{string(NoteHostFailed), string(NoteHalt), string(NoteVerdict)}; strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Errorf("notes %v, want %v", kinds, want)
	}
	if !m.Done() {
		t.Error("not done")
	}
	// Nothing more once done; an interrupt changes nothing.
	m.Abort(t2, "late")
	if rd := m.Ready(t2); len(rd.Actions)+len(rd.Notes) != 0 || m.Outcome().HaltReason != "group a: 1 failed > failure limit 0: h1 stage: disk full" {
		t.Errorf("after the end: %+v, %q", rd, m.Outcome().HaltReason)
	}
}

// TestDoneWaitsForNotes: Done only once the verdict note is handed out, so
// a runner looping until Done never drops it.
func TestDoneWaitsForNotes(t *testing.T) {
	m, err := New(Plan{Mode: ModeRollback, Groups: []GroupPlan{gp("a", 1, 0, "h1")}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1, 0)
	m.Abort(now, "") // before anything started
	if m.Done() {
		t.Error("done before the verdict note was handed out")
	}
	rd := m.Ready(now)
	if len(rd.Actions) != 0 || !m.Done() {
		t.Fatalf("actions %+v, done %v", rd.Actions, m.Done())
	}
	rep := m.Outcome()
	if rep.Verdict != NeedsPerson || rep.HaltReason != "aborted" || rep.Hosts[0].Status != HostPending {
		t.Errorf("report %+v", rep)
	}
}
