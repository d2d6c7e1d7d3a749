package main

// End-to-end tests of canary analysis and approvals: the real drover
// binary, a local fleet of real sample-service processes under load, and a
// real Prometheus server (Debian's package) scraping them every second.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/examples/hello"
	"drover/internal/localfleet"
	"drover/internal/promfleet"
)

// analysisHosts is the fleet size: a canary and five to compare it with.
const analysisHosts = 6

// canaryAnalysisYAML: the canary bakes 6s while its error ratio is judged
// against a static threshold (per host) and against the rest of the fleet
// (Mann–Whitney over the same window), with fresh scrapes required; the
// rest follows in batches of 3.
func canaryAnalysisYAML(promURL string) (groups, extra string) {
	groups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
    wait: 6s
  - name: default
    hosts: ["h*"]
    batch: 3
    failure_limit: 1
`
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	// A healthy host has no 5xx series at all: "or ... * 0" makes its
	// error count 0 instead of no data (which would fail closed).
	ratio := `(sum by (host) (rate(hello_http_requests_total{code=~"5..",host=~"%[1]s"}[3s])) or sum by (host) (rate(hello_http_requests_total{host=~"%[1]s"}[3s])) * 0) / sum by (host) (rate(hello_http_requests_total{host=~"%[1]s"}[3s]))`
	extra = fmt.Sprintf(`analysis:
  - name: error-ratio
    prometheus: %[1]s
    query: %[2]s
    interval: 1s
    max: 0.05
  - name: errors-vs-fleet
    prometheus: %[1]s
    query: %[3]s
    interval: 1s
    window: 6s
    step: 1s
    max_increase: 0.02
  - name: scraped
    prometheus: %[1]s
    query: %[4]s
    interval: 1s
    max_age: 5s
`, q(promURL), q(fmt.Sprintf(ratio, "{{.Host.Name}}")), q(fmt.Sprintf(ratio, ".+")), q(`up{host="{{.Host.Name}}"}`))
	return groups, extra
}

// promFleet is a local fleet scraped by a real Prometheus, under load.
type promFleet struct {
	*localfleet.Fleet
	prom     *promfleet.Server
	targets  []promfleet.Target
	stopLoad func() (int, int)
}

func newPromFleet(t *testing.T) *promFleet {
	t.Helper()
	if _, err := promfleet.Binary(); err != nil {
		t.Fatalf("%v", err)
	}
	base := t.TempDir()
	// The fleet's ports are needed for the scrape config and the
	// Prometheus URL for drover.yaml: start Prometheus on the planned
	// ports first (targets down until the first deploy), then the fleet.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prom, err := promfleet.Start(ctx, promfleet.Options{Dir: filepath.Join(base, "prometheus")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prom.Stop)
	groups, extra := canaryAnalysisYAML(prom.URL)
	f, err := localfleet.New(localfleet.Options{Dir: filepath.Join(base, "fleet"), Hosts: analysisHosts, Groups: groups, ExtraYAML: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	pf := &promFleet{Fleet: f, prom: prom}
	var urls, hosts []string
	for _, h := range f.Hosts {
		addr := fmt.Sprintf("127.0.0.1:%d", h.Port)
		pf.targets = append(pf.targets, promfleet.Target{Host: h.Name, Address: addr})
		urls = append(urls, "http://"+addr+"/")
		hosts = append(hosts, h.Name)
	}
	if err := prom.SetTargets(ctx, pf.targets); err != nil {
		t.Fatal(err)
	}
	// Every host serves 1.0.0, deployed with the same file less its bake
	// and analyses (appended last by localfleet): no analysis can judge a
	// first deploy, whose services have served nothing yet.
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(strings.Replace(string(cfg), "    wait: 6s\n", "", 1), "analysis:\n")
	firstConfig := filepath.Join(f.Dir, "first.yaml")
	if err := os.WriteFile(firstConfig, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExit(t, runDrover(t, "deploy", "-c", firstConfig, "--release", writeRelease(t, f, "1.0.0", true)), 0)
	// Ten requests a second per host: an error ratio over 3s rests on
	// about thirty requests.
	pf.stopLoad = promfleet.Load(urls, 100*time.Millisecond)
	t.Cleanup(func() {
		sent, failed := pf.stopLoad()
		t.Logf("load: %d requests, %d failed to connect", sent, failed)
	})
	if err := prom.WaitScraped(ctx, hosts); err != nil {
		t.Fatal(err)
	}
	// Rates need two scrapes with traffic in between.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for {
		got, err := prom.Query(wctx, `sum by (host) (rate(hello_http_requests_total[3s])) > 0`)
		if err == nil && len(got) == analysisHosts {
			break
		}
		select {
		case <-wctx.Done():
			t.Fatalf("no request rates for every host: %v %v", got, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return pf
}

// releaseWithErrors writes a release that is healthy by every check but
// answers share of requests to / with 500.
func releaseWithErrors(t *testing.T, f *localfleet.Fleet, version string, share float64) string {
	t.Helper()
	dir := filepath.Join(f.Dir, "src", version)
	if err := hello.WriteReleaseWith(dir, version, hello.ReleaseOptions{ErrorRate: share}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// events parses NDJSON events from a deploy's stdout.
func events(t *testing.T, out string) []drover.Event {
	t.Helper()
	var evs []drover.Event
	for _, l := range strings.Split(out, "\n") {
		var e drover.Event
		if json.Unmarshal([]byte(l), &e) == nil && e.Kind != "" {
			evs = append(evs, e)
		}
	}
	return evs
}

func TestE2ECanaryAnalysis(t *testing.T) {
	t.Parallel()
	f := newPromFleet(t)

	// A healthy release passes every analysis and reaches every host.
	t.Run("HealthyPasses", func(t *testing.T) {
		r := deploy(t, f.Fleet, writeRelease(t, f.Fleet, "2.0.0", true), "--output", "json")
		mustExit(t, r, 0)
		wantServing(t, f.Fleet, "2.0.0", nil)
		// The canary's three analyses pass at its verdict; the last
		// group's two (no baseline is left to compare it with).
		passed := map[string]int{}
		for _, e := range events(t, r.stdout) {
			if e.Kind == drover.EventNotice && strings.HasPrefix(e.Message, "analysis passed: ") {
				passed[e.Group]++
			}
		}
		if passed["canary"] != 3 || passed["default"] != 2 {
			t.Errorf("analysis verdicts by group %v, want canary 3, default 2", passed)
		}
	})

	// A release serving 20% errors passes its host checks (/health and
	// /version are fine) and is stopped at the canary by the metrics; the
	// canary goes back, no other host ever sees it.
	t.Run("TwentyPercentErrorsRolledBack", func(t *testing.T) {
		r := deploy(t, f.Fleet, releaseWithErrors(t, f.Fleet, "3.0.0", 0.2), "--output", "json")
		mustExit(t, r, 1)
		wantServing(t, f.Fleet, "2.0.0", nil)
		var halt string
		for _, e := range events(t, r.stdout) {
			if e.Kind == drover.EventHalt {
				halt = e.Message
			}
			if e.Kind == drover.EventStepStart && e.Step == "switch" && e.Host != "h01" && !e.Restoring {
				t.Errorf("%s was switched to the bad release", e.Host)
			}
		}
		// The reason shows the query, the values and the threshold.
		if !strings.Contains(halt, "group canary") || !strings.Contains(halt, "h01=") ||
			!(strings.Contains(halt, "above max 0.05") || strings.Contains(halt, "significantly above baseline")) ||
			!strings.Contains(halt, "hello_http_requests_total") {
			t.Errorf("halt reason %q does not show query, values and threshold", halt)
		}
		t.Logf("halt: %s", halt)
	})

	// Scrapes of the canary stop (Prometheus reloaded without it): its
	// series go stale and vanish, and the canary fails closed instead of
	// passing for lack of bad news.
	t.Run("StaleDataFailsClosed", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f.prom.SetTargets(ctx, f.targets[1:]); err != nil {
			t.Fatal(err)
		}
		defer f.prom.SetTargets(context.Background(), f.targets)
		r := deploy(t, f.Fleet, writeRelease(t, f.Fleet, "4.0.0", true), "--output", "json")
		mustExit(t, r, 1)
		wantServing(t, f.Fleet, "2.0.0", nil)
		var halt string
		for _, e := range events(t, r.stdout) {
			if e.Kind == drover.EventHalt {
				halt = e.Message
			}
		}
		if !strings.Contains(halt, "failed closed") || !strings.Contains(halt, "no data for h01") {
			t.Errorf("halt reason %q: want the canary failing closed for missing data", halt)
		}
	})
}

// startDeploy starts `drover deploy --output json` in the background and
// returns a channel of its events and one of its result.
func startJSONDeploy(t *testing.T, f *localfleet.Fleet, src string) (<-chan drover.Event, <-chan result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, droverBin, "deploy", "-c", f.Config, "--release", src, "--output", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	evs := make(chan drover.Event, 1024)
	done := make(chan result, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer cancel()
		var out strings.Builder
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			var e drover.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind != "" {
				select {
				case evs <- e:
				default:
				}
			}
		}
		close(evs)
		err := cmd.Wait()
		r := result{stdout: out.String(), stderr: stderr.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code = -1
		}
		done <- r
	}()
	// The reader goroutine is the test's: it ends before the test does.
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	return evs, done
}

// waitApproval waits for the deploy to announce its approval gate.
func waitApproval(t *testing.T, evs <-chan drover.Event, done <-chan result) drover.Event {
	t.Helper()
	for e := range evs {
		if e.Kind == drover.EventNotice && strings.Contains(e.Message, "waits for approval") {
			return e
		}
	}
	t.Fatalf("the deploy ended without waiting for approval: %s", <-done)
	return drover.Event{}
}

func waitResult(t *testing.T, evs <-chan drover.Event, done <-chan result) result {
	t.Helper()
	go func() {
		for range evs {
		}
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(2 * time.Minute):
		t.Fatal("the deploy did not end")
		return result{}
	}
}

// A manual approval gate holds the deploy after the canary — without a
// terminal it waits, that is its point — until `drover approve` runs in a
// second process; `drover abort` from a second process rolls back.
func TestE2EApproveFromSecondProcess(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: analysisHosts, Groups: `groups:
  - name: canary
    hosts: [h01]
    approve: manual
    approve_timeout: 2m
  - name: default
    hosts: ["h*"]
    batch: 3
`})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)

	// Nothing waits yet: approve and abort say so, exit 2.
	r := runDrover(t, "approve", "-c", f.Config)
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "no deploy of hello is waiting for approval") {
		t.Errorf("approve with nothing waiting: %s", r)
	}
	mustExit(t, runDrover(t, "abort", "-c", f.Config), 2)

	evs, done := startJSONDeploy(t, f, writeRelease(t, f, "1.0.0", true))
	e := waitApproval(t, evs, done)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, _ := f.Version(ctx, "h02"); v != "" {
		t.Fatalf("h02 serves %q before the approval", v)
	}
	r = runDrover(t, "approve", "-c", f.Config, "-m", "looks good")
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "approved deploy "+e.Deploy+" at group canary") {
		t.Errorf("approve said: %s", r)
	}
	mustExit(t, waitResult(t, evs, done), 0)
	wantServing(t, f, "1.0.0", nil)

	// Abort from a second process while the gate waits: everything the
	// deploy switched (the canary) goes back.
	evs, done = startJSONDeploy(t, f, writeRelease(t, f, "2.0.0", true))
	e = waitApproval(t, evs, done)
	r = runDrover(t, "abort", e.Deploy, "-c", f.Config, "-m", "not today")
	mustExit(t, r, 0)
	res := waitResult(t, evs, done)
	mustExit(t, res, 1)
	if !strings.Contains(res.stdout, "not today") {
		t.Errorf("the abort's reason is not in the deploy's output:\n%s", res.stdout)
	}
	wantServing(t, f, "1.0.0", nil)

	// The deploy is over: approving it now is refused, exit 2.
	r = runDrover(t, "approve", e.Deploy, "-c", f.Config)
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "already finished") {
		t.Errorf("approve of a finished deploy: %s", r)
	}
}
