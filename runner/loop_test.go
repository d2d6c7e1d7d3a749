package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

func TestEmitNoteKinds(t *testing.T) {
	want := map[string]string{
		rollout.NoteStageStart:     drover.EventStageStart,
		rollout.NoteStageDone:      drover.EventStageDone,
		rollout.NoteGroupStart:     drover.EventGroupStart,
		rollout.NoteGroupDone:      drover.EventGroupDone,
		rollout.NoteHostDone:       drover.EventHostDone,
		rollout.NoteHostFailed:     drover.EventHostFailed,
		rollout.NoteHostRestored:   drover.EventHostRestored,
		rollout.NoteHostStuck:      drover.EventHostStuck,
		rollout.NoteHalt:           drover.EventHalt,
		rollout.NoteAbort:          drover.EventAbort,
		rollout.NoteRollbackStart:  drover.EventRollback,
		rollout.NoteHostRolledBack: drover.EventHostRolledBack,
		rollout.NoteVerdict:        drover.EventVerdict,
		rollout.NoteGateStart:      drover.EventGateStart,
		rollout.NoteGateDone:       drover.EventGateDone,
		rollout.NoteGateFailed:     drover.EventGateFailed,
		"something_new":            drover.EventNotice,
	}
	ev := &eventRec{}
	r := &Runner{Events: ev}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for kind, w := range want {
		r.emitNote("d-1", rollout.Note{Time: at, Kind: kind, Group: "g", Host: "h01", Message: "m " + kind})
		got := ev.all()
		e := got[len(got)-1]
		if e.Kind != w || e.Message != "m "+kind || e.Host != "h01" || e.Group != "g" || !e.Time.Equal(at) || e.Schema != drover.EventSchema {
			t.Errorf("note %s became %+v, want kind %s", kind, e, w)
		}
	}
}

// eventKinds are the kinds package drover declares.
var eventKinds = map[string]bool{
	drover.EventDeployStart: true, drover.EventStepStart: true, drover.EventStepDone: true,
	drover.EventGroupStart: true, drover.EventGroupDone: true, drover.EventHostFailed: true,
	drover.EventHalt: true, drover.EventRollback: true, drover.EventNotice: true, drover.EventVerdict: true,
	drover.EventStageStart: true, drover.EventStageDone: true, drover.EventHostDone: true,
	drover.EventHostRestored: true, drover.EventHostStuck: true, drover.EventHostRolledBack: true,
	drover.EventAbort: true, drover.EventGateStart: true, drover.EventGateDone: true, drover.EventGateFailed: true,
}

// TestEventsUseDeclaredKinds: a deploy with a failure, a halt and a
// rollback emits only kinds consumers were told about.
func TestEventsUseDeclaredKinds(t *testing.T) {
	e := newEnv(t, testSpec(6))
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	e.fleet.Fail("h03", opCheck, 1, drover.Errorf(drover.EFAILED, "503"))
	e.fleet.Fail("h05", opCheck, 1, drover.Errorf(drover.EFAILED, "503"))
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	seen := map[string]bool{}
	for _, ev := range e.events.all() {
		if !eventKinds[ev.Kind] {
			t.Errorf("undeclared event kind %q: %+v", ev.Kind, ev)
		}
		seen[ev.Kind] = true
	}
	for _, k := range []string{drover.EventStageStart, drover.EventHostDone, drover.EventHostFailed, drover.EventHostRestored, drover.EventHalt, drover.EventRollback, drover.EventHostRolledBack, drover.EventVerdict} {
		if !seen[k] {
			t.Errorf("no %s event", k)
		}
	}
}

// TestDriveSurvivesRejectedResult: a step result the machine rejects is a
// runner bug. drive must not crash: it reports an internal error, starts
// nothing more, waits for and journals the steps in flight, and the
// verdict needs a person.
func TestDriveSurvivesRejectedResult(t *testing.T) {
	e := newEnv(t, testSpec(2))
	m, err := rollout.New(rollout.Plan{Mode: rollout.ModeDeploy, StageParallelism: 2, Groups: []rollout.GroupPlan{
		{Name: "all", Batch: 1, Hosts: []rollout.HostPlan{{Name: "h01"}, {Name: "h02"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Begin(context.Background(), drover.DeployRecord{ID: "d-bug", Key: "hello", Kind: drover.KindDeploy}); err != nil {
		t.Fatal(err)
	}
	noticed := e.events.next(drover.EventNotice)
	run := func(ctx context.Context, a rollout.Action) rollout.Result {
		if a.Host == "h02" {
			// The wrong step: what a runner bug would report.
			return rollout.Result{Host: a.Host, Step: rollout.StepSwitch, Outcome: rollout.OK}
		}
		// h01 is still running when the bad result arrives.
		<-noticed
		return rollout.Result{Host: a.Host, Step: a.Step, Outcome: rollout.OK}
	}
	done := make(chan error, 1)
	go func() {
		done <- e.r.drive(context.Background(), "d-bug", m, run, func(rollout.Action) time.Duration { return time.Minute }, nil)
	}()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("drive hung after a rejected result")
	}
	if drover.ErrorCode(err) != drover.EINTERNAL || !strings.Contains(err.Error(), "h02") {
		t.Fatalf("drive returned %v", err)
	}
	rep := report(m, err)
	if rep.Verdict != rollout.NeedsPerson || ExitCodeOf(rep.Verdict) != drover.ExitNeedsPerson || !strings.Contains(rep.HaltReason, "rejected") {
		t.Errorf("report after the bug: %+v", rep)
	}
	var phases []string
	for _, j := range e.journal("d-bug") {
		phases = append(phases, j.Host+" "+j.Step+" "+j.Phase)
	}
	if got := strings.Join(phases, ", "); strings.Count(got, "start") != 2 || strings.Count(got, "done") != 2 {
		t.Errorf("journal %s: want both steps started and done", got)
	}
	var notice string
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventNotice {
			notice = ev.Message
		}
	}
	if !strings.Contains(notice, "internal error") || !strings.Contains(notice, "needs a person") && !strings.Contains(notice, "need a person") {
		t.Errorf("notice %q", notice)
	}
}
