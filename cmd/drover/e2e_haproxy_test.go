package main

// End-to-end tests of rotation with a real HAProxy (Debian's package,
// started by the test) in front of sample-service hosts, and a load
// generator sending requests through it while drover deploys. Every
// assertion is about what clients saw, what HAProxy reports and what the
// services served — not about what drover says it did.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/examples/hello"
	"drover/internal/haproxyfleet"
	"drover/internal/localfleet"
	"drover/rotation"
)

// lbFleet is a local fleet behind a real HAProxy whose runtime API drover
// drives (rotation.haproxy in drover.yaml).
type lbFleet struct {
	*localfleet.Fleet
	proxy *haproxyfleet.Proxy
}

func newLBFleet(t *testing.T, hosts int, groups, extraHooks string) *lbFleet {
	t.Helper()
	if err := haproxyfleet.Check(); err != nil {
		t.Fatal(err)
	}
	// A short directory: the admin socket's path must fit a sockaddr.
	hx, err := os.MkdirTemp("", "hx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hx) })
	sock := filepath.Join(hx, "admin.sock")
	rot := fmt.Sprintf("rotation:\n  haproxy:\n    socket: %q\n    backend: %s\n    drain_timeout: 10s\n    up_timeout: 20s\n", sock, haproxyfleet.DefaultBackend)
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: hosts, Groups: groups, ExtraYAML: rot, ExtraHooks: extraHooks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	var servers []haproxyfleet.Server
	for _, h := range f.Hosts {
		servers = append(servers, haproxyfleet.Server{Name: h.Name, Addr: fmt.Sprintf("127.0.0.1:%d", h.Port)})
	}
	p, err := haproxyfleet.Start(context.Background(), haproxyfleet.Options{Dir: hx, Servers: servers, CheckInterval: 100 * time.Millisecond, CheckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return &lbFleet{Fleet: f, proxy: p}
}

// wantAllInRotation asserts HAProxy has every server administratively
// ready and UP, now: drover returns from a repool only once HAProxy
// reports the server UP.
func (lb *lbFleet) wantAllInRotation(t *testing.T) {
	t.Helper()
	srvs, err := lb.proxy.Servers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(srvs) != len(lb.Hosts) {
		t.Fatalf("HAProxy has %d servers, want %d", len(srvs), len(lb.Hosts))
	}
	for _, s := range srvs {
		if s.Admin != rotation.StateReady || !s.Up() {
			t.Errorf("%s is out of rotation after drover exited: status %s, admin %s, check %s", s.Server, s.Status, s.Admin, s.CheckStatus)
		}
	}
}

func (lb *lbFleet) server(t *testing.T, name string) rotation.ServerStat {
	t.Helper()
	s, err := lb.proxy.Runtime().Stat(context.Background(), lb.proxy.Backend, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// load sends paced GETs through the frontend from a few workers until
// stopped, counting answers other than 200 and connection errors.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	samples    []string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, frontend string) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	const workers, every = 2, 10 * time.Millisecond
	for range workers {
		l.wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				l.one(ctx, client, "http://"+frontend+"/")
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) one(ctx context.Context, c *http.Client, url string) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if ctx.Err() != nil {
		return // stopping: not the service's failure
	}
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			l.ok.Add(1)
			return
		}
		err = fmt.Errorf("status %s", resp.Status)
	}
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.samples) < 10 {
		l.samples = append(l.samples, time.Now().Format("15:04:05.000")+" "+err.Error())
	}
	l.mu.Unlock()
}

// stop ends the load and waits for its workers. Safe to call twice.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// wantNoFailures stops the load and asserts every request got a 200, and
// that there were enough requests for that to mean something.
func (l *load) wantNoFailures(t *testing.T, atLeast int64) {
	t.Helper()
	l.stop()
	ok, failed := l.ok.Load(), l.failed.Load()
	t.Logf("load: %d requests answered 200, %d failed", ok, failed)
	if failed > 0 {
		t.Errorf("%d of %d requests through HAProxy failed during the deploy, e.g.:\n%s", failed, ok+failed, strings.Join(l.samples, "\n"))
	}
	if ok < atLeast {
		t.Errorf("only %d requests got through; the load generator did not run through the deploy", ok)
	}
}

// deployJSON runs a deploy with --output json and returns its result and
// events.
func deployJSON(t *testing.T, f *localfleet.Fleet, src string, extra ...string) (result, []drover.Event) {
	t.Helper()
	r := deploy(t, f, src, append([]string{"--output", "json"}, extra...)...)
	return r, lbEvents(t, r.stdout)
}

func lbEvents(t *testing.T, stdout string) []drover.Event {
	t.Helper()
	var evs []drover.Event
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e drover.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// servedLine is the sample service's log line when it stops.
var servedLine = regexp.MustCompile(`hello (\S+) stopped: served (\d+) requests to /(?: \(first (\S+), last (\S+)\))?`)

// oldServed returns what the process of version v on host served before
// it stopped, from the host's service log.
func oldServed(t *testing.T, f *localfleet.Fleet, host, v string) (n int, last time.Time) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.DeployRoot(host), "run", "hello.log"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range servedLine.FindAllStringSubmatch(string(b), -1) {
		if m[1] != v {
			continue
		}
		found = true
		fmt.Sscan(m[2], &n)
		if m[4] != "" {
			last, err = time.Parse(time.RFC3339Nano, m[4])
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if !found {
		t.Fatalf("%s: no 'hello %s stopped' line in the service log:\n%s", host, v, b)
	}
	return n, last
}

// liveStats is GET /stats of host's service.
func liveStats(t *testing.T, f *localfleet.Fleet, host string) hello.Stats {
	t.Helper()
	h, _ := f.Host(host)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats", h.Port))
	if err != nil {
		t.Fatalf("%s: %v", host, err)
	}
	defer resp.Body.Close()
	var st hello.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("%s /stats: %v", host, err)
	}
	return st
}

// outWindows returns, per host, when its deploy-path depool finished and
// when its repool began: the time it was out of rotation.
func outWindows(evs []drover.Event) (depooled, repooling map[string]time.Time) {
	depooled, repooling = map[string]time.Time{}, map[string]time.Time{}
	for _, e := range evs {
		if e.Restoring || e.Host == "" {
			continue
		}
		switch {
		case e.Kind == drover.EventStepDone && e.Step == "depool" && e.Outcome == "ok":
			depooled[e.Host] = e.Time
		case e.Kind == drover.EventStepStart && e.Step == "repool":
			repooling[e.Host] = e.Time
		}
	}
	return depooled, repooling
}

// TestE2EHAProxyRollingDeploy: with HAProxy in front of four hosts and
// requests flowing through it, a rolling deploy fails no request, and a
// host out of rotation receives none: the process it stopped served its
// last request before its depool (drain + wait idle) finished, and the
// process it started served its first after its repool began.
func TestE2EHAProxyRollingDeploy(t *testing.T) {
	t.Parallel()
	lb := newLBFleet(t, 4, e2eGroups, "")
	mustExit(t, deploy(t, lb.Fleet, writeRelease(t, lb.Fleet, "1.0.0", true)), 0)
	lb.wantAllInRotation(t)
	v2 := writeRelease(t, lb.Fleet, "2.0.0", true)

	l := startLoad(t, lb.proxy.Frontend)
	time.Sleep(500 * time.Millisecond) // every host serves some v1 traffic
	r, evs := deployJSON(t, lb.Fleet, v2)
	l.wantNoFailures(t, 100)
	mustExit(t, r, 0)
	wantServing(t, lb.Fleet, "2.0.0", nil)
	lb.wantAllInRotation(t)

	depooled, repooling := outWindows(evs)
	for _, h := range lb.Hosts {
		out, back := depooled[h.Name], repooling[h.Name]
		if out.IsZero() || back.IsZero() {
			t.Fatalf("%s: no depool/repool events in\n%s", h.Name, r.stdout)
		}
		n, last := oldServed(t, lb.Fleet, h.Name, "1.0.0")
		if n == 0 {
			t.Errorf("%s: its v1 process served no request; the load did not reach it", h.Name)
		} else if !last.Before(out) {
			t.Errorf("%s: its v1 process served a request at %s, after its depool finished at %s", h.Name, last.Format(time.RFC3339Nano), out.Format(time.RFC3339Nano))
		}
		if st := liveStats(t, lb.Fleet, h.Name); st.Requests > 0 && st.First.Before(back) {
			t.Errorf("%s: its v2 process served a request at %s, before its repool began at %s", h.Name, st.First.Format(time.RFC3339Nano), back.Format(time.RFC3339Nano))
		}
	}
}

// TestE2EHAProxyFailedDeployBackInRotation: a deploy past its failure limit
// (h03's health check fails on the new release) rolls back the canary and
// h02, and afterwards every host is in rotation, UP, on the old release —
// and no client saw a failure meanwhile: the broken host was drained
// before it switched.
func TestE2EHAProxyFailedDeployBackInRotation(t *testing.T) {
	t.Parallel()
	lb := newLBFleet(t, 4, e2eGroups, "")
	mustExit(t, deploy(t, lb.Fleet, writeRelease(t, lb.Fleet, "1.0.0", true)), 0)
	bad := releaseWithBadHosts(t, lb.Fleet, "3.0.0", "h03")

	l := startLoad(t, lb.proxy.Frontend)
	r, evs := deployJSON(t, lb.Fleet, bad)
	l.wantNoFailures(t, 50)
	mustExit(t, r, drover.ExitRolledBack)
	wantServing(t, lb.Fleet, "1.0.0", nil)
	lb.wantAllInRotation(t)
	rolledBack := map[string]bool{}
	for _, e := range evs {
		if e.Kind == drover.EventHostRolledBack {
			rolledBack[e.Host] = true
		}
	}
	if !rolledBack["h01"] || !rolledBack["h02"] {
		t.Errorf("rolled back %v, want the canary h01 and h02 among them", rolledBack)
	}
}

// TestE2EHAProxyKilledWhileDepooled: drover killed with SIGKILL while a
// host is out of rotation leaves it drained in HAProxy; `drover resume`
// reads the journal and puts every host it touched back on the old
// release and into rotation.
func TestE2EHAProxyKilledWhileDepooled(t *testing.T) {
	t.Parallel()
	lb := newLBFleet(t, 4, e2eGroups, "")
	mustExit(t, deploy(t, lb.Fleet, writeRelease(t, lb.Fleet, "1.0.0", true)), 0)
	v2 := writeRelease(t, lb.Fleet, "2.0.0", true)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, "deploy", "-c", lb.Config, "--release", v2, "--output", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var e drover.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind == drover.EventStepDone && e.Host == "h02" && e.Step == "depool" && !e.Restoring {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	cmd.Wait()
	if !killed {
		t.Fatalf("the deploy ended before h02 was depooled:\n%s", stderr.String())
	}
	if s := lb.server(t, "h02"); s.Admin == rotation.StateReady {
		t.Fatalf("h02 is ready right after drover died while it was depooled: %+v", s)
	}

	l := startLoad(t, lb.proxy.Frontend)
	r := runDrover(t, "resume", "-c", lb.Config)
	l.wantNoFailures(t, 1)
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "never finished") {
		t.Errorf("resume did not report the interrupted deploy:\n%s", r)
	}
	wantServing(t, lb.Fleet, "1.0.0", nil)
	lb.wantAllInRotation(t)
}

// TestE2EHAProxyBeforeHookLeavesHostUntouched: a failing before_promote
// fails h03 before anything on it changes — its state.json, its current
// release and its running process stay as they were, and it is back in
// rotation — and a failing before_stage leaves h04's deploy root as it
// was. The other hosts deploy; the deploy ends within its limit (exit 4).
func TestE2EHAProxyBeforeHookLeavesHostUntouched(t *testing.T) {
	t.Parallel()
	groups := `groups:
  - {name: canary, hosts: [h01], batch: 1, failure_limit: 0}
  - {name: default, hosts: ["h*"], batch: 1, failure_limit: 2}
`
	hooks := `before_promote: "test {{.Release.Version}} != 2.0.0 -o {{.Host.Name}} != h03"
before_stage: "test {{.Release.Version}} != 2.0.0 -o {{.Host.Name}} != h04"`
	lb := newLBFleet(t, 4, groups, hooks)
	mustExit(t, deploy(t, lb.Fleet, writeRelease(t, lb.Fleet, "1.0.0", true)), 0)
	v2 := writeRelease(t, lb.Fleet, "2.0.0", true)

	root3 := lb.DeployRoot("h03")
	state3, err := os.ReadFile(filepath.Join(root3, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	current3, err := os.Readlink(filepath.Join(root3, "current"))
	if err != nil {
		t.Fatal(err)
	}
	pid3, pid4 := liveStats(t, lb.Fleet, "h03").PID, liveStats(t, lb.Fleet, "h04").PID
	tree4 := treeDigest(t, lb.DeployRoot("h04"))

	l := startLoad(t, lb.proxy.Frontend)
	r, evs := deployJSON(t, lb.Fleet, v2)
	l.wantNoFailures(t, 20)
	mustExit(t, r, drover.ExitPartial)
	wantServing(t, lb.Fleet, "2.0.0", map[string]string{"h03": "1.0.0", "h04": "1.0.0"})
	lb.wantAllInRotation(t)

	if b, _ := os.ReadFile(filepath.Join(root3, "state.json")); !bytes.Equal(b, state3) {
		t.Errorf("h03 state.json changed:\n%s\n---\n%s", state3, b)
	}
	if c, _ := os.Readlink(filepath.Join(root3, "current")); c != current3 {
		t.Errorf("h03 current %s, was %s", c, current3)
	}
	if p := liveStats(t, lb.Fleet, "h03").PID; p != pid3 {
		t.Errorf("h03 was restarted (pid %d, was %d)", p, pid3)
	}
	if p := liveStats(t, lb.Fleet, "h04").PID; p != pid4 {
		t.Errorf("h04 was restarted (pid %d, was %d)", p, pid4)
	}
	after4 := treeDigest(t, lb.DeployRoot("h04"))
	for k := range after4 {
		if strings.HasPrefix(k, "run") {
			delete(after4, k)
			delete(tree4, k)
		}
	}
	if d := diffDigests(tree4, after4); len(d) > 0 {
		t.Errorf("h04's deploy root changed after its before_stage refused:\n%s", strings.Join(d, "\n"))
	}
	for _, e := range evs {
		if e.Host == "h03" && (e.Step == "restore" || e.Step == "restart") {
			t.Errorf("h03 went through %s after its before_promote refused", e.Step)
		}
	}
	if !strings.Contains(r.stdout, "before_promote hook exited 1") || !strings.Contains(r.stdout, "before_stage hook exited 1") {
		t.Errorf("the events do not say which hook refused:\n%s", r.stdout)
	}
}
