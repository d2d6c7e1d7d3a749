package main

// End-to-end tests of the audit trail against a real SQLite file: the real
// binary deploying local fleets while other processes and goroutines read
// the same database, a deploy killed with SIGKILL, stragglers on a mixed
// fleet, environments compared, webhooks received by a real HTTP server in
// the test, and the structured log.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/internal/localfleet"
	"drover/notify"
	"drover/store/sqlite"
)

func newFleetWith(t *testing.T, hosts int, extra string) *localfleet.Fleet {
	t.Helper()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: hosts, Groups: e2eGroups, ExtraYAML: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// historyRows runs `drover history --json` and decodes it.
func historyRows(t *testing.T, f *localfleet.Fleet, args ...string) []historyRow {
	t.Helper()
	r := runDrover(t, append([]string{"history", "-c", f.Config, "--json", "-n", "0"}, args...)...)
	mustExit(t, r, 0)
	var rows []historyRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	return rows
}

// startDeploy starts a deploy with --output json and returns the command
// and a channel of its events; the channel closes at the end of output.
func startDeploy(t *testing.T, f *localfleet.Fleet, src string, extra ...string) (*exec.Cmd, <-chan drover.Event) {
	t.Helper()
	cmd := exec.Command(droverBin, append([]string{"deploy", "-c", f.Config, "--release", src, "--output", "json"}, extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	events := make(chan drover.Event, 1024)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e drover.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind != "" {
				events <- e
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	return cmd, events
}

// TestHistorySqliteReadersWhileDeploying: the default store is SQLite in
// state_dir/drover.db; while a deploy writes it, `drover history` and
// `drover show` in other processes and a reader on a separate database
// handle in this one all succeed, and see the deploy grow.
func TestHistorySqliteReadersWhileDeploying(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 6)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true), "-m", "first rollout"), 0)
	db := filepath.Join(f.StateDir, sqlite.FileName)
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("the default store did not write %s: %v", db, err)
	}
	if _, err := os.Stat(filepath.Join(f.StateDir, "hello")); err == nil {
		t.Errorf("the file store's layout appeared next to drover.db")
	}

	src := writeRelease(t, f, "2.0.0", true)
	cmd, events := startDeploy(t, f, src, "-m", "second rollout")
	var id string
	for e := range events {
		if e.Kind == drover.EventDeployStart {
			id = e.Deploy
			break
		}
	}
	if id == "" {
		t.Fatal("the deploy reported no deploy_start")
	}

	// A reader on a separate handle, as a dashboard would have.
	rd, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	stop := make(chan struct{})
	var reads atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		seen := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			j, err := rd.Journal(ctx, id)
			if err != nil {
				t.Errorf("Journal while the deploy writes: %v", err)
				return
			}
			if len(j) < seen {
				t.Errorf("journal shrank from %d to %d", seen, len(j))
				return
			}
			seen = len(j)
			if _, err := rd.Steps(ctx, drover.StepQuery{Key: "hello", Host: "h03"}); err != nil {
				t.Errorf("Steps while the deploy writes: %v", err)
				return
			}
			reads.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Other processes read while it runs.
	running, cliReads := false, 0
	for e := range events {
		if e.Kind != drover.EventStepDone || cliReads >= 3 {
			continue
		}
		rows := historyRows(t, f)
		if len(rows) != 2 || rows[0].ID != id {
			t.Fatalf("history while deploying: %+v", rows)
		}
		if rows[0].Status == statusRunning {
			running = true
		}
		r := runDrover(t, "show", "-c", f.Config, id)
		mustExit(t, r, 0)
		if !strings.Contains(r.stdout, "second rollout") {
			t.Errorf("show while deploying lacks the message:\n%s", r.stdout)
		}
		cliReads++
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	close(stop)
	wg.Wait()
	if cliReads == 0 || reads.Load() == 0 {
		t.Fatalf("no reads while deploying (cli %d, handle %d)", cliReads, reads.Load())
	}
	if !running {
		t.Errorf("history never showed the deploy as running while it ran")
	}
	wantServing(t, f, "2.0.0", nil)

	// History survives the processes that wrote it.
	rows := historyRows(t, f)
	if len(rows) != 2 {
		t.Fatalf("history after: %+v", rows)
	}
	if r := rows[0]; r.ID != id || r.Status != drover.OutcomeSucceeded || r.Message != "second rollout" || r.Version != "2.0.0" || r.Duration <= 0 || r.User == "" || r.Machine == "" || len(r.Hosts) != 6 {
		t.Errorf("history row %+v", r)
	}
	if rows[1].Message != "first rollout" || rows[1].Hosts[0].Before.Current != "" || rows[0].Hosts[0].Before.Version != "1.0.0" {
		t.Errorf("history keeps messages and before-snapshots: %+v", rows)
	}

	// show: a timeline per host with every step's outcome and duration.
	r := runDrover(t, "show", "-c", f.Config, id, "--json")
	mustExit(t, r, 0)
	var v deployView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Hosts) != 6 || v.Status != drover.OutcomeSucceeded {
		t.Fatalf("show: %+v", v)
	}
	for _, h := range v.Hosts {
		var steps []string
		for _, s := range h.Steps {
			steps = append(steps, s.Step)
			if s.Outcome != "ok" || s.Finished.Before(s.Started) || s.Elapsed <= 0 {
				t.Errorf("%s step %+v", h.Name, s)
			}
		}
		for _, want := range []string{"stage", "switch", "restart", "check"} {
			if !slices.Contains(steps, want) {
				t.Errorf("%s timeline %v lacks %s", h.Name, steps, want)
			}
		}
	}
	r = runDrover(t, "show", "-c", f.Config, id)
	mustExit(t, r, 0)
	for _, want := range []string{"deploy " + id, "second rollout", "status    succeeded", "h06 [default]  before: 1.0.0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runDrover(t, "show", "-c", f.Config, "d-nope")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "no deploy d-nope") || !strings.Contains(r.stderr, "drover history") {
		t.Errorf("show of an unknown id: %s", r)
	}

	// log: filters by host and step; --level error finds nothing here.
	r = runDrover(t, "log", "-c", f.Config, "--host", "h02", "--step", "check", "--json")
	mustExit(t, r, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 { // start and done, in each of the two deploys
		t.Fatalf("log --host h02 --step check: %d lines:\n%s", len(lines), r.stdout)
	}
	for i, line := range lines {
		var s drover.StepRecord
		if err := json.Unmarshal([]byte(line), &s); err != nil || s.Host != "h02" || s.Step != "check" {
			t.Errorf("log line %q: %+v %v", line, s, err)
		}
		if i%2 == 1 && (s.Phase != "done" || s.Elapsed <= 0) {
			t.Errorf("done line without its duration: %+v", s)
		}
	}
	r = runDrover(t, "log", "-c", f.Config, "--level", "error")
	mustExit(t, r, 0)
	if strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
		t.Errorf("log --level error on clean deploys:\n%s", r.stdout)
	}
	mustExit(t, runDrover(t, "log", "-c", f.Config, "--level", "debug"), 2)
	mustExit(t, runDrover(t, "history", "-c", f.Config, "--since", "last tuesday"), 2)
	if rows := historyRows(t, f, "--since", "1h", "--host", "h04"); len(rows) != 2 {
		t.Errorf("history --since 1h --host h04: %d rows", len(rows))
	}
}

// TestHistoryKilledDeployIsInterruptedThenResumed: a deploy killed with
// SIGKILL half-way shows as interrupted (not running) in `drover history`
// and `drover show`; `drover resume` puts the fleet back and records it,
// and the next deploy succeeds.
func TestHistoryKilledDeployIsInterruptedThenResumed(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 6)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	v2 := writeRelease(t, f, "2.0.0", true)
	cmd, events := startDeploy(t, f, v2)
	var id string
	killed := false
	for e := range events {
		if e.Kind == drover.EventDeployStart {
			id = e.Deploy
		}
		// Once the canary is done and a default host has switched.
		if e.Kind == drover.EventStepDone && e.Step == "switch" && e.Host != "h01" {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatal("the deploy finished before it could be killed")
	}

	rows := historyRows(t, f)
	if len(rows) != 2 || rows[0].ID != id || rows[0].Status != statusInterrupted || rows[0].Outcome != "" || !rows[0].Finished.IsZero() {
		t.Fatalf("history after kill -9: %+v", rows)
	}
	r := runDrover(t, "history", "-c", f.Config)
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "interrupted") {
		t.Errorf("history text after kill -9:\n%s", r.stdout)
	}
	r = runDrover(t, "show", "-c", f.Config, id)
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "status    interrupted") {
		t.Errorf("show after kill -9:\n%s", r.stdout)
	}

	r = runDrover(t, "resume", "-c", f.Config)
	mustExit(t, r, 0)
	wantServing(t, f, "1.0.0", nil)
	rows = historyRows(t, f)
	if len(rows) != 3 {
		t.Fatalf("history after resume: %+v", rows)
	}
	rec, killedRow := rows[0], rows[1]
	if rec.Kind != drover.KindRecover || rec.Status != drover.OutcomeSucceeded {
		t.Errorf("the recovery is not recorded: %+v", rec)
	}
	if killedRow.ID != id || killedRow.Status != drover.OutcomeInterrupted || !strings.Contains(killedRow.Summary, "recovered by "+rec.ID) {
		t.Errorf("the killed deploy after resume: %+v", killedRow)
	}
	// The recovery's own timeline names the hosts it restored.
	r = runDrover(t, "log", "-c", f.Config, "--deploy", rec.ID, "--step", "restore", "--json")
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, `"host":"h01"`) {
		t.Errorf("the recovery did not restore the canary:\n%s", r.stdout)
	}

	mustExit(t, deploy(t, f, v2), 0)
	wantServing(t, f, "2.0.0", nil)
	if rows := historyRows(t, f); len(rows) != 4 || rows[0].Status != drover.OutcomeSucceeded {
		t.Errorf("history at the end: %+v", rows)
	}
}

// stragglerJSON runs status --stragglers --json.
func stragglerJSON(t *testing.T, f *localfleet.Fleet, args ...string) stragglerReport {
	t.Helper()
	r := runDrover(t, append([]string{"status", "-c", f.Config, "--stragglers", "--json"}, args...)...)
	mustExit(t, r, 0)
	var rep stragglerReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --stragglers --json: %v\n%s", err, r.stdout)
	}
	return rep
}

func stragglerNames(rep stragglerReport) []string {
	out := []string{}
	for _, h := range rep.Hosts {
		out = append(out, h.Name)
	}
	return out
}

// TestStragglersMixedFleet: v2 deployed with --limit to half the fleet;
// the desired release is v2 (the last successful deploy), so the other
// half are the stragglers — not the upgraded half, as "the most common
// release" would have it.
func TestStragglersMixedFleet(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 6)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	if rep := stragglerJSON(t, f); len(rep.Hosts) != 0 || !strings.HasPrefix(rep.Desired, "1.0.0-") {
		t.Fatalf("stragglers after a full deploy: %+v", rep)
	}
	between := time.Now()
	mustExit(t, deploy(t, f, writeRelease(t, f, "2.0.0", true), "--limit", "h0[1-3]"), 0)
	wantServing(t, f, "2.0.0", map[string]string{"h04": "1.0.0", "h05": "1.0.0", "h06": "1.0.0"})

	rep := stragglerJSON(t, f)
	if !strings.HasPrefix(rep.Desired, "2.0.0-") || !strings.Contains(rep.Basis, "last successful deploy") {
		t.Errorf("desired %q (%s), want the 2.0.0 release", rep.Desired, rep.Basis)
	}
	if got := stragglerNames(rep); !slices.Equal(got, []string{"h04", "h05", "h06"}) {
		t.Errorf("stragglers %v, want h04 h05 h06", got)
	}
	for _, h := range rep.Hosts {
		if h.Version != "1.0.0" || len(h.Reasons) != 1 || !strings.Contains(h.Reasons[0], "not "+rep.Desired) {
			t.Errorf("straggler %+v", h)
		}
	}
	// Not deployed since `between`: the same hosts, each for both reasons.
	rep = stragglerJSON(t, f, "--since", between.Format(time.RFC3339Nano))
	if got := stragglerNames(rep); !slices.Equal(got, []string{"h04", "h05", "h06"}) || len(rep.Hosts[0].Reasons) != 2 {
		t.Errorf("stragglers --since between the deploys: %+v", rep.Hosts)
	}
	// Not deployed since now: everyone.
	rep = stragglerJSON(t, f, "--since", time.Now().Add(time.Second).Format(time.RFC3339Nano))
	if got := stragglerNames(rep); len(got) != 6 {
		t.Errorf("stragglers --since now: %v, want every host", got)
	}
	// Another desired release, by name.
	v1 := ""
	for _, row := range historyRows(t, f) {
		if row.Version == "1.0.0" {
			v1 = row.Release
		}
	}
	if got := stragglerNames(stragglerJSON(t, f, "--release", v1)); !slices.Equal(got, []string{"h01", "h02", "h03"}) {
		t.Errorf("stragglers --release %s: %v, want h01 h02 h03", v1, got)
	}
	r := runDrover(t, "status", "-c", f.Config, "--stragglers")
	mustExit(t, r, 0)
	for _, want := range []string{"desired release 2.0.0-", "h05", "3 of 6 hosts are stragglers"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status --stragglers lacks %q:\n%s", want, r.stdout)
		}
	}
	mustExit(t, runDrover(t, "status", "-c", f.Config, "--since", "1d"), 2)
}

// TestHistoryDiffEnvironments: two environments of one drover.yaml, on
// separate hosts; diff says which groups differ in release and version.
func TestHistoryDiffEnvironments(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 4)
	var extra strings.Builder
	extra.WriteString("environments:\n")
	for env, hosts := range map[string][]localfleet.HostInfo{"staging": f.Hosts[:2], "production": f.Hosts[2:]} {
		fmt.Fprintf(&extra, "  %s:\n    groups: [{name: web, hosts: [\"*\"]}]\n    hosts:\n", env)
		for _, h := range hosts {
			fmt.Fprintf(&extra, "      - {name: %s, address: %q, vars: {port: %d}}\n", h.Name, h.Dir, h.Port)
		}
	}
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Config, append(cfg, extra.String()...), 0o644); err != nil {
		t.Fatal(err)
	}
	v1, v2 := writeRelease(t, f, "1.0.0", true), writeRelease(t, f, "2.0.0", true)
	mustExit(t, deploy(t, f, v1, "--env", "staging"), 0)
	mustExit(t, deploy(t, f, v1, "--env", "production"), 0)
	mustExit(t, deploy(t, f, v2, "--env", "staging"), 0)

	diff := func() envDiff {
		t.Helper()
		r := runDrover(t, "diff", "-c", f.Config, "staging", "production", "--json")
		mustExit(t, r, 0)
		var d envDiff
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
			t.Fatalf("diff --json: %v\n%s", err, r.stdout)
		}
		return d
	}
	d := diff()
	if len(d.Groups) != 1 || d.Groups[0].Group != "web" {
		t.Fatalf("diff groups: %+v", d.Groups)
	}
	g := d.Groups[0]
	if !slices.Contains(g.Differs, "release") || !slices.Contains(g.Differs, "version") || g.A.Versions["2.0.0"] != 2 || g.B.Versions["1.0.0"] != 2 {
		t.Errorf("diff after staging moved to 2.0.0: %+v a %+v b %+v", g, g.A, g.B)
	}
	r := runDrover(t, "diff", "-c", f.Config, "staging", "production")
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "2.0.0×2") || !strings.Contains(r.stdout, "1 of 1 groups differ") {
		t.Errorf("diff text:\n%s", r.stdout)
	}

	mustExit(t, deploy(t, f, v2, "--env", "production"), 0)
	g = diff().Groups[0]
	if slices.Contains(g.Differs, "release") || slices.Contains(g.Differs, "version") {
		t.Errorf("diff after both are on 2.0.0: %+v", g.Differs)
	}
	// Config is rendered per host (each has its own port): four hashes.
	if len(g.A.ConfigHashes)+len(g.B.ConfigHashes) != 4 || !slices.Contains(g.Differs, "config") {
		t.Errorf("config hashes %v %v, differs %v", g.A.ConfigHashes, g.B.ConfigHashes, g.Differs)
	}
	r = runDrover(t, "diff", "-c", f.Config, "staging", "qa")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, `unknown environment "qa"`) {
		t.Errorf("diff with an unknown env: %s", r)
	}
}

// TestHistoryFileStoreStillWorks: store: file keeps the file layout, and
// the history views answer from it by reading its records.
func TestHistoryFileStoreStillWorks(t *testing.T) {
	t.Parallel()
	f := newFleetWith(t, 4, "store: file\n")
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true), "-m", "files"), 0)
	if _, err := os.Stat(filepath.Join(f.StateDir, sqlite.FileName)); err == nil {
		t.Error("store: file wrote drover.db")
	}
	if _, err := os.Stat(filepath.Join(f.StateDir, "hello", "deploys")); err != nil {
		t.Errorf("store: file did not write its layout: %v", err)
	}
	rows := historyRows(t, f, "--host", "h02")
	if len(rows) != 1 || rows[0].Message != "files" || rows[0].Status != drover.OutcomeSucceeded {
		t.Fatalf("history: %+v", rows)
	}
	r := runDrover(t, "log", "-c", f.Config, "--host", "h03", "--step", "switch", "--json")
	mustExit(t, r, 0)
	if n := strings.Count(r.stdout, `"host":"h03"`); n != 2 {
		t.Errorf("log on the file store: %d lines for h03:\n%s", n, r.stdout)
	}
	mustExit(t, runDrover(t, "show", "-c", f.Config, rows[0].ID), 0)
}

// hookReceiver is a webhook endpoint: it fails the first request of every
// event with 500 and records the rest.
type hookReceiver struct {
	mu       sync.Mutex
	attempts map[string]int
	accepted map[string]int
	events   []notify.Payload
	auth     []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts[key]++
	if h.attempts[key] == 1 {
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	var p notify.Payload
	json.Unmarshal(body, &p)
	h.accepted[key]++
	h.events = append(h.events, p)
	h.auth = append(h.auth, r.Header.Get("Authorization"))
}

// TestWebhookReceivesEveryEventOnce: a real HTTP server in the test gets a
// POST for the start and finish of a good deploy and the start, halt,
// rollback and finish of a bad one — each exactly once although the first
// attempt at each failed with 500. The --log-file has every event as a
// JSON line and no secret.
func TestWebhookReceivesEveryEventOnce(t *testing.T) {
	t.Parallel()
	rec := &hookReceiver{attempts: map[string]int{}, accepted: map[string]int{}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	const secret = "tok-s3cret-9f8e"
	withToken := []string{"DROVER_TEST_HOOK_TOKEN=" + secret}
	f := newFleetWith(t, 5, fmt.Sprintf("webhooks:\n  - url: %q\n    headers: {Authorization: \"Bearer ${DROVER_TEST_HOOK_TOKEN}\"}\n", srv.URL+"/drover"))
	logFile := filepath.Join(t.TempDir(), "events.jsonl")

	mustExit(t, runDroverEnv(t, withToken, "deploy", "-c", f.Config, "--release", writeRelease(t, f, "1.0.0", true), "--log-file", logFile), 0)
	// h03 fails its health check past the default group's limit (20% of
	// 4 = 0): halt, and roll back the canary and h02, already switched.
	mustExit(t, runDroverEnv(t, withToken, "deploy", "-c", f.Config, "--release", releaseWithBadHosts(t, f, "2.0.0", "h03"), "--log-file", logFile), 1)
	wantServing(t, f, "1.0.0", nil)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	byDeploy := map[string][]string{}
	var order []string
	for _, p := range rec.events {
		if _, ok := byDeploy[p.Deploy]; !ok {
			order = append(order, p.Deploy)
		}
		byDeploy[p.Deploy] = append(byDeploy[p.Deploy], p.Event)
		if p.Service != "hello" || p.ID == "" {
			t.Errorf("payload %+v", p)
		}
	}
	if len(order) != 2 {
		t.Fatalf("events for %d deploys, want 2: %+v", len(order), rec.events)
	}
	if got := strings.Join(byDeploy[order[0]], " "); got != "start finish" {
		t.Errorf("good deploy sent %q, want start finish", got)
	}
	if got := strings.Join(byDeploy[order[1]], " "); got != "start halt rollback finish" {
		t.Errorf("bad deploy sent %q, want start halt rollback finish", got)
	}
	for key, n := range rec.accepted {
		if n != 1 || rec.attempts[key] != 2 {
			t.Errorf("event %s accepted %d times in %d attempts; want once, after one retry", key, n, rec.attempts[key])
		}
	}
	for _, a := range rec.auth {
		if a != "Bearer "+secret {
			t.Errorf("Authorization %q", a)
		}
	}

	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), secret) {
		t.Error("the log file holds the webhook token")
	}
	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		kinds[fmt.Sprint(m["msg"])]++
		if m["service"] != "hello" || m["time"] == nil || m["level"] == nil || m["deploy"] == "" {
			t.Errorf("log line %v", m)
		}
	}
	for _, k := range []string{drover.EventDeployStart, drover.EventStepDone, drover.EventHalt, drover.EventRollback, drover.EventVerdict} {
		if kinds[k] == 0 {
			t.Errorf("the log has no %s line: %v", k, kinds)
		}
	}
	if st, _ := os.Stat(logFile); st.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, want 0600", st.Mode().Perm())
	}

	// The failed canary's check is in the journal with its output tail.
	r := runDrover(t, "log", "-c", f.Config, "--level", "error", "--json")
	mustExit(t, r, 0)
	var s drover.StepRecord
	if err := json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &s); err != nil || s.Host != "h03" || s.Step != "check" || s.Output == "" {
		t.Errorf("log --level error: %+v %v\n%s", s, err, r.stdout)
	}

	// A header naming an unset variable is bad input: exit 2, nothing sent.
	before := len(rec.events)
	rec.mu.Unlock()
	// (Only the deploys above were given the token.)
	r = deploy(t, f, writeRelease(t, f, "3.0.0", true))
	rec.mu.Lock()
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "DROVER_TEST_HOOK_TOKEN") || len(rec.events) != before {
		t.Errorf("unset token: %s; %d new events", r, len(rec.events)-before)
	}
}

// TestHistoryAskMessage: on a terminal, deploy asks for a message and
// records it; with ask_message: false it does not ask.
func TestHistoryAskMessage(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	src := writeRelease(t, f, "1.0.0", true)
	cmd := fmt.Sprintf("%s deploy -c %s --release %s; echo \"[drover exited $?]\"; exec sleep 600", shq(droverBin), shq(f.Config), shq(src))
	env := []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "HOME=" + os.Getenv("HOME")}
	tm := newTmux(t, 120, 30, env, cmd)
	tm.sample(time.Minute, func(sc string) bool { return strings.Contains(sc, "Deploy message") })
	if out, err := exec.Command(tm.bin, "-S", tm.sock, "send-keys", "-t", "drover", "fix login timeouts", "Enter").CombinedOutput(); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	final := tm.sample(2*time.Minute, func(sc string) bool { return strings.Contains(sc, "[drover exited") })
	if last := final[len(final)-1]; !strings.Contains(last, "[drover exited 0]") {
		t.Fatalf("deploy on a terminal:\n%s", last)
	}
	if rows := historyRows(t, f); len(rows) != 1 || rows[0].Message != "fix login timeouts" {
		t.Errorf("the typed message was not recorded: %+v", rows)
	}

	cfg, _ := os.ReadFile(f.Config)
	if err := os.WriteFile(f.Config, append(cfg, "ask_message: false\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	src2 := writeRelease(t, f, "2.0.0", true)
	cmd = fmt.Sprintf("%s deploy -c %s --release %s; echo \"[drover exited $?]\"; exec sleep 600", shq(droverBin), shq(f.Config), shq(src2))
	tm2 := newTmux(t, 120, 30, env, cmd)
	screens := tm2.sample(2*time.Minute, func(sc string) bool { return strings.Contains(sc, "[drover exited") })
	for _, sc := range screens {
		if strings.Contains(sc, "Deploy message") {
			t.Fatalf("asked for a message with ask_message: false:\n%s", sc)
		}
	}
	if last := screens[len(screens)-1]; !strings.Contains(last, "[drover exited 0]") {
		t.Fatalf("deploy with ask_message false:\n%s", last)
	}
}

func TestHistoryParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"90m", now.Add(-90 * time.Minute)},
		{"36h", now.Add(-36 * time.Hour)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"2026-11-01T08:00:00Z", time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.Local)},
		{"2026-11-01 08:30", time.Date(2026, 11, 1, 8, 30, 0, 0, time.Local)},
	} {
		got, err := parseSince(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"yesterday", "7 days", "-5m", "1.5d", "2026-13-01"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q): no error", bad)
		}
	}
}

// A deploy that never finished is running only while the lock's recorded
// holder is that deploy and its process lives on this machine.
func TestHistoryDeployStatus(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	open := drover.DeployRecord{ID: "d-1"}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		d      drover.DeployRecord
		holder *drover.LockOwner
		err    error
		want   string
	}{
		{"finished", drover.DeployRecord{ID: "d-1", Finished: time.Now(), Outcome: drover.OutcomeRolledBack}, nil, nil, drover.OutcomeRolledBack},
		{"no holder", open, nil, nil, statusInterrupted},
		{"holder is another deploy", open, &drover.LockOwner{PID: os.Getpid(), Machine: host, DeployID: "d-2"}, nil, statusInterrupted},
		{"live holder", open, &drover.LockOwner{PID: os.Getpid(), Machine: host, DeployID: "d-1"}, nil, statusRunning},
		{"dead holder", open, &drover.LockOwner{PID: dead.ProcessState.Pid(), Machine: host, DeployID: "d-1"}, nil, statusInterrupted},
		{"other machine", open, &drover.LockOwner{PID: 1, Machine: host + "-elsewhere", DeployID: "d-1"}, nil, statusUnknown},
		{"store cannot tell", open, nil, errNoLockHolder, statusUnknown},
	} {
		if got := deployStatus(tt.d, tt.holder, tt.err); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
