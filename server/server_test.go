package server

// API tests against real parts: a local fleet of sample-service processes
// (internal/localfleet), the SQLite store, the local transport and real
// checks, behind the server's real handler on a loopback port.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/check"
	"drover/config"
	"drover/internal/localfleet"
	"drover/release"
	"drover/rotation"
	"drover/runner"
	"drover/store/sqlite"
	"drover/transport/local"
)

func TestMain(m *testing.M) {
	// The sample service's scripts run `drover sample-service`: the
	// sample service built under the name drover stands in for it.
	dir, err := os.MkdirTemp("", "drover-server-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "drover"), "drover/examples/hello/cmd/hello")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the sample service:", err)
		os.Exit(1)
	}
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a fleet, a server for it and a token per role.
type env struct {
	fleet  *localfleet.Fleet
	srv    *Server
	url    string
	tokens map[string]string // name -> token
	log    *syncBuffer       // the server's audit log
}

const testGroups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
  - name: default
    hosts: ["h*"]
    batch: 1
    failure_limit: 0
`

func openService(t *testing.T, cfg string) Service {
	t.Helper()
	spec, err := config.Load(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	return Service{Spec: spec, Open: func(sink drover.EventSink) (*runner.Runner, func(), error) {
		st, err := sqlite.Open(filepath.Join(spec.StateDir, sqlite.FileName))
		if err != nil {
			return nil, nil, err
		}
		tr := &local.Transport{RunCheck: func(ctx context.Context, c drover.CheckSpec, exec func(ctx context.Context, command string) (drover.ExecResult, error)) drover.CheckResult {
			return check.Run(ctx, c, check.ExecFunc(exec))
		}}
		r := &runner.Runner{Spec: spec, Transport: tr, Store: st, Events: sink, Rotation: rotation.New(spec), Approvals: st}
		return r, func() { st.Close() }, nil
	}}
}

func newEnv(t *testing.T, hosts int, groups string) *env {
	t.Helper()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: hosts, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	tokensFile := filepath.Join(t.TempDir(), "tokens.json")
	e := &env{fleet: f, tokens: map[string]string{}}
	for _, tk := range []struct {
		name, role string
		services   []string
	}{
		{"root", RoleAdmin, nil},
		{"dep", RoleDeployer, []string{"hello"}},
		{"view", RoleViewer, nil},
		{"elsewhere", RoleDeployer, []string{"other"}},
	} {
		tok, err := CreateToken(tokensFile, tk.name, tk.role, tk.services)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[tk.name] = tok
	}
	// Releases are written under the fleet's src/: the server takes
	// release paths there only.
	releases := filepath.Join(f.Dir, "src")
	if err := os.MkdirAll(releases, 0o755); err != nil {
		t.Fatal(err)
	}
	e.log = &syncBuffer{}
	srv, err := New(Config{Services: []Service{openService(t, f.Config)}, TokensFile: tokensFile, ReleasesDir: releases,
		Log: slog.New(slog.NewTextHandler(e.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	e.srv, e.url = srv, ts.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := srv.Close(ctx, fmt.Errorf("test over")); err != nil {
			t.Errorf("close: %v", err)
		}
		ts.Close()
	})
	return e
}

func (e *env) client(t *testing.T, name string) *Client {
	t.Helper()
	c, err := NewClient(e.url, e.tokens[name], nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// do sends a raw request and returns the status and body.
func (e *env) do(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if drover.ErrorCode(err) != code {
		t.Fatalf("want %s, got %v (code %q)", code, err, drover.ErrorCode(err))
	}
}

func wantVersions(t *testing.T, f *localfleet.Fleet, v string) {
	t.Helper()
	for h, got := range f.Versions(context.Background()) {
		if got != v {
			t.Errorf("%s serves %q, want %q", h, got, v)
		}
	}
}

func (e *env) release(t *testing.T, version string, healthy bool) string {
	t.Helper()
	dir, err := e.fleet.WriteRelease(version, healthy)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// follow waits for run id's verdict and returns it with the kinds seen.
func follow(t *testing.T, c *Client, id string) (drover.Event, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var kinds []string
	v, err := c.Follow(ctx, id, func(e drover.Event) { kinds = append(kinds, e.Kind) })
	if err != nil {
		t.Fatalf("follow %s: %v", id, err)
	}
	return v, kinds
}

// Every /api endpoint refuses a request without a valid token, and a
// viewer's every change; /healthz and /metrics need none.
func TestAuthEveryEndpoint(t *testing.T) {
	e := newEnv(t, 2, "")
	endpoints := []struct {
		method, path string
		change       bool
	}{
		{"GET", "/api/v1/whoami", false},
		{"GET", "/api/v1/services", false},
		{"GET", "/api/v1/services/hello/status", false},
		{"GET", "/api/v1/services/hello/deploys", false},
		{"POST", "/api/v1/services/hello/deploys", true},
		{"POST", "/api/v1/services/hello/rollback", true},
		{"GET", "/api/v1/deploys/d-1", false},
		{"POST", "/api/v1/deploys/d-1/approve", true},
		{"POST", "/api/v1/deploys/d-1/abort", true},
		{"GET", "/api/v1/events", false},
		{"GET", "/api/v1/view?service=hello", false},
		{"GET", "/api/v1/deploys/d-1/view", false},
		{"GET", "/api/v1/deploys/d-1/analyses/canary/errors", false},
	}
	body := map[string]any{}
	for _, ep := range endpoints {
		for _, tok := range []string{"", "drover_" + strings.Repeat("0", 64), e.tokens["root"] + "x"} {
			code, b := e.do(t, ep.method, ep.path, tok, body)
			if code != http.StatusUnauthorized || !strings.Contains(string(b), `"EUNAUTHORIZED"`) {
				t.Errorf("%s %s with token %.10q: %d %s, want 401 EUNAUTHORIZED", ep.method, ep.path, tok, code, b)
			}
		}
		if ep.change {
			code, b := e.do(t, ep.method, ep.path, e.tokens["view"], body)
			if code != http.StatusForbidden || !strings.Contains(string(b), `"EFORBIDDEN"`) {
				t.Errorf("viewer %s %s: %d %s, want 403", ep.method, ep.path, code, b)
			}
			// A token scoped to another service may not change this one.
			if strings.Contains(ep.path, "/services/") {
				code, b = e.do(t, ep.method, ep.path, e.tokens["elsewhere"], body)
				if code != http.StatusForbidden {
					t.Errorf("scoped token %s %s: %d %s, want 403", ep.method, ep.path, code, b)
				}
			}
		}
	}
	// ?access_token= is for the event stream only (EventSource cannot
	// set headers).
	if code, _ := e.do(t, "GET", "/api/v1/services?access_token="+e.tokens["root"], "", nil); code != http.StatusUnauthorized {
		t.Errorf("access_token on /services: %d, want 401", code)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, "GET", e.url+"/api/v1/events?access_token="+url.QueryEscape(e.tokens["view"]), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 6)
	_, err = io.ReadFull(resp.Body, head)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || err != nil || string(head) != ": ok\n\n" {
		t.Errorf("events with access_token: %d %s %q %v", resp.StatusCode, resp.Header.Get("Content-Type"), head, err)
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		if code, b := e.do(t, "GET", p, "", nil); code != http.StatusOK {
			t.Errorf("%s: %d %s", p, code, b)
		}
	}

	// Reads: a viewer sees everything; a scoped token only its services.
	ctx := context.Background()
	v := e.client(t, "view")
	who, err := v.Whoami(ctx)
	if err != nil || who.Name != "view" || who.Role != RoleViewer {
		t.Errorf("whoami = %+v, %v", who, err)
	}
	svcs, err := v.Services(ctx)
	if err != nil || len(svcs) != 1 || svcs[0].Key != "hello" || svcs[0].Hosts != 2 || strings.Join(svcs[0].Groups, ",") != "canary,default" {
		t.Errorf("services = %+v, %v", svcs, err)
	}
	st, err := v.Status(ctx, "hello")
	if err != nil || st.Service != "hello" || len(st.Hosts) != 2 || !st.Hosts[0].Reachable {
		t.Errorf("status = %+v, %v", st, err)
	}
	if _, err := v.History(ctx, "hello", 5); err != nil {
		t.Error(err)
	}
	other := e.client(t, "elsewhere")
	if svcs, err := other.Services(ctx); err != nil || len(svcs) != 0 {
		t.Errorf("scoped services = %+v, %v", svcs, err)
	}
	_, err = other.Status(ctx, "hello")
	wantCode(t, err, drover.EFORBIDDEN)
	_, err = v.Status(ctx, "nope")
	wantCode(t, err, drover.ENOTFOUND)
	// A service/env key is one escaped path segment.
	_, err = v.Status(ctx, "hello/staging")
	if err == nil || !strings.Contains(err.Error(), `"hello/staging"`) {
		t.Errorf("escaped key: %v", err)
	}
}

// A deployer deploys through the API — a directory on the server and an
// uploaded bundle — and follows the events to the verdict; a failing
// release rolls back; a rollback goes back a release. History names the
// token; the metrics count the outcomes.
func TestDeployRollbackThroughAPI(t *testing.T) {
	e := newEnv(t, 3, testGroups)
	ctx := context.Background()
	c := e.client(t, "dep")

	st, err := c.Deploy(ctx, "hello", DeployRequest{Release: e.release(t, "1.0.0", true), Version: "1.0.0", Message: "first"})
	if err != nil {
		t.Fatal(err)
	}
	v, kinds := follow(t, c, st.ID)
	if v.Outcome != drover.OutcomeSucceeded || kinds[0] != drover.EventDeployStart {
		t.Fatalf("verdict %+v, kinds %v", v, kinds)
	}
	wantVersions(t, e.fleet, "1.0.0")

	// An uploaded bundle.
	bundle := filepath.Join(t.TempDir(), "hello-2.tar.gz")
	if _, err := release.Build(ctx, e.release(t, "2.0.0", true), release.BuildOptions{Service: "hello", Version: "2.0.0", Out: bundle, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st, err = c.DeployBundle(ctx, "hello", bundle, DeployRequest{Message: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := follow(t, c, st.ID); v.Outcome != drover.OutcomeSucceeded {
		t.Fatalf("bundle deploy: %+v", v)
	}
	wantVersions(t, e.fleet, "2.0.0")

	// A release that fails its health check halts and rolls back.
	st, err = c.Deploy(ctx, "hello", DeployRequest{Release: e.release(t, "3.0.0", false), Version: "3.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	v, kinds = follow(t, c, st.ID)
	if v.Outcome != drover.OutcomeRolledBack || !strings.Contains(strings.Join(kinds, " "), drover.EventHostFailed) {
		t.Fatalf("bad release: verdict %+v kinds %v", v, kinds)
	}
	wantVersions(t, e.fleet, "2.0.0")

	// The timeline of a run this server started.
	info, err := c.DeployInfo(ctx, st.ID)
	if err != nil || info.Running || info.Record.ID != st.ID || info.Record.User != "token:dep" || len(info.Events) == 0 || info.Events[len(info.Events)-1].Kind != drover.EventVerdict {
		t.Errorf("deploy info: %+v, %v", info, err)
	}

	rb, err := c.Rollback(ctx, "hello", RollbackRequest{Message: "back to 1"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := follow(t, c, rb.ID); v.Outcome != drover.OutcomeSucceeded || v.Operation != drover.KindRollback {
		t.Fatalf("rollback verdict %+v", v)
	}
	wantVersions(t, e.fleet, "1.0.0")

	hist, err := c.History(ctx, "hello", 0)
	if err != nil || len(hist) != 4 {
		t.Fatalf("history: %d records, %v", len(hist), err)
	}
	for _, r := range hist {
		if r.User != "token:dep" {
			t.Errorf("%s recorded by %q, want token:dep", r.ID, r.User)
		}
	}
	if hist[3].Message != "first" || hist[0].Kind != drover.KindRollback {
		t.Errorf("history order/messages: %+v", hist)
	}

	// Bad input changes nothing: a relative path, a missing release.
	_, err = c.Deploy(ctx, "hello", DeployRequest{Release: "src/1.0.0"})
	wantCode(t, err, drover.EINVALID)
	_, err = c.Deploy(ctx, "hello", DeployRequest{Release: filepath.Join(e.fleet.Dir, "src", "nonexistent")})
	if code := drover.ErrorCode(err); code != drover.EFORBIDDEN {
		t.Errorf("missing release: %v", err)
	}

	_, body := e.do(t, "GET", "/metrics", "", nil)
	for _, want := range []string{
		`drover_deploys_total{outcome="succeeded",service="hello"} 3`,
		`drover_deploys_total{outcome="rolled_back",service="hello"} 1`,
		`drover_deploy_running{service="hello"} 0`,
		`drover_step_duration_seconds_count{step="check"}`,
		`drover_hosts{service="hello",state="succeeded"} 3`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// A deploy waiting at a manual approval gate holds the lock (409 for a
// second one); a dashboard that connects mid-deploy gets the plan
// replayed; a viewer cannot approve; a deployer's approve lets it finish;
// an abort rolls the next one back.
func TestApproveAbortLocked(t *testing.T) {
	e := newEnv(t, 2, manualCanaryGroups)
	ctx := context.Background()
	c := e.client(t, "dep")
	src := e.release(t, "1.0.0", true)
	st, err := c.Deploy(ctx, "hello", DeployRequest{Release: src, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	waitGate(t, e, st.ID, "canary")

	_, err = c.Deploy(ctx, "hello", DeployRequest{Release: src, Version: "1.0.0"})
	wantCode(t, err, drover.ELOCKED)
	if code, _ := e.do(t, "POST", "/api/v1/services/hello/deploys", e.tokens["root"], DeployRequest{Release: src}); code != http.StatusConflict {
		t.Errorf("second deploy: %d, want 409", code)
	}
	if svcs, _ := c.Services(ctx); len(svcs) != 1 || svcs[0].Running != st.ID {
		t.Errorf("services while running: %+v", svcs)
	}

	// Connecting mid-deploy replays the run from deploy_start.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	var first StreamEvent
	err = e.client(t, "view").Events(sctx, url.Values{"service": {"hello"}}, func(ev StreamEvent) bool { first = ev; return false })
	cancel()
	if err != nil || first.Kind != drover.EventDeployStart || first.Service != "hello" || first.Deploy != st.ID || len(first.Groups) != 2 {
		t.Errorf("first streamed event %+v, %v", first, err)
	}

	// A token scoped to another service sees none of its events, and
	// cannot decide about the deploy.
	sctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
	seen := 0
	e.client(t, "elsewhere").Events(sctx, url.Values{"deploy": {st.ID}}, func(StreamEvent) bool { seen++; return true })
	cancel()
	if seen != 0 {
		t.Errorf("a token scoped elsewhere saw %d events of hello", seen)
	}
	_, err = e.client(t, "elsewhere").Abort(ctx, st.ID, AbortRequest{})
	if code := drover.ErrorCode(err); code != drover.EFORBIDDEN && code != drover.ENOTFOUND {
		t.Errorf("scoped abort: %v", err)
	}

	_, err = e.client(t, "view").Approve(ctx, st.ID, ApproveRequest{})
	wantCode(t, err, drover.EFORBIDDEN)
	_, err = c.Approve(ctx, st.ID, ApproveRequest{Group: "default"})
	wantCode(t, err, drover.EINVALID)
	d, err := c.Approve(ctx, st.ID, ApproveRequest{Group: "canary", Note: "fine"})
	if err != nil || d.Group != "canary" {
		t.Fatalf("approve: %+v, %v", d, err)
	}
	if v, _ := follow(t, c, st.ID); v.Outcome != drover.OutcomeSucceeded {
		t.Fatalf("approved deploy: %+v", v)
	}
	wantVersions(t, e.fleet, "1.0.0")

	st, err = c.Deploy(ctx, "hello", DeployRequest{Release: e.release(t, "2.0.0", true), Version: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	waitGate(t, e, st.ID, "canary")
	_, err = e.client(t, "view").Abort(ctx, st.ID, AbortRequest{})
	wantCode(t, err, drover.EFORBIDDEN)
	if _, err := c.Abort(ctx, st.ID, AbortRequest{Reason: "no"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := follow(t, c, st.ID); v.Outcome != drover.OutcomeRolledBack {
		t.Fatalf("aborted deploy: %+v", v)
	}
	wantVersions(t, e.fleet, "1.0.0")
	_, err = c.Abort(ctx, st.ID, AbortRequest{})
	wantCode(t, err, drover.EINVALID)
}

// waitGate waits until deploy id waits at group's approval gate.
func waitGate(t *testing.T, e *env, id, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := e.client(t, "view").Events(ctx, url.Values{"deploy": {id}}, func(ev StreamEvent) bool {
		return !(ev.Kind == drover.EventGateStart && ev.Group == group)
	})
	if err != nil {
		t.Fatalf("waiting for the gate of %s: %v", group, err)
	}
}

// manualCanaryGroups holds a deploy at a manual approval after its
// canary, so a test can act on a deploy that is still running.
const manualCanaryGroups = `groups:
  - name: canary
    hosts: [h01]
    approve: manual
    approve_timeout: 2m
  - name: default
    hosts: ["h*"]
`

// Shutting the server down halts a running deploy: it rolls back.
func TestCloseRollsBackRunningDeploy(t *testing.T) {
	e := newEnv(t, 2, manualCanaryGroups)
	c := e.client(t, "dep")
	st, err := c.Deploy(context.Background(), "hello", DeployRequest{Release: e.release(t, "1.0.0", true), Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	waitGate(t, e, st.ID, "canary")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.srv.Close(ctx, fmt.Errorf("SIGTERM")); err != nil {
		t.Fatal(err)
	}
	key, running, events, ok := e.srv.runInfo(st.ID)
	if !ok || key != "hello" || running || events[len(events)-1].Outcome != drover.OutcomeRolledBack {
		t.Fatalf("after close: ok %v running %v last %+v", ok, running, events[len(events)-1])
	}
	for h, v := range e.fleet.Versions(context.Background()) {
		if !strings.HasPrefix(v, "down") {
			t.Errorf("%s serves %q after the rollback of the first deploy", h, v)
		}
	}
	_, err = c.Deploy(context.Background(), "hello", DeployRequest{Release: e.release(t, "1.0.0", true)})
	wantCode(t, err, drover.EUNREACHABLE)
}
