package runner

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

// TestEmitNoteKinds: every note kind the core reports (rollout.NoteKinds,
// which rollout's own test keeps complete) becomes an event of a kind
// package drover declares, a kind of its own — no two notes share one —
// or a notice; the verdict note becomes nothing, because finish reports
// the verdict with its outcome. Fields go over unchanged. The expected
// kinds come from the declared lists, not from a copy of noteEvents: a
// note kind added to the core without an event fails here.
func TestEmitNoteKinds(t *testing.T) {
	declared := map[string]bool{}
	for _, k := range drover.EventKinds {
		declared[k] = true
	}
	// The note kinds that are notices by design: a frozen deploy is told
	// in words, and consumers get its verdict (needs_person).
	notices := map[rollout.NoteKind]bool{rollout.NoteFreeze: true}
	ev := &eventRec{}
	r := &Runner{Events: ev}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	owner := map[string]rollout.NoteKind{}
	for _, kind := range append(slices.Clone(rollout.NoteKinds), "something_new") {
		before := len(ev.all())
		r.emitNote("d-1", rollout.Note{Time: at, Kind: kind, Group: "g", Host: "h01", Gate: "approve", Message: "m " + string(kind)})
		got := ev.all()
		if kind == rollout.NoteVerdict {
			if len(got) != before {
				t.Errorf("the core's verdict note became %+v; finish reports the verdict", got[before:])
			}
			continue
		}
		if len(got) != before+1 {
			t.Fatalf("note %s became %d events", kind, len(got)-before)
		}
		e := got[len(got)-1]
		if e.Message != "m "+string(kind) || e.Host != "h01" || e.Group != "g" || e.Gate != "approve" || !e.Time.Equal(at) || e.Schema != drover.EventSchema {
			t.Errorf("note %s lost a field: %+v", kind, e)
		}
		switch {
		case !declared[e.Kind]:
			t.Errorf("note %s became undeclared kind %q", kind, e.Kind)
		case kind == "something_new" || notices[kind]:
			if e.Kind != drover.EventNotice {
				t.Errorf("note %s became %s, want a notice", kind, e.Kind)
			}
		case e.Kind == drover.EventNotice:
			t.Errorf("note %s became a notice: map it to an event kind in noteEvents (and drover.EventKinds, docs/events.md)", kind)
		case owner[e.Kind] != "":
			t.Errorf("notes %s and %s both became %s", owner[e.Kind], kind, e.Kind)
		default:
			owner[e.Kind] = kind
		}
	}
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
		if !slices.Contains(drover.EventKinds, ev.Kind) {
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
	run := func(ctx context.Context, a *rollout.Action) rollout.Result {
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
		phases = append(phases, j.Host+" "+j.Step+" "+string(j.Phase))
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

// TestStepEventsMatchTheJournal: the step events a deploy emits are its
// journal entries, in the journal's order, each with the group its step
// began in — also across a failure, a halt and a rollback. A write holds
// its events as references to its entries and actions (driver.go,
// pendingEvent) and builds them when released; a reference off by one
// would name another host's step here.
func TestStepEventsMatchTheJournal(t *testing.T) {
	e := newEnv(t, testSpec(6))
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	e.fleet.Fail("h03", opCheck, 1, drover.Errorf(drover.EFAILED, "503"))
	e.fleet.Fail("h05", opCheck, 1, drover.Errorf(drover.EFAILED, "503"))
	before := len(e.events.all())
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	journal, err := e.store.Journal(context.Background(), out.DeployID)
	if err != nil {
		t.Fatal(err)
	}
	var steps []drover.JournalEntry
	for _, je := range journal {
		if je.Host != "" && (je.Phase == drover.PhaseStart || je.Phase == drover.PhaseDone) {
			steps = append(steps, je)
		}
	}
	groupOf := map[string]string{}
	for _, h := range e.spec.Hosts {
		groupOf[h.Name] = h.Group
	}
	i := 0
	for _, ev := range e.events.all()[before:] {
		if ev.Kind != drover.EventStepStart && ev.Kind != drover.EventStepDone {
			continue
		}
		if i >= len(steps) {
			t.Fatalf("event %+v has no journal entry: the journal has %d step entries", ev, len(steps))
		}
		je := steps[i]
		i++
		phase := drover.PhaseStart
		if ev.Kind == drover.EventStepDone {
			phase = drover.PhaseDone
		}
		if ev.Host != je.Host || ev.Step != je.Step || phase != je.Phase || ev.Restoring != je.Restoring ||
			ev.Outcome != je.Outcome || ev.Message != je.Reason || ev.Deploy != out.DeployID {
			t.Fatalf("event %d is %s %s %s (restoring %v, outcome %q, %q), journal entry is %s %s %s (restoring %v, outcome %q, %q)",
				i, ev.Kind, ev.Host, ev.Step, ev.Restoring, ev.Outcome, ev.Message, je.Phase, je.Host, je.Step, je.Restoring, je.Outcome, je.Reason)
		}
		if ev.Group == "" || (groupOf[ev.Host] != "" && ev.Group != groupOf[ev.Host]) {
			t.Errorf("%s %s %s: group %q, want %q", ev.Kind, ev.Host, ev.Step, ev.Group, groupOf[ev.Host])
		}
		if ev.Kind == drover.EventStepStart && ev.Timeout <= 0 {
			t.Errorf("step_start %s %s has no timeout", ev.Host, ev.Step)
		}
	}
	if i != len(steps) {
		t.Fatalf("%d step events for %d journal step entries", i, len(steps))
	}
}
