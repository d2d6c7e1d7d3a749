package check_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"drover"
	"drover/check"
)

// fast keeps retries quick in tests.
const fast = 20 * time.Millisecond

// tcpListener returns the address of a listener on 127.0.0.1 that accepts
// and closes connections until the test ends.
func tcpListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// closedPort returns an address on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCP_Pass(t *testing.T) {
	addr := tcpListener(t)
	r := check.Run(context.Background(), drover.CheckSpec{Name: "port", Type: "tcp", Address: addr, Timeout: time.Second, Interval: fast}, nil)
	if !r.OK || r.Attempts != 1 || r.Name != "port" || r.Reason != "" {
		t.Fatalf("got %+v, want OK after 1 attempt", r)
	}
}

func TestTCP_Refused(t *testing.T) {
	addr := closedPort(t)
	r := check.Run(context.Background(), drover.CheckSpec{Type: "tcp", Address: addr, Timeout: 200 * time.Millisecond, Interval: fast}, nil)
	if r.OK {
		t.Fatal("check passed against a closed port")
	}
	if want := "tcp " + addr + ": connection refused"; r.Reason != want {
		t.Errorf("reason %q, want %q", r.Reason, want)
	}
	if r.Attempts < 2 {
		t.Errorf("attempts %d: the check was not retried", r.Attempts)
	}
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/version":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("X-Release", "v1-abc")
			fmt.Fprint(w, "v1\n")
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/big":
			fmt.Fprint(w, strings.Repeat("x", 1000))
		case "/redirect":
			http.Redirect(w, r, "/version", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	tests := []struct {
		name   string
		spec   drover.CheckSpec
		ok     bool
		reason string
	}{
		{"status default 200", drover.CheckSpec{URL: srv.URL + "/version"}, true, ""},
		{"body and headers", drover.CheckSpec{URL: srv.URL + "/version", ExpectStatus: 200, ExpectBody: "v1",
			ExpectHeaders: map[string]string{"content-type": "text/plain", "X-RELEASE": "v1-abc"}}, true, ""},
		{"redirect followed", drover.CheckSpec{URL: srv.URL + "/redirect", ExpectBody: "v1"}, true, ""},
		{"expected 503", drover.CheckSpec{URL: srv.URL + "/down", ExpectStatus: 503}, true, ""},
		{"status", drover.CheckSpec{URL: srv.URL + "/down"}, false,
			"http GET " + srv.URL + "/down: status 503, want 200"},
		{"body", drover.CheckSpec{URL: srv.URL + "/version", ExpectBody: "v2"}, false,
			`body does not contain "v2" (got "v1\n")`},
		{"body truncated", drover.CheckSpec{URL: srv.URL + "/big", ExpectBody: "y"}, false,
			`body does not contain "y" (got "` + strings.Repeat("x", 200) + `"...)`},
		{"header value", drover.CheckSpec{URL: srv.URL + "/version", ExpectHeaders: map[string]string{"Content-Type": "application/json"}}, false,
			`header Content-Type = "text/plain", want "application/json"`},
		{"header missing", drover.CheckSpec{URL: srv.URL + "/version", ExpectHeaders: map[string]string{"X-Missing": "1"}}, false,
			`header X-Missing missing, want "1"`},
		{"refused", drover.CheckSpec{URL: "http://" + closedPort(t) + "/"}, false, ""},
		{"bad scheme", drover.CheckSpec{URL: "ftp://example.com/"}, false, `http check url "ftp://example.com/": scheme must be http or https`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Type = "http"
			tt.spec.Timeout = 100 * time.Millisecond
			tt.spec.Interval = fast
			r := check.Run(context.Background(), tt.spec, nil)
			if r.OK != tt.ok {
				t.Fatalf("OK = %v, want %v (reason %q)", r.OK, tt.ok, r.Reason)
			}
			if tt.reason != "" && r.Reason != tt.reason {
				t.Errorf("reason\n got %q\nwant %q", r.Reason, tt.reason)
			}
			if !tt.ok && r.Reason == "" {
				t.Error("a failed check has no reason")
			}
		})
	}
}

func TestHTTP_RefusedReason(t *testing.T) {
	addr := closedPort(t)
	r := check.Run(context.Background(), drover.CheckSpec{Type: "http", URL: "http://" + addr + "/health", Timeout: 100 * time.Millisecond, Interval: fast}, nil)
	if want := "http GET http://" + addr + "/health: connection refused"; r.Reason != want {
		t.Errorf("reason %q, want %q", r.Reason, want)
	}
}

func TestHealthyAfterThreeAttempts(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	r := check.Run(context.Background(), drover.CheckSpec{Type: "http", URL: srv.URL, Timeout: 5 * time.Second, Interval: fast}, nil)
	if !r.OK || r.Attempts != 3 || hits.Load() != 3 {
		t.Fatalf("got %+v after %d requests, want OK after 3 attempts", r, hits.Load())
	}
	if r.Reason != "" {
		t.Errorf("a passing check has reason %q", r.Reason)
	}
}

func TestDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	// hang accepts connections and never answers: one attempt must not
	// outlast the check's timeout.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			go func() { // read the request, never answer; close when the client gives up
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()

	for name, url := range map[string]string{"unhealthy": down.URL, "hanging": "http://" + hang.Addr().String() + "/"} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			r := check.Run(context.Background(), drover.CheckSpec{Type: "http", URL: url, Timeout: timeout, Interval: fast}, nil)
			took := time.Since(start)
			if r.OK {
				t.Fatal("check passed")
			}
			// Generous bounds: this is about behaviour, not speed.
			if took > timeout+fast+400*time.Millisecond {
				t.Errorf("took %v with a timeout of %v", took, timeout)
			}
			if took < timeout/2 {
				t.Errorf("gave up after %v with a timeout of %v", took, timeout)
			}
			if r.Elapsed <= 0 || r.Elapsed > took {
				t.Errorf("elapsed %v, measured %v", r.Elapsed, took)
			}
			t.Logf("%d attempts in %v: %s", r.Attempts, took, r.Reason)
		})
	}
}

func TestContextCancel(t *testing.T) {
	addr := closedPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r, err := check.RunErr(ctx, drover.CheckSpec{Type: "tcp", Address: addr, Timeout: time.Minute, Interval: fast}, nil)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v after the context was canceled", took)
	}
	if r.OK {
		t.Fatal("check passed")
	}
	if drover.ErrorCode(err) != drover.ETIMEOUT || !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want ETIMEOUT wrapping context.Canceled", err)
	}
	if !strings.Contains(r.Reason, "connection refused") {
		t.Errorf("reason %q does not keep the last failure", r.Reason)
	}

	// Already canceled: no attempt at all.
	r, err = check.RunErr(ctx, drover.CheckSpec{Type: "tcp", Address: addr}, nil)
	if r.OK || r.Attempts != 0 || err == nil {
		t.Errorf("canceled context: got %+v, %v", r, err)
	}
}

func TestCommand(t *testing.T) {
	t.Run("passes after failures", func(t *testing.T) {
		var calls int
		exec := func(ctx context.Context, cmd string) (drover.ExecResult, error) {
			if cmd != "bin/ready" {
				t.Errorf("command %q", cmd)
			}
			calls++
			if calls < 3 {
				return drover.ExecResult{ExitCode: 1, Output: "not yet\n"}, nil
			}
			return drover.ExecResult{}, nil
		}
		r := check.Run(context.Background(), drover.CheckSpec{Type: "command", Command: "bin/ready", Timeout: time.Second, Interval: fast}, exec)
		if !r.OK || r.Attempts != 3 {
			t.Fatalf("got %+v, want OK after 3 attempts", r)
		}
	})
	t.Run("fails with output tail", func(t *testing.T) {
		exec := func(ctx context.Context, cmd string) (drover.ExecResult, error) {
			return drover.ExecResult{ExitCode: 3, Output: strings.Repeat("noise ", 100) + "\ndatabase down\n"}, nil
		}
		r := check.Run(context.Background(), drover.CheckSpec{Type: "command", Command: "bin/ready", Timeout: 100 * time.Millisecond, Interval: fast}, exec)
		if r.OK || !strings.HasPrefix(r.Reason, "command exited 3: ...") || !strings.HasSuffix(r.Reason, "noise \ndatabase down") {
			t.Fatalf("got %+v", r)
		}
		if len(r.Reason) > 250 {
			t.Errorf("reason is %d bytes long", len(r.Reason))
		}
	})
	t.Run("unreachable stops at once", func(t *testing.T) {
		lost := &drover.Error{Code: drover.EUNREACHABLE, Where: "host h01", Message: "ssh: connection reset"}
		exec := func(ctx context.Context, cmd string) (drover.ExecResult, error) {
			return drover.ExecResult{}, lost
		}
		spec := drover.CheckSpec{Type: "command", Command: "true", Timeout: 10 * time.Second, Interval: fast}
		r, err := check.RunErr(context.Background(), spec, exec)
		if err != lost {
			t.Errorf("err %v, want the exec error", err)
		}
		want := check.UnreachablePrefix + "host h01: ssh: connection reset"
		if r.OK || r.Attempts != 1 || r.Reason != want {
			t.Errorf("got %+v, want 1 attempt with reason %q", r, want)
		}
		if r2 := check.Run(context.Background(), spec, exec); r2.Reason != want {
			t.Errorf("Run reason %q, want %q", r2.Reason, want)
		}
	})
	t.Run("other exec errors are retried", func(t *testing.T) {
		exec := func(ctx context.Context, cmd string) (drover.ExecResult, error) {
			return drover.ExecResult{}, drover.Errorf(drover.EFAILED, "sh: not found")
		}
		r, err := check.RunErr(context.Background(), drover.CheckSpec{Type: "command", Command: "x", Timeout: 100 * time.Millisecond, Interval: fast}, exec)
		if err != nil || r.OK || r.Attempts < 2 || r.Reason != "command: sh: not found" {
			t.Errorf("got %+v, %v", r, err)
		}
	})
	t.Run("attempt bounded by the timeout", func(t *testing.T) {
		exec := func(ctx context.Context, cmd string) (drover.ExecResult, error) {
			<-ctx.Done()
			return drover.ExecResult{ExitCode: -1}, &drover.Error{Code: drover.ETIMEOUT, Message: "command timed out", Err: ctx.Err()}
		}
		start := time.Now()
		r := check.Run(context.Background(), drover.CheckSpec{Type: "command", Command: "sleep 60", Timeout: 150 * time.Millisecond, Interval: fast}, exec)
		if took := time.Since(start); took > time.Second {
			t.Errorf("took %v", took)
		}
		if r.OK || !strings.HasPrefix(r.Reason, "command did not finish within") {
			t.Errorf("got %+v", r)
		}
	})
}

func TestUnrunnable(t *testing.T) {
	tests := []struct {
		spec   drover.CheckSpec
		reason string
	}{
		{drover.CheckSpec{Type: "ping"}, "unknown check type"},
		{drover.CheckSpec{}, "unknown check type"},
		{drover.CheckSpec{Type: "tcp"}, "tcp check has no address"},
		{drover.CheckSpec{Type: "http"}, "http check has no url"},
		{drover.CheckSpec{Type: "command", Command: "true"}, "command check has no way to run commands"},
	}
	for _, tt := range tests {
		start := time.Now()
		r, err := check.RunErr(context.Background(), tt.spec, nil)
		if r.OK || err != nil || !strings.Contains(r.Reason, tt.reason) {
			t.Errorf("%+v: got %+v, %v; want reason containing %q", tt.spec, r, err, tt.reason)
		}
		if time.Since(start) > time.Second {
			t.Errorf("%+v: an unrunnable check was retried", tt.spec)
		}
	}
}

func TestDefaults(t *testing.T) {
	// Zero Timeout and Interval mean the defaults, not "give up at once".
	addr := tcpListener(t)
	r := check.Run(context.Background(), drover.CheckSpec{Type: "tcp", Address: addr}, nil)
	if !r.OK {
		t.Fatalf("got %+v", r)
	}
}

// An attempt cut off by the check's own deadline must not hide the real
// failure of the attempt before it.
func TestDeadlineCutOffKeepsRealReason(t *testing.T) {
	calls := 0
	exec := func(ctx context.Context, command string) (drover.ExecResult, error) {
		calls++
		if calls == 1 {
			return drover.ExecResult{ExitCode: 3, Output: "orders endpoint down"}, nil
		}
		<-ctx.Done() // the second attempt runs into the deadline
		return drover.ExecResult{ExitCode: -1}, ctx.Err()
	}
	res := check.Run(context.Background(), drover.CheckSpec{Name: "c", Type: check.TypeCommand, Command: "x", Timeout: 150 * time.Millisecond, Interval: 10 * time.Millisecond}, exec)
	if res.OK || !strings.Contains(res.Reason, "exited 3: orders endpoint down") {
		t.Fatalf("reason %q after %d attempts, want the first attempt's failure", res.Reason, res.Attempts)
	}
}

// A service restarted a moment ago is up within tens of milliseconds:
// the check must poll soon after a failure and back off to its Interval,
// not wait a whole Interval each time (a batch waited most of an Interval
// for a service already up). The Interval stays the longest pause.
func TestBackoffPollsSoonThenAtInterval(t *testing.T) {
	var at []time.Time
	exec := func(ctx context.Context, cmd string) (drover.ExecResult, error) {
		at = append(at, time.Now())
		if len(at) < 4 {
			return drover.ExecResult{ExitCode: 1, Output: "not yet\n"}, nil
		}
		return drover.ExecResult{}, nil
	}
	const interval = 30 * time.Second
	r := check.Run(context.Background(), drover.CheckSpec{Type: "command", Command: "bin/ready", Timeout: time.Minute, Interval: interval}, exec)
	if !r.OK || r.Attempts != 4 {
		t.Fatalf("got %+v, want OK after 4 attempts", r)
	}
	// With a flat Interval the fourth attempt comes 90 s after the first.
	if r.Elapsed >= interval {
		t.Fatalf("three failures took %v: the pauses did not start short", r.Elapsed)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 10*time.Millisecond<<(i-1) {
			t.Errorf("pause %d was %v, want at least %v (doubling from 10 ms)", i, gap, 10*time.Millisecond<<(i-1))
		}
	}

	// The pauses never exceed the Interval: count attempts of a check that
	// never passes, with an Interval of 40 ms over 400 ms: pauses 10, 20,
	// 40, 40, ... give about 12 attempts, a flat 10 ms would give 40.
	n := 0
	never := func(ctx context.Context, cmd string) (drover.ExecResult, error) {
		n++
		return drover.ExecResult{ExitCode: 1}, nil
	}
	r = check.Run(context.Background(), drover.CheckSpec{Type: "command", Command: "x", Timeout: 400 * time.Millisecond, Interval: 40 * time.Millisecond}, never)
	if r.OK || n > 14 || n < 3 {
		t.Fatalf("%d attempts in 400 ms with Interval 40 ms, want 3 to 14", n)
	}
}
