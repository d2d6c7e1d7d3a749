package main

// End-to-end tests of the gates after groups: smoke checks and invariants,
// with the real binary and a local fleet of real sample-service processes.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"drover/internal/localfleet"
)

// gatesGroups: a canary, then the rest in batches of 2 with one failure
// allowed, so only a gate can halt a deploy of a healthy release.
const gatesGroups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
  - name: default
    hosts: ["h*"]
    batch: 2
    failure_limit: 1
`

func newGatesFleet(t *testing.T, hosts int, groups, extra string) *localfleet.Fleet {
	t.Helper()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: hosts, Groups: groups, ExtraYAML: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// statsEndpoint is a statistics endpoint in the test process. Its order
// count drops from 1042 to 3 as soon as the canary serves 2.0.0: the
// migration of docs/why.md#compare-before-after that lost the data, seen from outside.
type statsEndpoint struct {
	srv   *httptest.Server
	fleet atomic.Pointer[localfleet.Fleet]
	reads atomic.Int32
}

func newStatsEndpoint(t *testing.T) *statsEndpoint {
	t.Helper()
	s := &statsEndpoint{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reads.Add(1)
		count := 1042
		if f := s.fleet.Load(); f != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			if v, _ := f.Version(ctx, "h01"); v == "2.0.0" {
				count = 3
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"orders": {"count": %d}, "uptime": 12}`, count)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func TestE2EInvariantDropHaltsAndRollsBack(t *testing.T) {
	t.Parallel()
	stats := newStatsEndpoint(t)
	f := newGatesFleet(t, 4, gatesGroups, `invariants:
  - name: orders
    source: {http: "`+stats.srv.URL+`/stats"}
    rules:
      - {path: $.orders.count, op: gte}
`)
	stats.fleet.Store(f)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	wantServing(t, f, "1.0.0", nil)
	before := map[string]hostState{}
	for _, h := range f.Hosts {
		before[h.Name] = readState(t, f, h.Name)
	}

	r := deploy(t, f, writeRelease(t, f, "2.0.0", true))
	mustExit(t, r, 1)
	wantServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		got := readState(t, f, h.Name)
		if got.Current != before[h.Name].Current || got.Previous != before[h.Name].Previous {
			t.Errorf("%s after the halt: current %s previous %s, want %s %s", h.Name, got.Current, got.Previous, before[h.Name].Current, before[h.Name].Previous)
		}
	}
	out := r.stdout + r.stderr
	for _, want := range []string{"$.orders.count = 1042", "$.orders.count was 1042 before, 3 after: want >= before"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy output lacks %q:\n%s", want, out)
		}
	}
	// Only the canary was switched: the default group never started.
	for _, h := range f.Hosts[1:] {
		if s := readState(t, f, h.Name); s.Current != before[h.Name].Current {
			t.Errorf("%s was switched after the canary's invariant failed", h.Name)
		}
	}
}

func TestE2ESmokeFailingAfterDefaultGroupRollsBackEveryHost(t *testing.T) {
	t.Parallel()
	var lbHits atomic.Int32
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lbHits.Add(1)
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(lb.Close)
	// The default group's smoke test runs on this machine: it fails for
	// 2.0.0 only, after every host of the group is on it. The deploy-level
	// smoke goes through the "load balancer".
	groups := gatesGroups + `    smoke:
      - name: checkout
        type: command
        command: 'test {{.Release.Version}} != 2.0.0 || { echo "checkout flow broken on $DROVER_VERSION" >&2; exit 1; }'
        timeout: 1s
        interval: 100ms
`
	f := newGatesFleet(t, 4, groups, `smoke:
  - {name: lb, type: http, url: "`+lb.URL+`/version", expect_body: ok, timeout: 5s}
`)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	if lbHits.Load() != 1 {
		t.Errorf("deploy-level smoke made %d requests, want 1", lbHits.Load())
	}
	r := deploy(t, f, writeRelease(t, f, "2.0.0", true))
	mustExit(t, r, 1)
	// Every host, the canary included, is back on 1.0.0.
	wantServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		if s := readState(t, f, h.Name); !strings.HasPrefix(s.Current, "1.0.0-") || s.Previous != "" {
			t.Errorf("%s after the halt: %+v, want current 1.0.0-*, no previous", h.Name, s)
		}
	}
	out := r.stdout + r.stderr
	if want := "gate smoke checkout failed: command exited 1: checkout flow broken on 2.0.0"; !strings.Contains(out, want) {
		t.Errorf("deploy output lacks %q:\n%s", want, out)
	}
	if lbHits.Load() != 1 {
		t.Errorf("the deploy-level smoke ran after the group's smoke failed (%d requests)", lbHits.Load())
	}
}

// An invariant whose document cannot be read stops the deploy before it
// starts: exit 3, and neither the hosts nor the state directory change.
func TestE2EInvariantCaptureFailureTouchesNothing(t *testing.T) {
	t.Parallel()
	f := newGatesFleet(t, 2, gatesGroups, `invariants:
  - name: rows
    source: {command: "echo 'stats database unreachable' >&2; exit 2"}
    timeout: 1s
    rules: [{path: $.rows, op: equal}]
`)
	hosts := hostsDigest(t, f)
	r := deploy(t, f, writeRelease(t, f, "1.0.0", true))
	mustExit(t, r, 3)
	if d := diffDigests(hosts, hostsDigest(t, f)); len(d) > 0 {
		t.Errorf("hosts changed:\n%s", strings.Join(d, "\n"))
	}
	// The deploy never began: history has nothing to show.
	h := runDrover(t, "history", "-c", f.Config, "--json")
	mustExit(t, h, 0)
	if s := strings.TrimSpace(h.stdout); s != "[]" && s != "null" {
		t.Errorf("history after a deploy that never started:\n%s", s)
	}
	for _, want := range []string{"invariant rows", "nothing was touched", "stats database unreachable"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}
