package runner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

// failExec makes every exec whose command is in fail exit with 1.
func failExec(e *env, fail ...string) {
	e.fleet.OnOpen = func(c *fakeConn) {
		orig := c.ExecFunc
		c.ExecFunc = func(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error) {
			res, err := orig(ctx, req)
			if err == nil && slices.Contains(fail, req.Command) {
				return drover.ExecResult{ExitCode: 1, Output: "refused by test"}, nil
			}
			return res, err
		}
	}
}

// execs returns host's exec calls as "command @dir".
func execs(e *env, host string, since int) []string {
	var out []string
	for _, c := range e.log.since(since) {
		if c.Host == host && c.Op == opExec {
			out = append(out, c.Arg+" @"+c.Dir)
		}
	}
	return out
}

func hostReport(out *Outcome, name string) rollout.HostReport {
	for _, h := range out.Report.Hosts {
		if h.Name == name {
			return h
		}
	}
	return rollout.HostReport{}
}

// TestLifecycleHooksOrderAndDirs: every lifecycle hook runs around its step,
// in the directory of the release it is about, seeing the release of the
// path; on a first deploy the hooks about "current" run in the deploy
// root, as there is no current release yet.
func TestLifecycleHooksOrderAndDirs(t *testing.T) {
	spec := testSpec(1)
	spec.Hooks.WaitIdle = "lb wait {{.Host.Name}}"
	spec.Hooks.BeforeStage = "bs {{.Release.Version}}"
	spec.Hooks.AfterStage = "as {{.Release.Version}}"
	spec.Hooks.BeforePromote = "bp {{.Release.Version}}"
	spec.Hooks.AfterPromote = "ap {{.Release.Version}}"
	spec.Hooks.BeforeRestart = "br {{.Release.Version}}"
	spec.Hooks.AfterRestart = "ar {{.Release.Version}}"
	spec.Hooks.BeforeRollback = "bb {{.Release.Version}}"
	spec.Hooks.AfterRollback = "ab {{.Release.Version}}"
	e := newEnv(t, spec)
	v1, v2 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0")

	m := e.log.mark()
	e.mustDeploy(v1, "")
	s1 := e.fleet.State("h01").Current
	want := []string{
		"bs 1.0.0 @.", "as 1.0.0 @releases/" + s1,
		"lb out h01 @.", "lb wait h01 @.",
		"bp 1.0.0 @releases/" + s1, "ap 1.0.0 @",
		"br 1.0.0 @", "bin/restart /srv/hello @", "ar 1.0.0 @",
		"lb in h01 @",
	}
	if got := execs(e, "h01", m); !slices.Equal(got, want) {
		t.Errorf("first deploy\n got %q\nwant %q", got, want)
	}

	// A failed check: the restore path runs the rollback hooks around the
	// restore, seeing the release it goes back to.
	e.fleet.Fail("h01", opCheck, 1, drover.Errorf(drover.EFAILED, "503"))
	m = e.log.mark()
	out := e.deploy(context.Background(), DeployOptions{Release: v2})
	if out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	s2 := e.fleet.State("h01").History[1].To
	want = []string{
		"bs 2.0.0 @.", "as 2.0.0 @releases/" + s2,
		"lb out h01 @", "lb wait h01 @",
		"bp 2.0.0 @releases/" + s2, "ap 2.0.0 @",
		"br 2.0.0 @", "bin/restart /srv/hello @", "ar 2.0.0 @",
		"bb 1.0.0 @", "ab 1.0.0 @",
		"br 1.0.0 @", "bin/restart /srv/hello @", "ar 1.0.0 @",
		"lb in h01 @",
	}
	if got := execs(e, "h01", m); !slices.Equal(got, want) {
		t.Errorf("failed deploy\n got %q\nwant %q", got, want)
	}
}

// TestBeforePromoteRefusalLeavesHostUntouched: a failing before_promote
// fails its host before anything changed: never switched, never restored
// or restarted, only repooled; state.json as it was.
func TestBeforePromoteRefusalLeavesHostUntouched(t *testing.T) {
	spec := testSpec(3)
	spec.Hooks.BeforePromote = "ready-for {{.Release.Version}} on {{.Host.Name}}"
	e := newEnv(t, spec)
	v1, v2 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0")
	e.mustDeploy(v1, "")
	before := e.fleet.State("h03")
	failExec(e, "ready-for 2.0.0 on h03")

	m := e.log.mark()
	out := e.deploy(context.Background(), DeployOptions{Release: v2})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d, want 4: %s", out.ExitCode, out.Summary)
	}
	if got, want := execs(e, "h03", m), []string{"lb out h03 @", "ready-for 2.0.0 on h03 @releases/" + stagedSlot(e, "h03", v2), "lb in h03 @"}; !slices.Equal(got, want) {
		t.Errorf("h03 execs\n got %q\nwant %q", got, want)
	}
	for _, c := range e.log.since(m) {
		if c.Host == "h03" && (c.Op == opPromote || c.Op == opRestore) {
			t.Errorf("h03: %s after its before_promote refused", c.Op)
		}
	}
	if after := e.fleet.State("h03"); !slices.Equal(after.History, before.History) || after.Snapshot() != before.Snapshot() {
		t.Errorf("h03 state changed:\n%+v\n%+v", before, after)
	}
	h := hostReport(out, "h03")
	if h.Status != rollout.HostFailed || h.Switched || !strings.Contains(h.Reason, "before_promote hook exited 1: refused by test") {
		t.Errorf("h03 report %+v", h)
	}
	for _, name := range []string{"h01", "h02"} {
		if v := e.fleet.State(name).Version; v != "2.0.0" {
			t.Errorf("%s on %s", name, v)
		}
	}
}

// stagedSlot is the slot host staged rel in.
func stagedSlot(e *env, host string, rel *drover.Release) string {
	for _, c := range e.log.all() {
		if c.Host == host && c.Op == opStage && strings.HasPrefix(c.Arg, rel.ID()) {
			return c.Arg
		}
	}
	return rel.ID()
}

// TestBeforeStageRefusal: a failing before_stage fails the host at staging:
// nothing staged, nothing switched.
func TestBeforeStageRefusal(t *testing.T) {
	spec := testSpec(3)
	spec.Hooks.BeforeStage = "may-stage {{.Host.Name}}"
	e := newEnv(t, spec)
	failExec(e, "may-stage h02")
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	if calls := e.log.ops("h02", opStage, opPromote, opRestore); len(calls) != 0 {
		t.Errorf("h02 calls after before_stage refused: %+v", calls)
	}
	if h := hostReport(out, "h02"); h.Status != rollout.HostFailed || !strings.Contains(h.Reason, "stage: before_stage hook exited 1") {
		t.Errorf("h02 %+v", h)
	}
}

// TestAfterHookFailureUndoesTheHost: a failing after_promote or
// after_restart fails the step after it changed the host: the host is
// restored.
func TestAfterHookFailureUndoesTheHost(t *testing.T) {
	for _, hook := range []string{"after_promote", "after_restart"} {
		t.Run(hook, func(t *testing.T) {
			spec := testSpec(3)
			spec.Hooks.AfterPromote = "ap {{.Host.Name}} {{.Release.Version}}"
			spec.Hooks.AfterRestart = "ar {{.Host.Name}} {{.Release.Version}}"
			e := newEnv(t, spec)
			e.mustDeploy(mkRelease(t, "1.0.0"), "")
			before := e.states()
			cmd := map[string]string{"after_promote": "ap h02 2.0.0", "after_restart": "ar h02 2.0.0"}[hook]
			failExec(e, cmd)
			out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
			if out.ExitCode != drover.ExitPartial {
				t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
			}
			if len(e.log.ops("h02", opRestore)) != 1 {
				t.Errorf("h02 not restored after %s failed", hook)
			}
			e.wantSnapshots(map[string]drover.HostState{"h02": before["h02"]})
		})
	}
}

// TestRollbackHooksNeverStopAnUndo: failing rollback hooks (and restart
// hooks while restoring) are reported and the host still goes back.
func TestRollbackHooksNeverStopAnUndo(t *testing.T) {
	spec := testSpec(2)
	spec.Hooks.BeforeRollback = "bb {{.Host.Name}}"
	spec.Hooks.AfterRollback = "ab {{.Host.Name}}"
	spec.Hooks.BeforeRestart = "br {{.Host.Name}} {{.Release.Version}}"
	e := newEnv(t, spec)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.states()
	failExec(e, "bb h02", "ab h02", "br h02 1.0.0")
	e.fleet.Fail("h02", opCheck, 1, drover.Errorf(drover.EFAILED, "503"))
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d, want 4 (h02 failed and restored): %s", out.ExitCode, out.Summary)
	}
	e.wantSnapshots(map[string]drover.HostState{"h02": before["h02"]})
	var notices []string
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventNotice && ev.Host == "h02" {
			notices = append(notices, ev.Step+": "+ev.Message)
		}
	}
	for _, want := range []string{"before_rollback: before_rollback hook exited 1", "after_rollback: after_rollback hook exited 1", "before_restart: before_restart hook exited 1"} {
		if !slices.ContainsFunc(notices, func(n string) bool { return strings.HasPrefix(n, want) }) {
			t.Errorf("no notice %q in %q", want, notices)
		}
	}
}

// fakeRotation is a drover.Rotation that records its calls and fails as
// told.
type fakeRotation struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error // "op host" -> error, once
	idle  []time.Duration
}

func (f *fakeRotation) do(op string, h drover.RotationHost) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := op + " " + h.Host.Name
	f.calls = append(f.calls, key+" "+h.Data.Release.Version)
	err := f.fail[key]
	delete(f.fail, key) // once
	return err
}

func (f *fakeRotation) Depool(ctx context.Context, h drover.RotationHost) error {
	return f.do("depool", h)
}

func (f *fakeRotation) WaitIdle(ctx context.Context, h drover.RotationHost, timeout time.Duration) error {
	f.mu.Lock()
	f.idle = append(f.idle, timeout)
	f.mu.Unlock()
	return f.do("wait", h)
}

func (f *fakeRotation) Repool(ctx context.Context, h drover.RotationHost) error {
	return f.do("repool", h)
}

func (f *fakeRotation) of(host string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.Fields(c)[1] == host {
			out = append(out, c)
		}
	}
	return out
}

// TestRotationSteps: the runner's Rotation depools, waits for idle with the
// drain timeout and repools; a drain that outlives its timeout is reported
// and the deploy goes on; a failing wait fails the host, which is
// repooled and never switched; a failing repool restores the host and
// repools it on the old release.
func TestRotationSteps(t *testing.T) {
	spec := testSpec(4)
	spec.Hooks.Depool, spec.Hooks.Repool = "", ""
	spec.Rotation.HAProxy = &drover.HAProxyRotation{Socket: "/s", Backend: "web", DrainTimeout: 7 * time.Second}
	spec.Groups[1].FailureLimit = 3
	e := newEnv(t, spec)
	rot := &fakeRotation{fail: map[string]error{}}
	e.r.Rotation = rot
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	if got := rot.of("h01"); !slices.Equal(got, []string{"depool h01 1.0.0", "wait h01 1.0.0", "repool h01 1.0.0"}) {
		t.Errorf("h01 %q", got)
	}
	if rot.idle[0] != 7*time.Second {
		t.Errorf("wait idle timeout %s, want the drain timeout", rot.idle[0])
	}
	if calls := e.log.where(func(c call) bool { return c.Op == opExec && strings.HasPrefix(c.Arg, "lb ") }); len(calls) != 0 {
		t.Errorf("hooks ran beside the Rotation: %+v", calls)
	}

	rot.calls = nil
	before := e.states()
	rot.fail["wait h02"] = drover.Errorf(drover.ETIMEOUT, "still 3 sessions after 7s; set to maint")
	rot.fail["wait h03"] = drover.Errorf(drover.EFAILED, "lb exploded")
	rot.fail["repool h04"] = drover.Errorf(drover.EFAILED, "not UP after 30s")
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	if h := hostReport(out, "h02"); h.Status != rollout.HostDone {
		t.Errorf("h02 after a drain timeout: %+v", h)
	}
	if !slices.ContainsFunc(e.events.all(), func(ev drover.Event) bool {
		return ev.Kind == drover.EventNotice && ev.Host == "h02" && strings.Contains(ev.Message, "not idle after the drain timeout 7s, going on")
	}) {
		t.Error("no notice of the drain timeout")
	}
	if got := rot.of("h03"); !slices.Equal(got, []string{"depool h03 2.0.0", "wait h03 2.0.0", "repool h03 1.0.0"}) {
		t.Errorf("h03 %q", got)
	}
	if h := hostReport(out, "h03"); h.Status != rollout.HostFailed || h.Switched || !strings.Contains(h.Reason, "wait idle: lb exploded") {
		t.Errorf("h03 %+v", h)
	}
	if got := rot.of("h04"); !slices.Equal(got, []string{"depool h04 2.0.0", "wait h04 2.0.0", "repool h04 2.0.0", "repool h04 1.0.0"}) {
		t.Errorf("h04 %q", got)
	}
	e.wantSnapshots(map[string]drover.HostState{"h03": before["h03"], "h04": before["h04"]})
}

// TestNativeRotationNeedsWiring: a spec with rotation.haproxy and a Runner
// without a Rotation is refused before anything is touched.
func TestNativeRotationNeedsWiring(t *testing.T) {
	spec := testSpec(2)
	spec.Rotation.HAProxy = &drover.HAProxyRotation{Socket: "/s", Backend: "web"}
	e := newEnv(t, spec)
	_, err := e.r.Deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if drover.ErrorCode(err) != drover.EINTERNAL || !strings.Contains(err.Error(), "rotation.haproxy") {
		t.Fatalf("err %v", err)
	}
	if _, err := e.r.Resume(context.Background()); drover.ErrorCode(err) != drover.EINTERNAL {
		t.Fatalf("resume err %v", err)
	}
	if _, err := e.r.Rollback(context.Background(), RollbackOptions{}); drover.ErrorCode(err) != drover.EINTERNAL {
		t.Fatalf("rollback err %v", err)
	}
	if calls := e.log.all(); len(calls) != 0 {
		t.Errorf("calls: %+v", calls)
	}
}

// TestRecoveryRepools: a deploy that died with a host depooled leaves the
// journal saying so; the next run sends that host through the restore
// path, which ends with a repool through the Rotation.
func TestRecoveryRepools(t *testing.T) {
	spec := testSpec(3)
	e := newEnv(t, spec)
	rot := &fakeRotation{fail: map[string]error{}}
	e.r.Rotation = rot
	v1, v2 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0")
	e.mustDeploy(v1, "")
	before := e.states()

	// A deploy that dies after h01's depool: cancel it from the depool.
	rot.fail = map[string]error{}
	ctx, cancel := context.WithCancel(context.Background())
	e.r.Rotation = rotationFunc{fakeRotation: rot, onDepool: func(host string) {
		if host == "h01" {
			cancel()
		}
	}}
	out := e.deploy(ctx, DeployOptions{Release: v2})
	if out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("interrupted deploy: exit %d: %s", out.ExitCode, out.Summary)
	}
	if got := rot.of("h01"); got[len(got)-1] != "repool h01 1.0.0" {
		t.Errorf("interrupted: h01 ends with %q, want a repool", got)
	}
	e.wantSnapshots(before)

	// And a crash: the journal holds h01's depool and nothing after.
	rot.calls = nil
	e.r.Rotation = rot
	e.crash("d-crashed", v2)
	outs, err := e.r.Resume(context.Background())
	if err != nil || len(outs) != 1 || outs[0].ExitCode != 0 {
		t.Fatalf("resume: %v %+v", err, outs)
	}
	for _, host := range []string{"h01", "h02"} {
		got := rot.of(host)
		if len(got) == 0 || got[len(got)-1] != fmt.Sprintf("repool %s 1.0.0", host) {
			t.Errorf("after recovery %s: %q, want it to end repooled", host, got)
		}
	}
}

// rotationFunc wraps fakeRotation with a hook on depool.
type rotationFunc struct {
	*fakeRotation
	onDepool func(host string)
}

func (r rotationFunc) Depool(ctx context.Context, h drover.RotationHost) error {
	r.onDepool(h.Host.Name)
	return r.fakeRotation.Depool(ctx, h)
}
