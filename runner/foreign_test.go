package runner

import (
	"context"
	"strings"
	"testing"

	"drover"
	"drover/rollout"
)

// foreignState is a host another tool deployed, as hostops reads it: its
// release is current and foreign, with the exact link.
func foreignState(slot string) drover.HostState {
	return drover.HostState{Current: slot, Foreign: map[string]drover.Foreign{slot: {Link: "/srv/hello/releases/" + slot}}}
}

// TestFailedFirstDeployRestoresForeignRelease: a failed first deploy to a
// Capistrano-deployed fleet sends each host back to its foreign release
// with its exact link, restarts and checks it (never the stop hook), and
// every word names it: the host's line and the report the summary uses.
func TestFailedFirstDeployRestoresForeignRelease(t *testing.T) {
	e := newEnv(t, testSpec(1))
	e.fleet.SetState("h01", foreignState("20260101120000"), map[string]slotMeta{"20260101120000": {}})
	e.fleet.Fail("h01", opCheck, 1, drover.Errorf(drover.EFAILED, "503"))
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.4.2")})
	if out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	restores := e.log.ops("h01", opRestore)
	if len(restores) != 1 || restores[0].To.Foreign == nil || restores[0].To.Foreign.Link != "/srv/hello/releases/20260101120000" || restores[0].To.Current != "20260101120000" {
		t.Fatalf("restore calls %+v", restores)
	}
	var stops, restarts int
	for _, c := range e.log.ops("h01", opExec) {
		switch {
		case strings.HasPrefix(c.Arg, "bin/stop"):
			stops++
		case strings.HasPrefix(c.Arg, "bin/restart"):
			restarts++
		}
	}
	if stops != 0 || restarts != 2 {
		t.Errorf("stop hook ran %d times, restart %d times; want 0 and 2 (the new release, then the foreign one)", stops, restarts)
	}
	if h := out.Report.Hosts[0]; h.From != "foreign releases/20260101120000" || h.Status != rollout.HostFailed || !h.Switched {
		t.Errorf("report %+v", h)
	}
	found := false
	for _, ev := range e.events.events {
		if ev.Host == "h01" && strings.Contains(ev.Message, "restored to") {
			found = true
			if ev.Message != "restored to foreign releases/20260101120000" {
				t.Errorf("host line %q", ev.Message)
			}
		}
	}
	if !found {
		t.Error("no event says where h01 was restored to")
	}
}

// TestRollbackToForeignPrevious: after a good deploy, rollback goes back
// to the foreign release with its link.
func TestRollbackToForeignPrevious(t *testing.T) {
	e := newEnv(t, testSpec(1))
	st := foreignState("20260101120000")
	st.Previous, st.Current = st.Current, "1.4.2-aaaaaaaaaaaa"
	st.Version = "1.4.2"
	e.fleet.SetState("h01", st, map[string]slotMeta{"20260101120000": {}, "1.4.2-aaaaaaaaaaaa": {Release: "1.4.2-aaaaaaaaaaaa", Version: "1.4.2"}})
	out, err := e.r.Rollback(context.Background(), RollbackOptions{})
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("rollback: %v %+v", err, out)
	}
	got := e.fleet.State("h01")
	if got.Current != "20260101120000" {
		t.Fatalf("after rollback %+v", got)
	}
	if r := e.log.ops("h01", opRestore); len(r) != 1 || r[0].To.Foreign == nil {
		t.Fatalf("restore calls %+v", r)
	}
	if h := out.Report.Hosts[0]; h.From != "foreign releases/20260101120000" {
		t.Errorf("report %+v", h)
	}
}

// TestLiveDirectoryRefused: plan, deploy and rollback refuse a host whose
// current is a live directory, naming it and `drover adopt`, before any
// host changes.
func TestLiveDirectoryRefused(t *testing.T) {
	e := newEnv(t, testSpec(2))
	e.fleet.SetState("h02", drover.HostState{LiveDir: "dir"}, nil)
	rel := mkRelease(t, "1.4.2")
	_, perr := e.r.Plan(context.Background(), DeployOptions{Release: rel})
	_, derr := e.r.Deploy(context.Background(), DeployOptions{Release: rel})
	_, rerr := e.r.Rollback(context.Background(), RollbackOptions{})
	for what, err := range map[string]error{"plan": perr, "deploy": derr, "rollback": rerr} {
		if err == nil || !strings.Contains(err.Error(), "h02") || !strings.Contains(err.Error()+drover.ErrorHint(err), "drover adopt") {
			t.Errorf("%s: %v (hint %q)", what, err, drover.ErrorHint(err))
		}
	}
	if drover.ErrorCode(derr) != drover.EINVALID || drover.ErrorCode(perr) != drover.EINVALID {
		t.Errorf("codes %s %s, want EINVALID (exit 2)", drover.ErrorCode(perr), drover.ErrorCode(derr))
	}
	for _, c := range e.log.all() {
		switch c.Op {
		case opStage, opPromote, opRestore, opExec, opCheck, opPrune, opBegin:
			t.Errorf("a refused command called %s on %q", c.Op, c.Host)
		}
	}
}
