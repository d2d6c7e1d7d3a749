package main

// The crash matrix: drover killed (SIGKILL, through the test-only crash
// point DROVER_CRASH_AFTER_JOURNAL_WRITES, see crash.go) right after each
// durable journal write of five scenarios, then `drover resume`; after
// every one, every host must be whole — state.json, the current link, the
// service actually answering and, with rotation, HAProxy — on the release
// it had before the dead run. A run killed right after its last write
// (its Finish: the journal says it completed) is not resumed, and its
// hosts must be whole on what the run finished with.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/internal/localfleet"
	"drover/rotation"
)

// crashGroups: a canary, then one host at a time, halting at the first
// failure; stage_parallelism 1 keeps the order of journal writes (and so
// what each crash point interrupts) the same from run to run.
const crashGroups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
  - name: default
    hosts: ["h*"]
    batch: 1
    failure_limit: 0
`

// crashFleet is one scenario's fleet and how to look at a host.
type crashFleet struct {
	f *localfleet.Fleet
	// served is what host's live service answers on /version.
	served func(host string, st drover.HostState) (string, error)
	// inRotation says whether HAProxy has host's live server ready and
	// UP; nil without rotation.
	inRotation func(host string, st drover.HostState) error
	// between runs before each crash run (blue/green: finalize), given
	// the hosts' states before the first.
	between func(t *testing.T, before map[string]drover.HostState)
}

// run is one drover command with the crash point at n (0: none). killed
// is true when the crash point fired.
func (cf *crashFleet) run(t *testing.T, n int, count string, args ...string) (r result, killed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, args...)
	cmd.Env = append(os.Environ(), crashEnv+"="+strconv.Itoa(n))
	if count != "" {
		cmd.Env = append(cmd.Env, countEnv+"="+count)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r = result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return r, true
		}
	} else if err != nil {
		t.Fatalf("drover %v: %v", args, err)
	}
	return r, false
}

func (cf *crashFleet) states(t *testing.T) map[string]drover.HostState {
	t.Helper()
	out := map[string]drover.HostState{}
	for _, h := range cf.f.Hosts {
		out[h.Name] = readHostState(t, cf.f, h.Name)
	}
	return out
}

func readHostState(t *testing.T, f *localfleet.Fleet, host string) drover.HostState {
	t.Helper()
	var st drover.HostState
	b, err := os.ReadFile(filepath.Join(f.DeployRoot(host), drover.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// whole returns what is wrong with host h against want (its Current and
// Previous; with versionOnly, its Version): state.json, the current link,
// the running service and HAProxy must all agree.
func (cf *crashFleet) whole(t *testing.T, host string, want drover.HostState, versionOnly bool) []string {
	t.Helper()
	var bad []string
	st := readHostState(t, cf.f, host)
	if versionOnly {
		if st.Version != want.Version {
			bad = append(bad, fmt.Sprintf("state.json on %s, want %s", st.Version, want.Version))
		}
	} else if st.Current != want.Current || st.Previous != want.Previous || st.Live != want.Live {
		bad = append(bad, fmt.Sprintf("state.json current %s previous %s live %q, want %s, %s, %q", st.Current, st.Previous, st.Live, want.Current, want.Previous, want.Live))
	}
	links := []string{"current"}
	if st.Live != "" {
		links = append(links, st.Live) // the live colour's link
	}
	for _, l := range links {
		link, err := os.Readlink(filepath.Join(cf.f.DeployRoot(host), l))
		if err != nil || filepath.Base(link) != st.Current {
			bad = append(bad, fmt.Sprintf("%s -> %q (%v), state.json says %s", l, link, err, st.Current))
		}
	}
	if v, err := cf.served(host, st); err != nil || v != st.Version {
		bad = append(bad, fmt.Sprintf("serves %q (%v), state.json says %s", v, err, st.Version))
	}
	if cf.inRotation != nil {
		if err := cf.inRotation(host, st); err != nil {
			bad = append(bad, err.Error())
		}
	}
	return bad
}

// crashScenario is one row of the matrix.
type crashScenario struct {
	name string
	// setup makes the fleet and brings it to the state before the run.
	setup func(t *testing.T) *crashFleet
	// args is the command that is crashed.
	args func(cf *crashFleet) []string
	// first, when set, is crashed at a fixed point before args runs:
	// args (a resume) is then the command crashed at every point.
	first func(cf *crashFleet) []string
	// firstAt is first's crash point.
	firstAt int
	// fleets is how many fleets of the scenario take crash points off
	// one queue at once (see crashQueue).
	fleets int
	// forward: the dead run is a rollback, and recovery finishes it on
	// the hosts it touched (their journaled snapshot is the rollback's
	// target), so such a host is whole on its previous release.
	forward bool
}

// crashMatrixCount gathers the figures of every scenario for the log line.
var crashMatrix struct {
	sync.Mutex
	points, boundaries, scenarios, inconsistent int
	rows                                        []string
}

// TestE2ECrashMatrix crashes every journal write of every scenario. A
// crash point costs seconds of waiting (restart hooks, checks, HAProxy
// health checks), little CPU, so the scenarios run at once, each on
// several fleets that share its queue of crash points. They run as
// concurrent subtests rather than t.Parallel ones, which -parallel would
// count against the package's other tests. The test itself is parallel to
// them; being the longest of the package, make test runs it in a go test
// of its own, from the start (Makefile).
func TestE2ECrashMatrix(t *testing.T) {
	t.Parallel()
	scenarios := []crashScenario{
		{name: "rolling deploy with canary", setup: crashRolling(true, false, false), args: deployArgs("2.0.0"), fleets: 3},
		{name: "halt past the limit, crash in rollback", setup: crashRolling(true, true, false), args: deployArgs("2.0.0"), fleets: 3},
		{name: "blue/green deploy", setup: crashBlueGreen, args: deployArgs("2.0.0"), fleets: 2},
		{name: "drover rollback", setup: crashRolling(true, false, true), forward: true, fleets: 3, args: func(cf *crashFleet) []string {
			return []string{"rollback", "-c", cf.f.Config, "--yes"}
		}},
		{name: "second crash during resume", setup: crashRolling(true, false, false), first: deployArgs("2.0.0"), firstAt: 8, fleets: 2,
			args: func(cf *crashFleet) []string { return []string{"resume", "-c", cf.f.Config} }},
	}
	began := time.Now()
	t.Run("scenarios", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, sc := range scenarios {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
					runCrashScenario(t, sc)
				})
			}()
		}
		wg.Wait()
	})
	crashMatrix.Lock()
	defer crashMatrix.Unlock()
	for _, r := range crashMatrix.rows {
		t.Log(r)
	}
	t.Logf("crash matrix: %d crash points (of %d journal writes) over %d scenarios, %d hosts inconsistent, in %s", crashMatrix.points, crashMatrix.boundaries, crashMatrix.scenarios, crashMatrix.inconsistent, time.Since(began).Round(time.Second))
}

func deployArgs(version string) func(cf *crashFleet) []string {
	return func(cf *crashFleet) []string {
		return []string{"deploy", "-c", cf.f.Config, "--release", filepath.Join(cf.f.Dir, "src", version)}
	}
}

// crashQueue hands a scenario's crash points 1, 2, 3, ... to its fleets
// until one of them finds the run's last journal write: the crash point
// that is its Finish, or one past it (the run is not killed, and counts
// its writes).
type crashQueue struct {
	mu      sync.Mutex
	next    int
	last    int // 0 until known
	crashed map[int]bool
}

// take returns the next crash point, false once they are all handed out.
func (q *crashQueue) take() (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.last > 0 && q.next >= q.last {
		return 0, false
	}
	q.next++
	return q.next, true
}

func (q *crashQueue) done(n int, killed bool, last int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if killed {
		q.crashed[n] = true
	}
	if last > 0 && (q.last == 0 || last < q.last) {
		q.last = last
	}
}

func runCrashScenario(t *testing.T, sc crashScenario) {
	q := &crashQueue{crashed: map[int]bool{}}
	var mu sync.Mutex
	inconsistent := 0
	began := time.Now()
	var wg sync.WaitGroup
	for i := range max(sc.fleets, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(fmt.Sprintf("fleet%d", i+1), func(t *testing.T) {
				bad := runCrashFleet(t, sc, q, began)
				mu.Lock()
				inconsistent += bad
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Every boundary, none skipped: the fleets between them crashed the
	// run after each of its journal writes.
	for n := 1; n <= q.last; n++ {
		if !q.crashed[n] {
			t.Errorf("no crash after journal write %d of %d", n, q.last)
		}
	}
	points := len(q.crashed)
	crashMatrix.Lock()
	defer crashMatrix.Unlock()
	crashMatrix.points += points
	crashMatrix.boundaries += q.last
	crashMatrix.scenarios++
	crashMatrix.inconsistent += inconsistent
	crashMatrix.rows = append(crashMatrix.rows, fmt.Sprintf("%s: %d journal writes, crashed after every one (%d crash points on %d fleets, %s), %d hosts inconsistent", sc.name, q.last, points, max(sc.fleets, 1), time.Since(began).Round(time.Second), inconsistent))
}

// runCrashFleet sets up one fleet of sc and crashes it at the points it
// takes off q, each followed by `drover resume` and the check of every
// host; it returns how many hosts were found not whole.
func runCrashFleet(t *testing.T, sc crashScenario, q *crashQueue, began time.Time) int {
	cf := sc.setup(t)
	before := cf.states(t)
	inconsistent := 0
	check := func(n int, want map[string]drover.HostState, versionOnly bool, what string) {
		for _, h := range cf.f.Hosts {
			bad := cf.whole(t, h.Name, want[h.Name], versionOnly)
			if len(bad) > 0 && sc.forward && !versionOnly {
				// Or on the rollback's target.
				b := want[h.Name]
				if st := readHostState(t, cf.f, h.Name); st.Current == b.Previous {
					bad = cf.whole(t, h.Name, st, false)
				}
			}
			if len(bad) > 0 {
				inconsistent++
				t.Errorf("crash after write %d (%s): %s not whole: %s", n, what, h.Name, strings.Join(bad, "; "))
			}
		}
	}
	countPath := filepath.Join(t.TempDir(), "writes")
	for {
		n, ok := q.take()
		if !ok {
			return inconsistent
		}
		if cf.between != nil {
			cf.between(t, before)
		}
		args := sc.args(cf)
		if sc.first != nil {
			if _, killed := cf.run(t, sc.firstAt, "", sc.first(cf)...); !killed {
				t.Fatalf("the first run did not reach its crash point %d", sc.firstAt)
			}
		}
		os.Remove(countPath)
		r, killed := cf.run(t, n, countPath, args...)
		if !killed {
			// No crash point left: this is the uncrashed run, which
			// counted the writes.
			b, err := os.ReadFile(countPath)
			if err != nil {
				t.Fatalf("the uncrashed run did not count its writes (%v): %s", err, r)
			}
			last, _ := strconv.Atoi(string(b))
			if last == 0 {
				t.Fatalf("drover %v never wrote its journal: %s", args, r)
			}
			q.done(n, false, last)
			if sc.first != nil {
				check(n, before, false, "uncrashed resume")
			}
			return inconsistent
		}
		q.done(n, true, 0)
		t.Logf("crash point %d after %s", n, time.Since(began).Round(time.Millisecond))
		rr, _ := cf.run(t, 0, "", "resume", "-c", cf.f.Config)
		if strings.Contains(rr.stdout+rr.stderr, "nothing to resume") {
			// The journal says the run completed: its last write. Its
			// hosts stay on what it finished with; it is not redone.
			q.done(n, true, n)
			if sc.first != nil {
				check(n, before, false, "crashed resume had finished")
			} else {
				final := cf.finalWant(t, sc)
				check(n, final, true, "run had finished")
			}
			return inconsistent
		}
		was := inconsistent
		check(n, before, false, "resumed")
		if inconsistent > was {
			t.Logf("resume after crash point %d:\n%s", n, rr)
		}
		if inconsistent > 3 {
			t.FailNow()
		}
	}
}

// finalWant is what a completed run leaves, by version.
func (cf *crashFleet) finalWant(t *testing.T, sc crashScenario) map[string]drover.HostState {
	want := map[string]drover.HostState{}
	v := "2.0.0"
	if strings.HasPrefix(sc.name, "halt") || strings.HasPrefix(sc.name, "drover rollback") {
		v = "1.0.0"
	}
	for _, h := range cf.f.Hosts {
		want[h.Name] = drover.HostState{Version: v}
	}
	return want
}

// crashRolling: three hosts of the sample service, on 1.0.0 — or, for
// `drover rollback`, on 2.0.0 after 1.0.0. rotate puts HAProxy in front;
// badH02 makes 2.0.0 fail its health check on h02 (past the limit).
func crashRolling(rotate, badH02, onV2 bool) func(t *testing.T) *crashFleet {
	return func(t *testing.T) *crashFleet {
		var f *localfleet.Fleet
		cf := &crashFleet{}
		if rotate {
			lb := newLBFleet(t, 3, crashGroups, "")
			f = lb.Fleet
			cf.inRotation = func(host string, st drover.HostState) error {
				return readyAndUp(lb.proxy.Servers, host)
			}
		} else {
			var err error
			f, err = localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 3, Groups: crashGroups})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(f.Stop)
		}
		cf.f = f
		cf.served = func(host string, _ drover.HostState) (string, error) {
			return f.Version(context.Background(), host)
		}
		editConfig(t, f.Config, func(y string) string {
			// stage_parallelism 1: the same order of writes every run.
			// A 2s health check: the matrix meets the bad release once
			// per crash point; localfleet's 3s each would be a minute
			// more. The port check before it keeps its 10s, how long a
			// service may take to start on a busy machine.
			return "stage_parallelism: 1\n" + shortenCheck(t, y, "health", "2s")
		})
		v1 := writeRelease(t, f, "1.0.0", true)
		if badH02 {
			releaseWithBadHosts(t, f, "2.0.0", "h02")
		} else {
			writeRelease(t, f, "2.0.0", true)
		}
		mustExit(t, deploy(t, f, v1), 0)
		if onV2 {
			v2 := filepath.Join(f.Dir, "src", "2.0.0")
			mustExit(t, deploy(t, f, v2), 0)
			// Recovery finishes a dead rollback on the hosts it
			// touched: put them back on 2.0.0 (after 1.0.0) before
			// the next crash.
			// Only when it did: a full deploy per crash point was
			// most of this scenario's time.
			cf.between = func(t *testing.T, before map[string]drover.HostState) {
				for h, st := range cf.states(t) {
					b := before[h]
					if st.Current != b.Current || st.Previous != b.Previous || st.Version != b.Version {
						mustExit(t, deploy(t, f, v2), 0)
						return
					}
				}
			}
		}
		return cf
	}
}

// shortenCheck sets the timeout of localfleet's check called name in
// drover.yaml text y.
func shortenCheck(t *testing.T, y, name, timeout string) string {
	t.Helper()
	head, check, ok := strings.Cut(y, "  - name: "+name+"\n")
	if !ok {
		t.Fatalf("drover.yaml has no check %s:\n%s", name, y)
	}
	i := strings.Index(check, "timeout: ")
	if i < 0 || strings.Contains(check[:i], "- name:") {
		t.Fatalf("check %s has no timeout:\n%s", name, y)
	}
	end := i + strings.IndexByte(check[i:], '\n')
	return head + "  - name: " + name + "\n" + check[:i] + "timeout: " + timeout + check[end:]
}

func editConfig(t *testing.T, config string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
}

// crashBlueGreen: three blue/green hosts behind HAProxy, blue live on
// 1.0.0; finalize runs before each crash run (a deploy refuses to start
// while the old colour is kept running).
func crashBlueGreen(t *testing.T) *crashFleet {
	bf := newBGFleetN(t, 3)
	editConfig(t, bf.Config, func(y string) string {
		return "stage_parallelism: 1\n" + strings.Replace(y, "batch: 2", "batch: 1", 1)
	})
	v1 := bf.release(t, "1.0.0", true)
	bf.release(t, "2.0.0", true)
	mustExit(t, deploy(t, bf.Fleet, v1), 0)
	port := func(host, color string) int {
		if color == "green" {
			return bf.green[host]
		}
		h, _ := bf.Host(host)
		return h.Port
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return &crashFleet{
		f: bf.Fleet,
		served: func(host string, st drover.HostState) (string, error) {
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/version", port(host, st.Live)))
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return strings.TrimSpace(string(body)), err
		},
		inRotation: func(host string, st drover.HostState) error {
			return readyAndUp(bf.proxy.Servers, host+"-"+st.Live)
		},
		between: func(t *testing.T, _ map[string]drover.HostState) {
			if r := runDrover(t, "finalize", "-c", bf.Config, "--yes"); r.code != 0 {
				t.Logf("finalize: %s", r)
			}
		},
	}
}

// readyAndUp says what is wrong with HAProxy's view of server.
func readyAndUp(servers func(context.Context) ([]rotation.ServerStat, error), server string) error {
	srvs, err := servers(context.Background())
	if err != nil {
		return err
	}
	for _, s := range srvs {
		if s.Server == server {
			if s.Admin != rotation.StateReady || !s.Up() {
				return fmt.Errorf("HAProxy %s: admin %s, status %s", server, s.Admin, s.Status)
			}
			return nil
		}
	}
	return fmt.Errorf("HAProxy has no server %s", server)
}
