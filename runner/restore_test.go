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

// crash leaves, through the Store, the record and journal of a deploy of
// rel that died after switching h01 and while switching h02; on the fake
// hosts h01 and h02 are on rel, and every host has rel staged.
func (e *env) crash(id string, rel *drover.Release) map[string]drover.HostState {
	e.t.Helper()
	ctx := context.Background()
	before := e.states()
	rec := drover.DeployRecord{ID: id, Key: Key(e.spec), Kind: drover.KindDeploy, Service: e.spec.Service, Release: rel.ID(), Version: rel.Version(), User: "ops", Machine: "laptop", Started: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, h := range e.spec.Hosts {
		rec.Hosts = append(rec.Hosts, drover.DeployHost{Name: h.Name, Group: h.Group, Before: before[h.Name].Snapshot()})
	}
	if err := e.store.Begin(ctx, rec); err != nil {
		e.t.Fatal(err)
	}
	at := rec.Started
	j := func(host, step string, phase drover.JournalPhase) {
		at = at.Add(time.Second)
		out := ""
		if phase == drover.PhaseDone {
			out = "ok"
		}
		if err := e.store.Append(ctx, id, drover.JournalEntry{At: at, Host: host, Step: step, Phase: phase, Outcome: out}); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, h := range e.spec.Hosts {
		j(h.Name, "stage", "start")
		j(h.Name, "stage", "done")
		e.fleet.mu.Lock()
		e.fleet.hosts[h.Name].slots[rel.ID()] = fakeSlot{meta: slotMeta{Release: rel.ID(), Version: rel.Version(), ConfigHash: "crashed"}}
		e.fleet.mu.Unlock()
	}
	for _, s := range []string{"depool", "switch", "restart", "check", "repool"} {
		j("h01", s, "start")
		j("h01", s, "done")
	}
	j("h02", "depool", "start")
	j("h02", "depool", "done")
	j("h02", "switch", "start")
	for _, h := range []string{"h01", "h02"} {
		st := e.fleet.State(h)
		st.Previous, st.Current, st.Release, st.Version, st.ConfigHash = st.Current, rel.ID(), rel.ID(), rel.Version(), "crashed"
		e.fleet.SetState(h, st, nil)
	}
	return before
}

func TestDeployRecoversInterruptedDeployFirst(t *testing.T) {
	e := newEnv(t, testSpec(4))
	v1, v2 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0")
	e.mustDeploy(mkRelease(t, "0.9.0"), "")
	e.mustDeploy(v1, "")
	before := e.crash("d-crashed", v2)

	mark := e.log.mark()
	out := e.mustDeploy(v2, "")
	after := e.log.since(mark)

	// Recovery first: h01 and h02, and only they, are restored to their
	// recorded pre-deploy snapshots before the new deploy stages anything.
	firstStage := slices.IndexFunc(after, func(c call) bool { return c.Op == opStage })
	var restored []string
	for i, c := range after {
		if c.Op != opRestore {
			continue
		}
		restored = append(restored, c.Host)
		if i > firstStage {
			t.Errorf("%s restored after the new deploy began staging", c.Host)
		}
		if c.To != before[c.Host].Snapshot() {
			t.Errorf("%s restored to %+v, want its snapshot %+v", c.Host, c.To, before[c.Host].Snapshot())
		}
	}
	slices.Sort(restored)
	if !slices.Equal(restored, []string{"h01", "h02"}) {
		t.Errorf("restored %v, want h01 and h02", restored)
	}
	if len(out.Recovered) != 1 || out.Recovered[0].ExitCode != 0 || out.Recovered[0].Kind != drover.KindRecover {
		t.Fatalf("recovered = %+v", out.Recovered)
	}

	old := e.record("d-crashed")
	if old.Outcome != drover.OutcomeInterrupted || !strings.Contains(old.Summary, out.Recovered[0].DeployID) {
		t.Errorf("the crashed deploy is recorded as %q: %s", old.Outcome, old.Summary)
	}
	if u, _ := e.store.Unfinished(context.Background(), Key(e.spec)); len(u) != 0 {
		t.Errorf("still unfinished: %v", u)
	}
	rec := e.record(out.Recovered[0].DeployID)
	if rec.Kind != drover.KindRecover || rec.Outcome != drover.OutcomeSucceeded {
		t.Errorf("recovery record: kind %q outcome %q", rec.Kind, rec.Outcome)
	}
	checkJournalOrder(t, e.log, out.Recovered[0].DeployID, mark)

	// Then the new deploy ran: every host on v2 with v1 — not v2 — as
	// previous, which it could only have if h01 and h02 went back first.
	for name, st := range e.states() {
		if st.Current != v2.ID() || st.Previous != v1.ID() {
			t.Errorf("%s: current %s previous %s, want %s %s", name, st.Current, st.Previous, v2.ID(), v1.ID())
		}
	}
}

// TestRecoverTwoInterrupted: two deploys that never finished (the second
// being a recovery that itself died) are both recovered, with the default
// id source, in one run.
func TestRecoverTwoInterrupted(t *testing.T) {
	e := newEnv(t, testSpec(3))
	e.r.NewID = nil
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	e.crash("d-crashed-1", mkRelease(t, "2.0.0"))
	e.crash("d-crashed-2", mkRelease(t, "3.0.0"))
	outs, err := e.r.Resume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].DeployID == outs[1].DeployID {
		t.Fatalf("recovered %d deploys: %+v", len(outs), outs)
	}
	for _, o := range outs {
		if o.ExitCode != 0 {
			t.Errorf("recovery %s: exit %d: %s", o.DeployID, o.ExitCode, o.Summary)
		}
	}
	for _, id := range []string{"d-crashed-1", "d-crashed-2"} {
		if r := e.record(id); r.Outcome != drover.OutcomeInterrupted {
			t.Errorf("%s: outcome %q", id, r.Outcome)
		}
	}
}

func TestRollbackToEachHostsPrevious(t *testing.T) {
	e := newEnv(t, testSpec(4))
	v1, v2, v3 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0"), mkRelease(t, "3.0.0")
	e.mustDeploy(v1, "")
	e.mustDeploy(v2, "")
	e.mustDeploy(v3, "h01") // the canary alone went further
	mark := e.log.mark()
	out, err := e.r.Rollback(context.Background(), RollbackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != 0 || out.Verdict != rollout.Succeeded {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	want := map[string]drover.Snapshot{
		"h01": {Current: v2.ID(), Previous: v1.ID(), Release: v2.ID(), Version: "2.0.0"},
		"h02": {Current: v1.ID(), Previous: "", Release: v1.ID(), Version: "1.0.0"},
	}
	want["h03"], want["h04"] = want["h02"], want["h02"]
	for name, w := range want {
		got := e.fleet.State(name).Snapshot()
		got.ConfigHash = ""
		if got != w {
			t.Errorf("%s after rollback: %+v, want %+v", name, got, w)
		}
		restores := e.log.where(func(c call) bool { return c.Seq >= mark && c.Host == name && c.Op == opRestore })
		if len(restores) != 1 || restores[0].To.Current != w.Current {
			t.Errorf("%s restores: %+v", name, restores)
		}
	}
	if rec := e.record(out.DeployID); rec.Kind != drover.KindRollback || rec.Outcome != drover.OutcomeSucceeded {
		t.Errorf("history: %q %q", rec.Kind, rec.Outcome)
	}
	checkJournalOrder(t, e.log, out.DeployID, mark)
}

func TestRollbackWithoutPreviousTouchesNothing(t *testing.T) {
	e := newEnv(t, testSpec(4))
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	e.mustDeploy(mkRelease(t, "2.0.0"), "!h04") // h04 has no previous
	before := e.states()
	mark := e.log.mark()
	_, err := e.r.Rollback(context.Background(), RollbackOptions{})
	if drover.ErrorCode(err) != drover.ENOTFOUND || !strings.Contains(err.Error(), "h04") || strings.Contains(err.Error(), "h03") {
		t.Fatalf("err = %v (%s), want ENOTFOUND naming h04 alone", err, drover.ErrorCode(err))
	}
	if drover.ExitCode(err) != drover.ExitUsage {
		t.Errorf("exit %d", drover.ExitCode(err))
	}
	for _, c := range e.log.since(mark) {
		if changesHost(c.Op) || c.Op == opBegin || c.Op == opAppend {
			t.Errorf("%s %s %q after a refused rollback", c.Host, c.Op, c.Arg)
		}
	}
	e.wantSnapshots(before)
	// --limit leaving h04 out rolls back the rest.
	out, err := e.r.Rollback(context.Background(), RollbackOptions{Limit: "!h04"})
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("rollback --limit '!h04': %v %+v", err, out)
	}
}

// TestFirstDeployRolledBackStopsService: a host that had no release before
// is restored to none — no current link — and its service is stopped from
// the release it was running, never left serving the failed release.
func TestFirstDeployRolledBackStopsService(t *testing.T) {
	e := newEnv(t, testSpec(3))
	e.fleet.Fail("h01", opCheck, 1, drover.Errorf(drover.EFAILED, "503"))
	v1 := mkRelease(t, "1.0.0")
	out := e.deploy(context.Background(), DeployOptions{Release: v1})
	if out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	if st := e.fleet.State("h01"); st.Current != "" || st.Previous != "" {
		t.Errorf("h01 after a failed first deploy: %+v", st.Snapshot())
	}
	var stops []call
	for _, c := range e.log.ops("h01", opExec, opRestore, opCheck) {
		if c.Op == opExec && strings.HasPrefix(c.Arg, "bin/stop") {
			stops = append(stops, c)
		}
	}
	if len(stops) != 1 || stops[0].Dir != "releases/"+v1.ID() {
		t.Errorf("stop hook calls %+v, want one in releases/%s", stops, v1.ID())
	}
	// Nothing checks a service that should not be running.
	if n := len(e.log.ops("h01", opCheck)); n != 1 {
		t.Errorf("h01 checked %d times, want only the failed check", n)
	}
	for _, h := range []string{"h02", "h03"} {
		if n := len(e.log.ops(h, opPromote)); n != 0 {
			t.Errorf("%s switched after the canary failed", h)
		}
	}
}
