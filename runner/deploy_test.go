package runner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

func TestDeploySucceeds(t *testing.T) {
	e := newEnv(t, testSpec(5))
	v1, v2 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0")
	e.mustDeploy(v1, "")
	for name, st := range e.states() {
		if st.Current != v1.ID() || st.Previous != "" || st.Version != "1.0.0" {
			t.Errorf("%s after the first deploy: %+v", name, st.Snapshot())
		}
	}
	out := e.mustDeploy(v2, "")
	if out.Verdict != rollout.Succeeded {
		t.Fatalf("verdict %s", out.Verdict)
	}
	for name, st := range e.states() {
		if st.Current != v2.ID() || st.Previous != v1.ID() || st.Release != v2.ID() || st.ConfigHash == "" {
			t.Errorf("%s after the upgrade: %+v", name, st.Snapshot())
		}
	}
	// The canary is switched before any host of the default group.
	promotes := e.log.where(func(c call) bool { return c.Op == opPromote })
	if promotes[len(promotes)-5].Host != "h01" {
		t.Errorf("first switch of the upgrade went to %s, want the canary h01", promotes[len(promotes)-5].Host)
	}
	// Hosts that finished are pruned.
	if n := len(e.log.where(func(c call) bool { return c.Op == opPrune })); n != 10 {
		t.Errorf("%d prunes over two deploys, want 10", n)
	}
}

// stepOp is the host operation each step makes with testSpec.
var stepOp = map[string]string{
	"stage": opStage, "switch": opPromote, "restore": opRestore,
	"depool": opExec, "repool": opExec, "restart": opExec, "check": opCheck,
}

// checkJournalOrder asserts, over the call log from mark on, that deploy id
// wrote Begin before any host call that changes a host, that every host call of
// a step lies between that step's "start" and "done" journal entries (both
// durable by then), that no host runs two steps at once, and that Finish
// comes after the last journal entry.
func checkJournalOrder(t *testing.T, log *callLog, id string, mark int) {
	t.Helper()
	calls := log.since(mark)
	begin := slices.IndexFunc(calls, func(c call) bool { return c.Op == opBegin && c.Arg == id })
	finish := slices.IndexFunc(calls, func(c call) bool { return c.Op == opFinish && c.Arg == id })
	if begin < 0 || finish < 0 {
		t.Fatalf("deploy %s: begin at %d, finish at %d", id, begin, finish)
	}
	active := map[string]string{}
	seen := map[string]bool{}
	starts := 0
	for i, c := range calls {
		switch {
		case c.Op == opAppend && c.Arg == id:
			if i > finish {
				t.Errorf("journal entry %+v after finish", c.Entry)
			}
			h, step := c.Entry.Host, c.Entry.Step
			switch c.Entry.Phase {
			case "start":
				starts++
				if cur := active[h]; cur != "" {
					t.Errorf("%s: %s started while %s still running", h, step, cur)
				}
				active[h], seen[h] = step, false
			case "done":
				if active[h] != step {
					t.Errorf("%s: %s done, but the step running is %q", h, step, active[h])
				}
				if !seen[h] {
					t.Errorf("%s: step %s journaled with no host call in between", h, step)
				}
				if c.Entry.Outcome == "" {
					t.Errorf("%s: done entry of %s has no outcome", h, step)
				}
				delete(active, h)
			default:
				t.Errorf("journal entry with phase %q", c.Entry.Phase)
			}
		case changesHost(c.Op) && c.Op != opPrune || c.Op == opCheck:
			if i < begin {
				t.Errorf("%s %s before the deploy was begun", c.Host, c.Op)
			}
			if i > finish {
				continue // another run's calls
			}
			step := active[c.Host]
			if step == "" {
				t.Errorf("%s %s %q outside any journaled step", c.Host, c.Op, c.Arg)
				continue
			}
			if stepOp[step] != c.Op {
				t.Errorf("%s: %s call during step %s", c.Host, c.Op, step)
			}
			seen[c.Host] = true
		}
	}
	if len(active) > 0 {
		t.Errorf("steps never journaled done: %v", active)
	}
	if starts == 0 {
		t.Errorf("deploy %s journaled nothing", id)
	}
}

func TestJournalBracketsEveryHostCall(t *testing.T) {
	e := newEnv(t, testSpec(5))
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	v2 := mkRelease(t, "2.0.0")
	// h04 fails its check: within the limit, so it is restored and the
	// deploy finishes with exit 4 — a run with every kind of step.
	e.fleet.Fail("h04", opCheck, 1, drover.Errorf(drover.EFAILED, "503 from /health"))
	mark := e.log.mark()
	out := e.deploy(context.Background(), DeployOptions{Release: v2})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d (%s), want %d", out.ExitCode, out.Summary, drover.ExitPartial)
	}
	checkJournalOrder(t, e.log, out.DeployID, mark)

	// Hooks ran the right commands, in order, on a host that went well.
	var cmds []string
	for _, c := range e.log.since(mark) {
		if c.Host == "h02" && (c.Op == opExec || c.Op == opPromote) {
			cmds = append(cmds, c.Op+" "+c.Arg)
		}
	}
	want := []string{"exec lb out h02", "promote " + v2.ID(), "exec bin/restart /srv/hello", "exec lb in h02"}
	if !slices.Equal(cmds, want) {
		t.Errorf("h02 calls %q, want %q", cmds, want)
	}

	// The failed check is journaled with its outcome and reason, then h04
	// goes through the restore path.
	var h04 []string
	for _, j := range e.journal(out.DeployID) {
		if j.Host == "h04" && j.Phase == "done" {
			h04 = append(h04, j.Step+":"+j.Outcome)
			if j.Step == "check" && j.Outcome == "failed" && !strings.Contains(j.Reason, "503 from /health") {
				t.Errorf("check done entry lacks the reason: %+v", j)
			}
		}
	}
	want = []string{"stage:ok", "depool:ok", "switch:ok", "restart:ok", "check:failed", "restore:ok", "restart:ok", "check:ok", "repool:ok"}
	if !slices.Equal(h04, want) {
		t.Errorf("h04 journal %q, want %q", h04, want)
	}

	rec := e.record(out.DeployID)
	if rec.Outcome != drover.OutcomePartial || rec.ExitCode != drover.ExitPartial || rec.Finished.IsZero() {
		t.Errorf("finish record: outcome %q exit %d finished %v", rec.Outcome, rec.ExitCode, rec.Finished)
	}
	if len(rec.Hosts) != 5 || rec.Hosts[3].Before.Current == "" {
		t.Errorf("begin record hosts = %+v", rec.Hosts)
	}
}

func TestStageRetriedWithBackoff(t *testing.T) {
	run := func(t *testing.T) ([]time.Duration, *env, *Outcome) {
		spec := testSpec(3)
		spec.StageRetries = 4
		e := newEnv(t, spec)
		e.fleet.Fail("h02", opStage, 2, drover.Errorf(drover.EUNREACHABLE, "connection reset"))
		e.fleet.Fail("h02", opStage, 2, drover.Errorf(drover.ETIMEOUT, "transfer timed out"))
		out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
		return e.sleeps.all(), e, out
	}
	sleeps, e, out := run(t)
	if out.ExitCode != 0 {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	if n := len(e.log.ops("h02", opStage)); n != 5 {
		t.Errorf("h02 staged %d times, want 5 (4 failures, then success)", n)
	}
	if n := len(e.log.ops("h01", opStage)); n != 1 {
		t.Errorf("h01 staged %d times, want 1", n)
	}
	if len(sleeps) != 4 {
		t.Fatalf("slept %v, want 4 pauses", sleeps)
	}
	for i, d := range sleeps {
		base := 200 * time.Millisecond << i
		if d < base/2 || d >= base {
			t.Errorf("pause %d is %s, want in [%s, %s)", i+1, d, base/2, base)
		}
		if i > 0 && d <= sleeps[i-1] {
			t.Errorf("pauses do not grow: %v", sleeps)
		}
	}
	// A fixed seed replays the same pauses.
	again, _, _ := run(t)
	if !slices.Equal(sleeps, again) {
		t.Errorf("same seed, different pauses: %v then %v", sleeps, again)
	}
	// The retries are announced.
	n := 0
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventNotice && ev.Host == "h02" && strings.Contains(ev.Message, "retrying stage") {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d retry notices, want 4", n)
	}
}

func TestBackoffJitteredGrowingCapped(t *testing.T) {
	spec := testSpec(1)
	x := newExecutor(&Runner{Spec: spec}, nil, nil, "d-1", nil)
	y := newExecutor(&Runner{Spec: spec}, nil, nil, "d-1", nil)
	spec2 := testSpec(1)
	spec2.Seed = 8
	z := newExecutor(&Runner{Spec: spec2}, nil, nil, "d-1", nil)
	var xs, zs []time.Duration
	rule := x.retryRule(rollout.Action{Host: "h01", Step: rollout.StepStage})
	for attempt := 1; attempt <= 100; attempt++ {
		d := x.backoff(rule, attempt)
		if d != y.backoff(rule, attempt) {
			t.Fatalf("attempt %d: same seed gave different pauses", attempt)
		}
		xs = append(xs, d)
		zs = append(zs, z.backoff(rule, attempt))
		base := min(200*time.Millisecond<<min(attempt-1, 20), 10*time.Second)
		if d < base/2 || d >= base {
			t.Errorf("attempt %d: pause %s outside [%s, %s)", attempt, d, base/2, base)
		}
		if d >= 10*time.Second {
			t.Errorf("attempt %d: pause %s above the 10s cap", attempt, d)
		}
	}
	if slices.Equal(xs, zs) {
		t.Error("seeds 7 and 8 gave the same pauses: no jitter")
	}
	// Jitter: the capped pauses are not all the same.
	capped := xs[len(xs)-10:]
	if slices.Min(capped) == slices.Max(capped) {
		t.Errorf("capped pauses are all %s: no jitter", capped[0])
	}
}

func TestStageValidationFailureNotRetried(t *testing.T) {
	e := newEnv(t, testSpec(5))
	e.fleet.Fail("h03", opStage, 1, drover.Errorf(drover.EFAILED, "bin/app -check: bad port"))
	e.fleet.Fail("h04", opStage, 1, drover.Errorf(drover.EINVALID, "template app.conf.tmpl: missing key"))
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	// Two failures in a group with limit 1: halted during staging, with
	// nothing switched and nothing to roll back.
	if out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	for _, h := range []string{"h03", "h04"} {
		if n := len(e.log.ops(h, opStage)); n != 1 {
			t.Errorf("%s staged %d times, want 1: a failed validation is not retried", h, n)
		}
	}
	if s := e.sleeps.all(); len(s) != 0 {
		t.Errorf("slept %v", s)
	}
	if n := len(e.log.where(func(c call) bool { return c.Op == opPromote || c.Op == opExec })); n != 0 {
		t.Errorf("%d switches or hooks after a halt during staging", n)
	}
	if !strings.Contains(out.Summary, "bad port") && !strings.Contains(out.Report.HaltReason, "missing key") {
		t.Errorf("summary does not say why: %s", out.Summary)
	}
}

// TestInterruptRollsBack is Ctrl-C in the middle of a deploy: the switch in
// flight finishes under a context that is not cancelled, no other host
// starts, and every host this deploy switched goes back to exactly what it
// was on.
func TestInterruptRollsBack(t *testing.T) {
	e := newEnv(t, testSpec(6))
	e.mustDeploy(mkRelease(t, "0.9.0"), "")
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.states()
	v2 := mkRelease(t, "2.0.0")

	held := e.fleet.Hold("h03", opPromote)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	halted := e.events.next(drover.EventHalt)
	mark := e.log.mark()
	done := make(chan *Outcome)
	go func() {
		out, err := e.r.Deploy(ctx, DeployOptions{Release: v2})
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	waitFor(t, held.entered, "h03's switch")
	cancel(errors.New("interrupt"))
	// Release the switch only once the runner has taken the interrupt, so
	// the test proves the step was left to finish rather than racing it.
	waitFor(t, halted, "the halt")
	held.Release()
	var out *Outcome
	select {
	case out = <-done:
	case <-time.After(time.Minute):
		t.Fatal("deploy did not return after the interrupt")
	}
	if err := <-held.ctxErr; err != nil {
		t.Errorf("the switch in flight saw its context end: %v", err)
	}
	if out.Verdict != rollout.RolledBack || out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("verdict %s exit %d: %s", out.Verdict, out.ExitCode, out.Summary)
	}
	if !strings.Contains(out.Report.HaltReason, "interrupt") {
		t.Errorf("halt reason %q", out.Report.HaltReason)
	}
	e.wantSnapshots(before)

	after := e.log.since(mark)
	// No host past the first batch of the default group started.
	for _, c := range after {
		if (c.Host == "h04" || c.Host == "h05" || c.Host == "h06") && (c.Op == opExec || c.Op == opPromote || c.Op == opRestore) {
			t.Errorf("%s got %s %q after the interrupt", c.Host, c.Op, c.Arg)
		}
	}
	// Every switched host was restored to its pre-deploy snapshot, the
	// default group before the canary, under live contexts.
	var restored []string
	for _, c := range after {
		if c.Op != opRestore {
			continue
		}
		restored = append(restored, c.Host)
		if c.To != before[c.Host].Snapshot() {
			t.Errorf("%s restored to %+v, want %+v", c.Host, c.To, before[c.Host].Snapshot())
		}
		if c.CtxErr != nil {
			t.Errorf("%s restored under a cancelled context", c.Host)
		}
	}
	if len(restored) < 2 || restored[len(restored)-1] != "h01" || !slices.Contains(restored, "h03") {
		t.Errorf("restored %v, want h03 (and h02 if it switched) then the canary h01 last", restored)
	}
	rec := e.record(out.DeployID)
	if rec.Outcome != drover.OutcomeRolledBack || rec.ExitCode != 1 {
		t.Errorf("history: outcome %q exit %d", rec.Outcome, rec.ExitCode)
	}
	checkJournalOrder(t, e.log, out.DeployID, mark)
}

// TestNothingHangs: when every step fails or every host is gone, the
// deploy still ends, with the exit code that says what happened.
func TestNothingHangs(t *testing.T) {
	unreach := drover.Errorf(drover.EUNREACHABLE, "no route to host")
	failed := drover.Errorf(drover.EFAILED, "exit 1")
	cases := []struct {
		name   string
		script func(f *fakeFleet, hosts []string)
		code   int
	}{
		{"every host unreachable", func(f *fakeFleet, hosts []string) {
			for _, h := range hosts {
				f.SetDown(h, true)
			}
		}, drover.ExitNeedsPerson},
		{"every stage fails", func(f *fakeFleet, hosts []string) {
			for _, h := range hosts {
				f.Fail(h, opStage, -1, failed)
			}
		}, drover.ExitRolledBack},
		{"every hook unreachable", func(f *fakeFleet, hosts []string) {
			for _, h := range hosts {
				f.Fail(h, opExec, -1, unreach)
			}
		}, drover.ExitNeedsPerson},
		{"every check and restore fails", func(f *fakeFleet, hosts []string) {
			for _, h := range hosts {
				f.Fail(h, opCheck, -1, failed)
				f.Fail(h, opRestore, -1, failed)
			}
		}, drover.ExitNeedsPerson},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, testSpec(6))
			c.script(e.fleet, hostNames(6))
			done := make(chan *Outcome, 1)
			go func() {
				out, err := e.r.Deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
				if err != nil {
					t.Error(err)
				}
				done <- out
			}()
			var out *Outcome
			select {
			case out = <-done:
			case <-time.After(time.Minute):
				t.Fatal("deploy hung")
			}
			if out == nil {
				return
			}
			if out.ExitCode != c.code {
				t.Errorf("exit %d, want %d: %s", out.ExitCode, c.code, out.Summary)
			}
			if rec := e.record(out.DeployID); rec.ExitCode != c.code || rec.Finished.IsZero() {
				t.Errorf("history: exit %d finished %v", rec.ExitCode, rec.Finished)
			}
		})
	}
}

// TestUnreadableHostIsNotDeployed: a host whose state.json could not be
// read before the deploy has an unknown pre-deploy release, so restoring
// it would mean guessing. It is reported unreachable and never staged or
// switched, even when it answers again by the time it would be.
func TestUnreadableHostIsNotDeployed(t *testing.T) {
	e := newEnv(t, testSpec(5))
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.fleet.State("h03")
	e.fleet.Fail("h03", opState, 1, drover.Errorf(drover.EUNREACHABLE, "connection timed out"))
	mark := e.log.mark()
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.ExitCode != drover.ExitNeedsPerson {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	for _, c := range e.log.since(mark) {
		if c.Host == "h03" && changesHost(c.Op) {
			t.Errorf("h03 got %s %q", c.Op, c.Arg)
		}
	}
	if got := e.fleet.State("h03").Snapshot(); got != before.Snapshot() {
		t.Errorf("h03 changed: %+v", got)
	}
	for _, h := range out.Report.Hosts {
		want := rollout.HostDone
		if h.Name == "h03" {
			want = rollout.HostUnreachable
		}
		if h.Status != want {
			t.Errorf("%s: %s, want %s (%s)", h.Name, h.Status, want, h.Reason)
		}
	}
}

func TestSkipAlreadyDeployed(t *testing.T) {
	e := newEnv(t, testSpec(4))
	v1 := mkRelease(t, "1.0.0")
	e.mustDeploy(v1, "")
	before := e.states()

	// Same release, same config: every host skipped, nothing touched.
	mark := e.log.mark()
	out := e.mustDeploy(v1, "")
	for _, c := range e.log.since(mark) {
		if changesHost(c.Op) && c.Op != opPrune {
			t.Errorf("%s got %s on a re-deploy of the same release", c.Host, c.Op)
		}
	}
	for _, h := range out.Report.Hosts {
		if h.Status != rollout.HostSkipped {
			t.Errorf("%s: %s, want skipped", h.Name, h.Status)
		}
	}
	for _, h := range e.record(out.DeployID).Hosts {
		if !h.Skipped {
			t.Errorf("history does not record %s as skipped", h.Name)
		}
	}
	e.wantSnapshots(before)

	// A config-only change (h03's port) deploys h03 alone, to a slot of
	// its own: the promoted directory is never modified.
	e.spec.Hosts[2].Vars = map[string]any{"port": uint64(19999)}
	mark = e.log.mark()
	out = e.mustDeploy(v1, "")
	var promoted []string
	for _, c := range e.log.since(mark) {
		if c.Op == opPromote {
			promoted = append(promoted, c.Host+" "+c.Arg)
		}
	}
	if len(promoted) != 1 || !strings.HasPrefix(promoted[0], "h03 "+v1.ID()+"+") {
		t.Errorf("config-only change promoted %q, want h03 to %s+<hash>", promoted, v1.ID())
	}
	if st := e.fleet.State("h03"); st.Previous != v1.ID() || st.ConfigHash == before["h03"].ConfigHash {
		t.Errorf("h03 after the config change: %+v", st.Snapshot())
	}

	// --force deploys to every host anyway.
	mark = e.log.mark()
	e.deploy(context.Background(), DeployOptions{Release: v1, Force: true})
	for _, h := range hostNames(4) {
		if len(e.log.where(func(c call) bool { return c.Seq >= mark && c.Host == h && c.Op == opPromote })) != 1 {
			t.Errorf("--force did not switch %s", h)
		}
	}
}
