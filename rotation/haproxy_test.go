package rotation_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"drover"
	"drover/internal/haproxyfleet"
	"drover/rotation"
)

// backend is one server behind the proxy: it counts requests to /, can
// hold requests to /slow until released, and can fail its health check.
type backend struct {
	name    string
	srv     *httptest.Server
	hits    atomic.Int64
	healthy atomic.Bool
	release chan struct{}
	inSlow  chan struct{}
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{name: name, release: make(chan struct{}), inSlow: make(chan struct{}, 16)}
	b.healthy.Store(true)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			if !b.healthy.Load() {
				http.Error(w, "unhealthy", http.StatusInternalServerError)
				return
			}
		case "/slow":
			b.inSlow <- struct{}{}
			<-b.release
		default:
			b.hits.Add(1)
		}
		fmt.Fprintln(w, b.name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func startProxy(t *testing.T, backends ...*backend) *haproxyfleet.Proxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "hx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var servers []haproxyfleet.Server
	for _, b := range backends {
		servers = append(servers, haproxyfleet.Server{Name: b.name, Addr: strings.TrimPrefix(b.srv.URL, "http://")})
	}
	p, err := haproxyfleet.Start(context.Background(), haproxyfleet.Options{Dir: dir, Servers: servers, CheckInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if err := p.WaitAllUp(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

func host(name string) drover.RotationHost {
	return drover.RotationHost{Host: drover.Host{Name: name}, Data: drover.TemplateData{Host: drover.TemplateHost{Name: name}}}
}

func server(t *testing.T, p *haproxyfleet.Proxy, name string) rotation.ServerStat {
	t.Helper()
	srvs, err := p.Servers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srvs {
		if s.Server == name {
			return s
		}
	}
	t.Fatalf("no server %s in %+v", name, srvs)
	return rotation.ServerStat{}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return strings.TrimSpace(string(b))
}

// TestHAProxyDrainWaitRepool drives a real HAProxy: a drained server gets
// no new requests while a request it is serving finishes, WaitIdle returns
// once that request is done, and Repool returns once the server is UP.
func TestHAProxyDrainWaitRepool(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	p := startProxy(t, a, b)
	hp := &rotation.HAProxy{Runtime: rotation.Runtime{Addr: p.Socket}, Backend: p.Backend, Interval: 20 * time.Millisecond, UpTimeout: 10 * time.Second}
	ctx := context.Background()
	front := "http://" + p.Frontend
	client := &http.Client{Timeout: 10 * time.Second}

	// A slow request in flight on a, wherever round robin sends it.
	var wg sync.WaitGroup
	slowOn := make(chan string, 1)
	wg.Go(func() { slowOn <- get(t, client, front+"/slow") })
	var slow *backend
	select {
	case <-a.inSlow:
		slow = a
	case <-b.inSlow:
		slow = b
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request reached no backend")
	}
	other := a
	if slow == a {
		other = b
	}
	h := host(slow.name)
	if err := hp.Depool(ctx, h); err != nil {
		t.Fatal(err)
	}
	if s := server(t, p, slow.name); s.Admin != rotation.StateDrain || s.Sessions != 1 {
		t.Fatalf("after depool: %+v", s)
	}

	// While draining, new requests go to the other server only.
	before := slow.hits.Load()
	for range 20 {
		if got := get(t, client, front+"/"); got != other.name {
			t.Fatalf("a request reached the drained server %s", got)
		}
	}
	if slow.hits.Load() != before {
		t.Fatalf("the drained server counted %d new requests", slow.hits.Load()-before)
	}

	// WaitIdle waits for the request in flight.
	waited := make(chan error, 1)
	go func() { waited <- hp.WaitIdle(ctx, h, 20*time.Second) }()
	select {
	case err := <-waited:
		t.Fatalf("WaitIdle returned %v with a request in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(slow.release)
	if err := <-waited; err != nil {
		t.Fatalf("WaitIdle: %v", err)
	}
	wg.Wait()
	if got := <-slowOn; got != slow.name {
		t.Fatalf("the slow request was answered by %s", got)
	}

	if err := hp.Repool(ctx, h); err != nil {
		t.Fatal(err)
	}
	if s := server(t, p, slow.name); s.Admin != rotation.StateReady || !s.Up() {
		t.Fatalf("after repool: %+v", s)
	}
	seen := map[string]bool{}
	for range 10 {
		seen[get(t, client, front+"/")] = true
	}
	if !seen[slow.name] {
		t.Errorf("the repooled server gets no requests: %v", seen)
	}
}

// TestHAProxyDrainTimeoutMaint: a server still busy at the drain timeout is
// put in maint and WaitIdle says ETIMEOUT.
func TestHAProxyDrainTimeoutMaint(t *testing.T) {
	a := newBackend(t, "a")
	p := startProxy(t, a)
	hp := &rotation.HAProxy{Runtime: rotation.Runtime{Addr: p.Socket}, Backend: p.Backend, Interval: 20 * time.Millisecond}
	ctx := context.Background()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(a.release)
	wg.Go(func() {
		resp, err := http.Get("http://" + p.Frontend + "/slow")
		if err == nil {
			resp.Body.Close()
		}
	})
	<-a.inSlow
	h := host("a")
	if err := hp.Depool(ctx, h); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := hp.WaitIdle(ctx, h, 300*time.Millisecond)
	if drover.ErrorCode(err) != drover.ETIMEOUT || !strings.Contains(err.Error(), "still 1 sessions") || !strings.Contains(err.Error(), "maint") {
		t.Fatalf("WaitIdle: %v (%s)", err, drover.ErrorCode(err))
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("returned after %s, before the timeout", took)
	}
	if s := server(t, p, "a"); s.Admin != rotation.StateMaint {
		t.Errorf("after the drain timeout: %+v, want maint", s)
	}
}

// TestHAProxyRepoolWaitsForHealth: Repool leaves a server whose check fails
// ready (never out of rotation) and fails with its status after
// UpTimeout; once the check passes, Repool returns with the server UP.
func TestHAProxyRepoolWaitsForHealth(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	p := startProxy(t, a, b)
	hp := &rotation.HAProxy{Runtime: rotation.Runtime{Addr: p.Socket}, Backend: p.Backend, Interval: 20 * time.Millisecond, UpTimeout: 600 * time.Millisecond}
	ctx := context.Background()
	h := host("a")
	if err := hp.Depool(ctx, h); err != nil {
		t.Fatal(err)
	}
	a.healthy.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasPrefix(server(t, p, "a").Status, "DRAIN") || server(t, p, "a").CheckStatus != "L7STS" {
		if time.Now().After(deadline) {
			t.Fatalf("the check never failed: %+v", server(t, p, "a"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	err := hp.Repool(ctx, h)
	if drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), "not UP after 600ms") || !strings.Contains(err.Error(), "L7STS") {
		t.Fatalf("Repool of an unhealthy server: %v", err)
	}
	if s := server(t, p, "a"); s.Admin != rotation.StateReady {
		t.Errorf("after a failed repool: %+v, want ready", s)
	}

	a.healthy.Store(true)
	hp.UpTimeout = 10 * time.Second
	if err := hp.Repool(ctx, h); err != nil {
		t.Fatal(err)
	}
	if s := server(t, p, "a"); !s.Up() || s.Admin != rotation.StateReady {
		t.Errorf("after repool: %+v", s)
	}

	// A server the backend does not have is an error naming it.
	err = hp.Depool(ctx, host("zz"))
	if drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), "No such server") {
		t.Errorf("unknown server: %v", err)
	}
}

// TestHAProxyRuntimeErrors: a backend or server HAProxy does not have is
// an error that says which key to check.
func TestHAProxyRuntimeErrors(t *testing.T) {
	a := newBackend(t, "a")
	p := startProxy(t, a)
	rt := p.Runtime()
	if _, err := rt.Stats(context.Background(), "nope"); drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), `no backend "nope"`) {
		t.Errorf("unknown backend: %v", err)
	}
	if _, err := rt.Stat(context.Background(), p.Backend, "zz"); drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(drover.ErrorHint(err), "rotation.haproxy.server") {
		t.Errorf("unknown server: %v", err)
	}
}
