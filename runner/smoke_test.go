package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

// opSmoke marks, in the call log, a request a smoke check made.
const opSmoke = "smoke"

// smokeServer answers every request with *status and logs it as a call
// of op opSmoke with the request path as Arg.
func smokeServer(t *testing.T, log *callLog, status *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(call{Op: opSmoke, Arg: r.URL.Path})
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func smokeCheck(name, url string) drover.CheckSpec {
	return drover.CheckSpec{Name: name, Type: "http", URL: url, ExpectStatus: 200, Timeout: 300 * time.Millisecond, Interval: 20 * time.Millisecond}
}

func seqOf(t *testing.T, calls []call, keep func(call) bool, what string) int {
	t.Helper()
	i := slices.IndexFunc(calls, keep)
	if i < 0 {
		t.Fatalf("no %s in the call log", what)
	}
	return calls[i].Seq
}

// A group's smoke checks run once its hosts are done and before the next
// group's first switch; the deploy-level ones once, after the last group.
func TestSmokeRunsAfterItsGroup(t *testing.T) {
	spec := testSpec(5)
	e := newEnv(t, spec)
	var status atomic.Int32
	status.Store(200)
	srv := smokeServer(t, e.log, &status)
	spec.Groups[0].Smoke = []drover.CheckSpec{smokeCheck("lb", srv.URL+"/canary/{{.Release.Version}}")}
	spec.Smoke = []drover.CheckSpec{smokeCheck("e2e", srv.URL+"/deploy")}
	mark := e.log.mark()
	out := e.mustDeploy(mkRelease(t, "1.0.0"), "")
	calls := e.log.since(mark)
	canarySmoke := seqOf(t, calls, func(c call) bool { return c.Op == opSmoke && c.Arg == "/canary/1.0.0" }, "canary smoke")
	canaryDone := seqOf(t, calls, func(c call) bool { return c.Host == "h01" && c.Op == opCheck }, "h01 check")
	firstDefault := seqOf(t, calls, func(c call) bool { return c.Host == "h02" && c.Op == opPromote }, "h02 switch")
	if !(canaryDone < canarySmoke && canarySmoke < firstDefault) {
		t.Errorf("canary smoke at %d, want after h01's check (%d) and before h02's switch (%d)", canarySmoke, canaryDone, firstDefault)
	}
	deploySmoke := e.log.where(func(c call) bool { return c.Op == opSmoke && c.Arg == "/deploy" })
	if len(deploySmoke) != 1 {
		t.Fatalf("deploy-level smoke ran %d times, want once", len(deploySmoke))
	}
	for _, c := range calls {
		if c.Op == opPromote && c.Seq > deploySmoke[0].Seq {
			t.Errorf("%s switched after the deploy-level smoke check", c.Host)
		}
	}
	var started []string
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventGateDone {
			started = append(started, ev.Group+": "+ev.Message)
		}
	}
	want := []string{"canary: smoke lb passed", "default: deploy smoke e2e passed"}
	if !slices.Equal(started, want) {
		t.Errorf("gate_done events %q, want %q", started, want)
	}
	if out.Verdict != rollout.Succeeded {
		t.Errorf("verdict %s", out.Verdict)
	}
}

// A smoke check failing after the last group rolls back every host the
// deploy switched, canary included, whatever the failure limit; the
// summary names the check and its last reason.
func TestSmokeFailureRollsBackEverything(t *testing.T) {
	spec := testSpec(5)
	spec.Groups[1].FailureLimit = 4
	e := newEnv(t, spec)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.states()

	var status atomic.Int32
	status.Store(503)
	srv := smokeServer(t, e.log, &status)
	spec.Smoke = []drover.CheckSpec{smokeCheck("lb", srv.URL+"/health")}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.Verdict != rollout.RolledBack || out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("verdict %s exit %d, want rolled_back exit 1: %s", out.Verdict, out.ExitCode, out.Summary)
	}
	e.wantSnapshots(before)
	for _, h := range out.Report.Hosts {
		if h.Status != rollout.HostRolledBack {
			t.Errorf("%s: %s, want rolled_back", h.Name, h.Status)
		}
	}
	for _, want := range []string{"gate deploy smoke lb failed", "gate deploy smoke lb failed: http GET " + srv.URL + "/health: status 503, want 200"} {
		if !strings.Contains(out.Summary, want) {
			t.Errorf("summary %q does not hold %q", out.Summary, want)
		}
	}
	var failed []drover.Event
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventGateFailed {
			failed = append(failed, ev)
		}
	}
	if len(failed) != 1 || failed[0].Group != "default" || !strings.Contains(failed[0].Message, "status 503") {
		t.Errorf("gate_failed events %+v, want one for group default naming the status", failed)
	}
}

// A group smoke check that fails stops the deploy before the next group:
// no host of it is switched.
func TestGroupSmokeFailureStopsBeforeNextGroup(t *testing.T) {
	spec := testSpec(4)
	e := newEnv(t, spec)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.states()
	var status atomic.Int32
	status.Store(500)
	srv := smokeServer(t, e.log, &status)
	spec.Groups[0].Smoke = []drover.CheckSpec{smokeCheck("lb", srv.URL+"/")}
	mark := e.log.mark()
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.Verdict != rollout.RolledBack {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	for _, c := range e.log.since(mark) {
		if c.Op == opPromote && c.Host != "h01" {
			t.Errorf("%s was switched after the canary's smoke check failed", c.Host)
		}
	}
	e.wantSnapshots(before)
}

// With --limit leaving out the last group, the deploy-level smoke checks
// still run, after the last group that was deployed.
func TestDeploySmokeRunsWithLimit(t *testing.T) {
	spec := testSpec(5)
	e := newEnv(t, spec)
	var status atomic.Int32
	status.Store(200)
	srv := smokeServer(t, e.log, &status)
	spec.Smoke = []drover.CheckSpec{smokeCheck("e2e", srv.URL+"/deploy")}
	e.mustDeploy(mkRelease(t, "1.0.0"), "h01")
	if n := len(e.log.where(func(c call) bool { return c.Op == opSmoke })); n != 1 {
		t.Errorf("deploy-level smoke ran %d times with --limit h01, want once", n)
	}
}

// A command smoke check runs on the controller, in the config file's
// directory, with the deploy in its environment and quoted template values.
func TestSmokeCommandRunsOnController(t *testing.T) {
	spec := testSpec(2)
	dir := t.TempDir()
	spec.Source = filepath.Join(dir, "drover.yaml")
	spec.Smoke = []drover.CheckSpec{{Name: "script", Type: "command", Timeout: 5 * time.Second, Interval: 10 * time.Millisecond,
		Command: `test "$DROVER_VERSION" = {{.Release.Version}} && printf '%s %s %s' "$DROVER_SERVICE" "$DROVER_GROUP" {{.Release.ID}} > smoke.out`}}
	e := newEnv(t, spec)
	rel := mkRelease(t, "1.0.0")
	e.mustDeploy(rel, "")
	got, err := os.ReadFile(filepath.Join(dir, "smoke.out"))
	if err != nil {
		t.Fatalf("the smoke command did not run in the config directory: %v", err)
	}
	if want := "hello  " + rel.ID(); string(got) != want {
		t.Errorf("smoke command wrote %q, want %q", got, want)
	}
	// The command ran on no host.
	for _, c := range e.log.where(func(c call) bool { return c.Op == opExec }) {
		if strings.Contains(c.Arg, "DROVER_VERSION") {
			t.Errorf("smoke command ran on host %s", c.Host)
		}
	}
}

// A failing command smoke check reports its exit code and output.
func TestSmokeCommandFailureReason(t *testing.T) {
	spec := testSpec(2)
	spec.Source = filepath.Join(t.TempDir(), "drover.yaml")
	spec.Groups[1].Smoke = []drover.CheckSpec{{Name: "script", Type: "command", Command: "echo orders endpoint down >&2; exit 3", Timeout: 200 * time.Millisecond, Interval: 10 * time.Millisecond}}
	e := newEnv(t, spec)
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.Verdict != rollout.RolledBack {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	if want := "gate smoke script failed: command exited 3: orders endpoint down"; !strings.Contains(out.Summary, want) {
		t.Errorf("summary %q does not hold %q", out.Summary, want)
	}
}
