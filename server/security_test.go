package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"drover"
)

// Attacks on the server by callers holding a token: each test reproduces
// one found in issue 15 (docs/security.md lists them).

// syncBuffer is a log written by the server's goroutines and read by a
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A deployer — or an admin — names directories the server can read as the
// release: its ~/.ssh, a file, a path that does not exist, a symlink in
// the releases directory pointing out of it, a ../ escape. Each is refused
// before anything is read, with the same answer, so the refusal tells
// nothing about the path; nothing reaches a host.
func TestDeployReleasePathConfined(t *testing.T) {
	e := newEnv(t, 2, "")
	ctx := context.Background()
	releases := filepath.Join(e.fleet.Dir, "src")

	secret := t.TempDir()
	if err := os.WriteFile(filepath.Join(secret, "id_ed25519"), []byte("PRIVATE KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "VERSION"), []byte("6.6.6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(releases, "link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(secret, "nothing"), filepath.Join(releases, "dangling")); err != nil {
		t.Fatal(err)
	}
	attacks := []string{
		secret,                                       // a directory that exists
		filepath.Join(secret, "id_ed25519"),          // a file that exists
		filepath.Join(secret, "nonexistent"),         // nothing there
		filepath.Join(releases, "link-out"),          // a symlink out of the directory
		filepath.Join(releases, "dangling"),          // a dangling symlink
		releases + "/../../" + filepath.Base(secret), // a ../ escape
		"/etc",
	}
	var first string
	for _, tok := range []string{"dep", "root"} {
		c := e.client(t, tok)
		for _, path := range attacks {
			_, err := c.Deploy(ctx, "hello", DeployRequest{Release: path, Version: "6.6.6", Yes: true})
			if drover.ErrorCode(err) != drover.EFORBIDDEN {
				t.Errorf("%s deploying %s: %v, want EFORBIDDEN", tok, path, err)
				continue
			}
			// The answer is the same sentence for every path but the
			// path the caller sent itself.
			msg := strings.ReplaceAll(err.Error(), fmt.Sprintf("%q", path), "PATH")
			if first == "" {
				first = msg
			} else if msg != first {
				t.Errorf("refusals differ, telling paths apart:\n%s\n%s", first, msg)
			}
		}
	}
	if !strings.Contains(first, "releases directory") {
		t.Errorf("refusal does not say what to do: %s", first)
	}
	for h, v := range e.fleet.Versions(ctx) {
		if v == "6.6.6" {
			t.Errorf("%s serves the server's files as a release", h)
		}
	}

	// A server started without a releases directory takes no path at
	// all: a deployer uploads a bundle.
	srv, err := New(Config{Services: e.srv.cfg.Services, TokensFile: e.srv.tokens.path})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	c, _ := NewClient(ts.URL, e.tokens["root"], nil)
	defer c.Close()
	_, err = c.Deploy(ctx, "hello", DeployRequest{Release: e.release(t, "1.0.0", true)})
	if drover.ErrorCode(err) != drover.EFORBIDDEN || !strings.Contains(err.Error(), "--releases-dir") {
		t.Errorf("a path without --releases-dir: %v", err)
	}
}

// A token scoped to another service asks about a running deploy by id:
// 404, as for an id that does not exist, never 403 (which would confirm
// it). An abort reason with newlines stays one quoted field of one log
// line instead of forging a second.
func TestScopedDeployIDAndAbortLog(t *testing.T) {
	e := newEnv(t, 2, manualCanaryGroups)
	ctx := context.Background()
	c := e.client(t, "dep")
	st, err := c.Deploy(ctx, "hello", DeployRequest{Release: e.release(t, "1.0.0", true), Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	waitGate(t, e, st.ID, "canary")

	for _, path := range []string{"/api/v1/deploys/" + st.ID, "/api/v1/deploys/d-nonexistent"} {
		code, body := e.do(t, "GET", path, e.tokens["elsewhere"], nil)
		if code != http.StatusNotFound {
			t.Errorf("scoped token GET %s: %d %s, want 404", path, code, body)
		}
	}
	code, body := e.do(t, "POST", "/api/v1/deploys/"+st.ID+"/abort", e.tokens["elsewhere"], AbortRequest{Reason: "x"})
	if code != http.StatusNotFound {
		t.Errorf("scoped token abort: %d %s, want 404", code, body)
	}

	forged := "no\ntime=2026-01-01T00:00:00Z level=INFO msg=approved by=token:root deploy=" + st.ID
	if _, err := c.Abort(ctx, st.ID, AbortRequest{Reason: forged}); err != nil {
		t.Fatal(err)
	}
	follow(t, c, st.ID)
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.HasPrefix(line, "time=2026-01-01") {
			t.Errorf("the abort reason forged a log line: %q", line)
		}
		if strings.Contains(line, "msg=aborted") && !strings.Contains(line, `reason="no\ntime=2026`) {
			t.Errorf("abort logged without the quoted reason: %q", line)
		}
	}
	if !strings.Contains(e.log.String(), "msg=aborted") {
		t.Errorf("no abort in the log:\n%s", e.log)
	}
}

// fakeElector names a leader and never campaigns.
type fakeElector struct{ leader string }

func (f *fakeElector) Campaign(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() }
func (f *fakeElector) Leader(context.Context) (string, error)       { return f.leader, nil }
func (f *fakeElector) Done() <-chan struct{}                        { return nil }
func (f *fakeElector) Close() error                                 { return nil }

// A replica that does not lead forwards only authenticated requests, and
// only to an https or loopback leader: whoever can write the election key
// must not collect the tokens replicas forward.
func TestReplicaForwardsOnlyAuthenticatedToSafeLeader(t *testing.T) {
	e := newEnv(t, 2, "")
	var hits atomic.Int32
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeJSON(w, http.StatusAccepted, Started{ID: "d-from-leader", Key: "hello"})
	}))
	defer leader.Close()
	el := &fakeElector{leader: leader.URL}
	rep := NewReplica(e.srv, ReplicaConfig{})
	rep.el, rep.self = el, "http://127.0.0.1:1"
	ts := httptest.NewServer(rep.Handler())
	defer ts.Close()

	post := func(token string) (int, string) {
		req, _ := http.NewRequest("POST", ts.URL+"/api/v1/services/hello/rollback", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	for _, tok := range []string{"", "drover_guess"} {
		if code, body := post(tok); code != http.StatusUnauthorized {
			t.Errorf("unauthenticated forward with token %q: %d %s, want 401", tok, code, body)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the leader received %d unauthenticated requests", n)
	}
	if code, body := post(e.tokens["dep"]); code != http.StatusAccepted || hits.Load() != 1 {
		t.Fatalf("authenticated forward to a loopback leader: %d %s, hits %d", code, body, hits.Load())
	}

	for _, bad := range []string{"http://10.0.0.7:7800", "http://leader.example:7800", "ftp://127.0.0.1/"} {
		el.leader = bad
		code, body := post(e.tokens["dep"])
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "neither https nor loopback") {
			t.Errorf("leader %s: %d %s, want 503 refusing it", bad, code, body)
		}
	}
	if _, err := leaderURL("https://10.0.0.7:7800"); err != nil {
		t.Errorf("an https leader is refused: %v", err)
	}
}
