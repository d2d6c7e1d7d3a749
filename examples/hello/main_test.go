package hello

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// freePort returns a port that was free a moment ago. The config file has
// no way to say "any port", so tests pick one the way the fleet kit does.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hello.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// get fetches url, retrying while the server is still starting.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			return resp.StatusCode, string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMainServesAndStopsOnCancel(t *testing.T) {
	port := freePort(t)
	conf := writeConfig(t, fmt.Sprintf("# test\nport = %d\nversion = 1.2.3\nmessage = hi # there\n", port))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := new(syncBuffer), new(syncBuffer)
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"-config", conf}, stdout, stderr) }()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for _, tc := range []struct{ path, body string }{
		{"/version", "1.2.3\n"},
		{"/health", "ok\n"},
		{"/", "hi # there\n"},
	} {
		if code, body := get(t, base+tc.path); code != 200 || body != tc.body {
			t.Errorf("GET %s = %d %q, want 200 %q", tc.path, code, body, tc.body)
		}
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}

	cancel()
	select {
	case rc := <-done:
		if rc != 0 {
			t.Fatalf("Main returned %d, want 0; stderr:\n%s", rc, stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not return after ctx was cancelled")
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("port still accepts connections after shutdown")
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Errorf("stderr does not log the stop:\n%s", stderr)
	}
}

func TestHealthFail(t *testing.T) {
	port := freePort(t)
	conf := writeConfig(t, fmt.Sprintf("port = %d\nversion = 2\nhealth = fail\n", port))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"-config", conf}, io.Discard, io.Discard) }()
	defer func() { cancel(); <-done }()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if code, body := get(t, base+"/health"); code != 500 || body != "unhealthy\n" {
		t.Errorf("GET /health = %d %q, want 500 %q", code, body, "unhealthy\n")
	}
	// A broken release still answers /version: only the health check can
	// tell it apart, which is the case the demo's bad rollout exercises.
	if code, body := get(t, base+"/version"); code != 200 || body != "2\n" {
		t.Errorf("GET /version = %d %q", code, body)
	}
}

// TestShutdownFinishesInFlight: a request running when the stop comes is
// answered, not cut off.
func TestShutdownFinishesInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Version: "1", Health: HealthOK}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, c, ln, io.Discard) }()

	// Send the request line and headers but hold back the end of the body:
	// the server has the request in flight until the last byte arrives.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /version HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	cancel()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("server stopped with a request in flight: %v", err)
	default:
	}
	conn.Write([]byte("x"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "1\n" {
		t.Errorf("in-flight request = %d %q", resp.StatusCode, body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(ShutdownTimeout + 2*time.Second):
		t.Fatal("server did not stop")
	}
}

func TestCheck(t *testing.T) {
	good := "# a comment\n\nport = 8080\nversion = 1.0.0\nmessage = hello from h01\nhealth = ok\nlisten = 127.0.0.1\n"
	tests := []struct {
		name   string
		config string
		want   []string // substrings of stderr; nil = valid
	}{
		{"good", good, nil},
		{"minimal", "port=1\nversion=x\n", nil},
		{"ipv6 listen", "port = 65535\nversion = 1\nlisten = ::1\n", nil},
		{"missing port", "version = 1\n", []string{"port is required"}},
		{"missing version", "port = 80\n", []string{"version is required"}},
		{"unknown key", "port = 80\nversion = 1\n\nport2 = 3\n", []string{":4: unknown key \"port2\""}},
		{"port too big", "version = 1\nport = 70000\n", []string{":2: port must be a number from 1 to 65535"}},
		{"port zero", "version = 1\nport = 0\n", []string{":2: port must be"}},
		{"port not a number", "port = eighty\nversion = 1\n", []string{":1: port must be"}},
		{"bad health", "port = 80\nversion = 1\nhealth = meh\n", []string{":3: health must be \"ok\" or \"fail\""}},
		{"no equals", "port = 80\nversion = 1\njust words\n", []string{":3: expected `key = value`"}},
		{"empty key", "port = 80\nversion = 1\n= x\n", []string{":3: missing key"}},
		{"empty version", "port = 80\nversion =\n", []string{":2: version is empty"}},
		{"duplicate", "port = 80\nversion = 1\nport = 81\n", []string{":3: port is already set on line 1"}},
		{"bad listen", "port = 80\nversion = 1\nlisten = 1.2.3.4:80\n", []string{":3: listen must be"}},
		{"all errors reported", "port = x\nhealth = y\nfoo = z\n", []string{":1: port", ":2: health", ":3: unknown key", "version is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conf := writeConfig(t, tc.config)
			var stdout, stderr bytes.Buffer
			rc := Main(context.Background(), []string{"-check", "-config", conf}, &stdout, &stderr)
			if tc.want == nil {
				if rc != 0 {
					t.Fatalf("rc = %d, want 0; stderr:\n%s", rc, stderr.String())
				}
				if !strings.Contains(stdout.String(), "ok") {
					t.Errorf("stdout = %q, want a verdict", stdout.String())
				}
				return
			}
			if rc != 1 {
				t.Fatalf("rc = %d, want 1; stdout %q", rc, stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), conf+w) && !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			// Errors name the file, so a message from a host points at it.
			if !strings.Contains(stderr.String(), conf) {
				t.Errorf("stderr does not name %s:\n%s", conf, stderr.String())
			}
		})
	}
}

func TestCheckErrorsCarryFileAndLine(t *testing.T) {
	conf := writeConfig(t, "port = 80\nversion = 1\nhealth = sick\n")
	var stderr bytes.Buffer
	if rc := Main(context.Background(), []string{"-check", "-config", conf}, io.Discard, &stderr); rc != 1 {
		t.Fatalf("rc = %d", rc)
	}
	if want := conf + ":3: health must be"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}

func TestArgs(t *testing.T) {
	conf := writeConfig(t, "port = 80\nversion = 1\n")
	tests := []struct {
		args []string
		rc   int
	}{
		{[]string{"-check", "-config", conf}, 0},
		{[]string{"-config", conf, "-check"}, 0},
		{[]string{conf, "-check"}, 0}, // the form of the README's example
		{[]string{"-check", conf}, 0},
		{[]string{"-check"}, 2},
		{[]string{"-check", conf, conf}, 2},
		{[]string{"-check", "-config", conf, "extra"}, 2},
		{[]string{"-nope"}, 2},
		{[]string{"-check", "-config", filepath.Join(t.TempDir(), "missing.conf")}, 1},
	}
	for _, tc := range tests {
		var stderr bytes.Buffer
		if rc := Main(context.Background(), tc.args, io.Discard, &stderr); rc != tc.rc {
			t.Errorf("Main(%q) = %d, want %d; stderr:\n%s", tc.args, rc, tc.rc, stderr.String())
		}
	}
}

func TestStartupRejectsBadConfig(t *testing.T) {
	conf := writeConfig(t, "port = 80\nversion = 1\ncolour = blue\n")
	var stderr bytes.Buffer
	if rc := Main(context.Background(), []string{"-config", conf}, io.Discard, &stderr); rc != 1 {
		t.Fatalf("rc = %d, want 1", rc)
	}
	if !strings.Contains(stderr.String(), conf+":3: unknown key \"colour\"") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestStartupFailsWhenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conf := writeConfig(t, fmt.Sprintf("port = %d\nversion = 1\n", ln.Addr().(*net.TCPAddr).Port))
	var stderr bytes.Buffer
	if rc := Main(context.Background(), []string{"-config", conf}, io.Discard, &stderr); rc != 1 {
		t.Fatalf("rc = %d, want 1; stderr:\n%s", rc, stderr.String())
	}
}

// startup_error is logged once at start, and the service stays healthy:
// only a log check tells this release apart.
func TestStartupErrorIsLoggedAndServiceStaysHealthy(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("port = 1\nversion = 3\nstartup_error = cannot open cache\n"), "hello.conf")
	if err != nil || c.StartupError != "cannot open cache" {
		t.Fatalf("parse: %+v %v", c, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Health = HealthOK
	var logw syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, c, ln, &logw) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	<-done
	if resp.StatusCode != 200 || !strings.Contains(logw.String(), "hello 3: ERROR cannot open cache\n") {
		t.Errorf("health %d, log:\n%s", resp.StatusCode, logw.String())
	}
}
