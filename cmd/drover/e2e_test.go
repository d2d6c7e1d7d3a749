package main

// End-to-end tests: the real drover binary, built once in TestMain, driving
// a local fleet of real sample-service processes (one per host, each on its
// own loopback port). Every assertion is about what the fleet actually
// serves and what is on disk, not about what drover says it did.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover/hostops"
	"drover/internal/localfleet"
)

var droverBin string

func TestMain(m *testing.M) {
	dir, cleanup, err := e2eBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The sample service's scripts call `drover sample-service`.
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	shortenRaceExitSleep()
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// e2eBinaryEnv names a race-built drover that `make test` builds once for
// both of its `go test` runs of this package (Makefile): linking it in
// each TestMain was some 10 s at the start of each, on the critical path.
// It must be called drover (the sample service runs `drover
// sample-service` from PATH). Unset, TestMain builds its own.
const e2eBinaryEnv = "DROVER_E2E_BINARY"

// e2eBinary sets droverBin and returns its directory and what removes
// what TestMain made.
func e2eBinary() (string, func(), error) {
	if p := os.Getenv(e2eBinaryEnv); p != "" {
		if !filepath.IsAbs(p) || filepath.Base(p) != "drover" {
			return "", nil, fmt.Errorf("%s=%s: want the absolute path of a file named drover (the sample service runs `drover` from PATH)", e2eBinaryEnv, p)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			return "", nil, fmt.Errorf("%s=%s: not an executable (%v); unset it and the tests build their own", e2eBinaryEnv, p, err)
		}
		droverBin = p
		return filepath.Dir(p), func() {}, nil
	}
	dir, err := os.MkdirTemp("", "drover-e2e-bin-")
	if err != nil {
		return "", nil, err
	}
	droverBin = filepath.Join(dir, "drover")
	build := exec.Command("go", "build", "-race", "-o", droverBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building drover for the end-to-end tests: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// raceExitSleep is how long a race-built program lingers at exit. By
// default the race detector sleeps a whole second there (GORACE option
// atexit_sleep_ms, 1000) so that goroutines still running can show a race
// before the process ends. Every drover command these tests run, every
// `drover sample-service -check` a deploy's validate step runs on each
// host, every `drover host` agent is such a program, most of them on a
// deploy's path one after another: the second was a third of some tests'
// time. A goroutine that is runnable at exit runs within milliseconds;
// one blocked in I/O does not run in a second either; so a tenth of it
// still lets the detector see what it saw.
const raceExitSleep = "atexit_sleep_ms=100"

// shortenRaceExitSleep sets raceExitSleep in GORACE for every program the
// tests start, unless the caller chose atexit_sleep_ms themselves.
func shortenRaceExitSleep() {
	g := os.Getenv("GORACE")
	if strings.Contains(g, "atexit_sleep_ms") {
		return
	}
	os.Setenv("GORACE", strings.TrimSpace(g+" "+raceExitSleep))
}

// e2eGroups: a canary that may not fail, then the rest in batches of 25%
// (3 of 9) with 20% (1 of 9) allowed to fail.
const e2eGroups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
  - name: default
    hosts: ["h*"]
    batch: "25%"
    failure_limit: "20%"
`

func newFleet(t *testing.T, hosts int) *localfleet.Fleet {
	t.Helper()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: hosts, Groups: e2eGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s\n--- stderr\n%s", r.code, r.stdout, r.stderr)
}

func runDrover(t *testing.T, args ...string) result {
	t.Helper()
	return runDroverEnv(t, nil, args...)
}

// runDroverEnv is runDrover with env added to the test's environment: a
// parallel test cannot change its own (t.Setenv) without racing the others.
func runDroverEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	return runCmd(t, cmd)
}

// runCmd runs a drover command made by the caller (in a namespace, say)
// and returns its exit code and output; only a failure to run it at all
// fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return r
}

func deploy(t *testing.T, f *localfleet.Fleet, src string, extra ...string) result {
	t.Helper()
	return runDrover(t, append([]string{"deploy", "-c", f.Config, "--release", src}, extra...)...)
}

func mustExit(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
}

// wantServing asserts every host serves exactly version v, or the listed
// exceptions.
func wantServing(t *testing.T, f *localfleet.Fleet, v string, except map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got := f.Versions(ctx)
	for _, h := range f.Hosts {
		want := v
		if e, ok := except[h.Name]; ok {
			want = e
		}
		if got[h.Name] != want {
			t.Errorf("%s serves %q, want %q", h.Name, got[h.Name], want)
		}
	}
}

type hostState struct {
	Current, Previous, Version string
}

func readState(t *testing.T, f *localfleet.Fleet, host string) hostState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.DeployRoot(host), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s hostState
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// releaseWithBadHosts writes a release whose health check fails on the named
// hosts only.
func releaseWithBadHosts(t *testing.T, f *localfleet.Fleet, version string, bad ...string) string {
	t.Helper()
	src, err := f.WriteRelease(version, true)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(src, "hello.conf.tmpl")
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	args := `"` + strings.Join(bad, `" "`) + `"`
	s := strings.Replace(string(b), "health = ok", `health = {{if eq .Host.Name `+args+`}}fail{{else}}ok{{end}}`, 1)
	if s == string(b) {
		t.Fatalf("release template has no `health = ok` line to break:\n%s", b)
	}
	if err := os.WriteFile(tmpl, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

func writeRelease(t *testing.T, f *localfleet.Fleet, version string, healthy bool) string {
	t.Helper()
	src, err := f.WriteRelease(version, healthy)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// treeDigest fingerprints every file, link and directory under dir, so a
// test can prove a command changed nothing.
// isLockBookkeeping is the host lock's own files under a deploy root:
// every step that changes a host, or might (a prune that removes nothing),
// takes the lock and records its holder, so they are not host state.
func isLockBookkeeping(rel string) bool {
	name, ok := strings.CutPrefix(rel, hostops.LockDir+string(filepath.Separator))
	return ok && (strings.HasPrefix(name, hostops.LockName) || strings.HasPrefix(name, hostops.HolderName))
}

func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if isLockBookkeeping(rel) {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		mtime := info.ModTime().UnixNano()
		if rel == hostops.LockDir {
			// The host lock's record comes and goes in here with every
			// step (hostops/lock.go); what else .drover holds is compared.
			mtime = 0
		}
		sig := fmt.Sprintf("%v %d %d", info.Mode(), info.Size(), mtime)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			sig += " -> " + target
		case info.Mode().IsRegular():
			sig += " " + fileHash(p)
		}
		out[rel] = sig
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fileHash is the start of p's SHA-256, "" when p cannot be read. It
// streams the file: an SSH host holds drover's own race-built binary
// (some 50 MB), and reading it whole cost the race detector's bookkeeping
// of every byte of the buffer, three times the hashing itself.
func fileHash(p string) string {
	fh, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func diffDigests(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "new: "+k)
		}
	}
	return d
}

// hostsDigest fingerprints the hosts only: the state dir may legitimately
// gain nothing either, but logs of running services change on their own.
func hostsDigest(t *testing.T, f *localfleet.Fleet) map[string]string {
	t.Helper()
	d := map[string]string{}
	for _, h := range f.Hosts {
		for k, v := range treeDigest(t, f.DeployRoot(h.Name)) {
			if strings.HasPrefix(k, "run") { // pid file and service log
				continue
			}
			d[h.Name+"/"+k] = v
		}
	}
	return d
}

func TestE2EDeployUpgradeHaltRollback(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	v1 := writeRelease(t, f, "1.0.0", true)
	v2 := writeRelease(t, f, "2.0.0", true)

	// First deploy: no host has a release yet.
	r := deploy(t, f, v1)
	mustExit(t, r, 0)
	wantServing(t, f, "1.0.0", nil)
	if s := readState(t, f, "h05"); s.Previous != "" || !strings.HasPrefix(s.Current, "1.0.0-") {
		t.Fatalf("after the first deploy h05 state = %+v", s)
	}

	// Rolling upgrade.
	r = deploy(t, f, v2)
	mustExit(t, r, 0)
	wantServing(t, f, "2.0.0", nil)
	for _, want := range []string{"group canary", "group default", "h10"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("deploy output lacks %q:\n%s", want, r.stdout)
		}
	}
	before := map[string]hostState{}
	for _, h := range f.Hosts {
		before[h.Name] = readState(t, f, h.Name)
	}

	// Deploying the same release again changes nothing.
	digest := hostsDigest(t, f)
	r = deploy(t, f, v2)
	mustExit(t, r, 0)
	if d := diffDigests(digest, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("re-deploying the same release changed hosts:\n%s", strings.Join(d, "\n"))
	}

	// v3 fails its checks on two hosts of the default group: past the
	// limit of 1, so the deploy halts and every host it switched, the
	// canary included, goes back to v2 with v1 as previous.
	v3 := releaseWithBadHosts(t, f, "3.0.0", "h04", "h05")
	r = deploy(t, f, v3)
	mustExit(t, r, 1)
	wantServing(t, f, "2.0.0", nil)
	for _, h := range f.Hosts {
		if got := readState(t, f, h.Name); got.Current != before[h.Name].Current || got.Previous != before[h.Name].Previous {
			t.Errorf("%s after the halted deploy: current %s previous %s, want %s %s", h.Name, got.Current, got.Previous, before[h.Name].Current, before[h.Name].Previous)
		}
	}
	if !strings.Contains(r.stdout, "HALT") || !strings.Contains(r.stdout, "h04") {
		t.Errorf("halt output does not say why:\n%s", r.stdout)
	}

	// Rollback right after goes to the release before the last good one
	// (v1) — never to the broken v3 — config included.
	r = runDrover(t, "rollback", "-c", f.Config, "--yes")
	mustExit(t, r, 0)
	wantServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		conf, err := os.ReadFile(filepath.Join(f.DeployRoot(h.Name), "current", "hello.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(conf), "version = 1.0.0") {
			t.Errorf("%s config after rollback:\n%s", h.Name, conf)
		}
	}

	// status --json tells the same story.
	r = runDrover(t, "status", "-c", f.Config, "--json")
	mustExit(t, r, 0)
	var st struct {
		Service string
		Hosts   []struct {
			Name      string
			Reachable bool
			Version   string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if st.Service != "hello" || len(st.Hosts) != 10 || st.Hosts[0].Version != "1.0.0" || !st.Hosts[0].Reachable {
		t.Errorf("status --json = %+v", st)
	}

	// History records all of it, newest first.
	r = runDrover(t, "history", "-c", f.Config, "--json")
	mustExit(t, r, 0)
	var hist []struct{ Kind, Version, Outcome string }
	if err := json.Unmarshal([]byte(r.stdout), &hist); err != nil {
		t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	var kinds []string
	for _, h := range hist {
		kinds = append(kinds, h.Kind+":"+h.Outcome)
	}
	want := "rollback:succeeded deploy:rolled_back deploy:succeeded deploy:succeeded deploy:succeeded"
	if strings.Join(kinds, " ") != want {
		t.Errorf("history = %s, want %s", strings.Join(kinds, " "), want)
	}
}

func TestE2EFailureWithinLimitRestoresHost(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	r := deploy(t, f, releaseWithBadHosts(t, f, "2.0.0", "h07"))
	mustExit(t, r, 4)
	wantServing(t, f, "2.0.0", map[string]string{"h07": "1.0.0"})
	if !strings.Contains(r.stdout, "h07") || !strings.Contains(r.stdout, "health: http GET") {
		t.Errorf("output does not name the failed host and check:\n%s", r.stdout)
	}
	if s := readState(t, f, "h07"); !strings.HasPrefix(s.Current, "1.0.0-") || s.Previous != "" {
		t.Errorf("h07 state after restore = %+v, want current 1.0.0-*, previous none", s)
	}
}

func TestE2EFirstDeployFailsInCanary(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	r := deploy(t, f, writeRelease(t, f, "1.0.0", false))
	mustExit(t, r, 1)
	// Nothing was there before, so nothing may be serving now, and no
	// host may point at the broken release.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, v := range f.Versions(ctx) {
		if !strings.HasPrefix(v, "down") {
			t.Errorf("%s serves %q after a rolled-back first deploy", name, v)
		}
	}
	for _, h := range f.Hosts {
		if _, err := os.Lstat(filepath.Join(f.DeployRoot(h.Name), "current")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s has a current link after a rolled-back first deploy (err %v)", h.Name, err)
		}
	}
}

func TestE2EPlanChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	v2 := writeRelease(t, f, "2.0.0", true)
	hosts := hostsDigest(t, f)
	state := treeDigest(t, filepath.Join(f.Dir, "state"))
	r := runDrover(t, "plan", "-c", f.Config, "--release", v2, "--diff")
	mustExit(t, r, 0)
	if d := diffDigests(hosts, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("plan changed hosts:\n%s", strings.Join(d, "\n"))
	}
	if d := diffDigests(state, treeDigest(t, filepath.Join(f.Dir, "state"))); len(d) > 0 {
		t.Fatalf("plan changed the state dir:\n%s", strings.Join(d, "\n"))
	}
	for _, want := range []string{"h01", "1.0.0 -> 2.0.0", "-version = 1.0.0", "+version = 2.0.0", "10 to deploy"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, r.stdout)
		}
	}
	wantServing(t, f, "1.0.0", nil)
}

// TestE2EBadInput: every kind of bad input exits 2, names the problem, and
// leaves the fleet and the state directory exactly as they were.
func TestE2EBadInput(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	v1 := writeRelease(t, f, "1.0.0", true)
	mustExit(t, deploy(t, f, v1), 0)
	good, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(t.TempDir(), "evil.tar.gz")
	writeEvilBundle(t, evil)
	v2 := writeRelease(t, f, "2.0.0", true)

	cases := []struct {
		name    string
		config  string // "" keeps the good one
		release string
		want    []string
	}{
		{"yaml syntax error", strings.Replace(string(good), "groups:", "groups: [", 1), v2, []string{"drover.yaml:"}},
		{"unknown key", strings.Replace(string(good), "keep_releases:", "keep_relases:", 1), v2, []string{"drover.yaml:", "keep_relases"}},
		{"150% batch", strings.Replace(string(good), `batch: "25%"`, `batch: "150%"`, 1), v2, []string{"drover.yaml:", "150%"}},
		{"unknown host in group", strings.Replace(string(good), "hosts: [h01]", "hosts: [h99]", 1), v2, []string{"drover.yaml:", "h99"}},
		{"missing release", "", filepath.Join(t.TempDir(), "nope"), []string{"nope"}},
		{"tarball with ../ entries", "", evil, []string{"evil.tar.gz", ".."}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := f.Config
			if c.config != "" {
				cfg = filepath.Join(filepath.Dir(f.Config), "bad.yaml")
				if err := os.WriteFile(cfg, []byte(c.config), 0o644); err != nil {
					t.Fatal(err)
				}
				c.want = append(c.want[1:], "bad.yaml:")
			}
			hosts := hostsDigest(t, f)
			state := treeDigest(t, filepath.Join(f.Dir, "state"))
			r := runDrover(t, "deploy", "-c", cfg, "--release", c.release)
			mustExit(t, r, 2)
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("error lacks %q: %s", w, r)
				}
			}
			if d := diffDigests(hosts, hostsDigest(t, f)); len(d) > 0 {
				t.Errorf("bad input changed hosts:\n%s", strings.Join(d, "\n"))
			}
			if d := diffDigests(state, treeDigest(t, filepath.Join(f.Dir, "state"))); len(d) > 0 {
				t.Errorf("bad input changed the state dir:\n%s", strings.Join(d, "\n"))
			}
		})
	}
	wantServing(t, f, "1.0.0", nil)
}

func TestE2EConcurrentDeployIsLocked(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	v2 := writeRelease(t, f, "2.0.0", true)

	first := exec.Command(droverBin, "deploy", "-c", f.Config, "--release", v2)
	stdout, err := first.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	first.Stderr = os.Stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Wait()
	// The first line is printed once the lock is held.
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatal("first deploy printed nothing")
	}
	second := runDrover(t, "deploy", "-c", f.Config, "--release", v2)
	go io.Copy(io.Discard, stdout)
	mustExit(t, second, 5)
	for _, want := range []string{"lock", fmt.Sprint(first.Process.Pid)} {
		if !strings.Contains(second.stderr, want) {
			t.Errorf("locked error lacks %q: %s", want, second)
		}
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	wantServing(t, f, "2.0.0", nil)
}

// TestE2EKillMidDeployThenRerun: a deploy killed with SIGKILL half-way
// leaves hosts on mixed releases; the next deploy finds the journal, rolls
// back what the dead one touched, and then does its own work.
func TestE2EKillMidDeployThenRerun(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	v2 := writeRelease(t, f, "2.0.0", true)

	cmd := exec.Command(droverBin, "deploy", "-c", f.Config, "--release", v2)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the canary is done and the default group is switching.
	lines := bufio.NewScanner(stdout)
	killed := false
	for lines.Scan() {
		if strings.Contains(lines.Text(), "switch") && !strings.Contains(lines.Text(), "h01") {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatal("the deploy finished before it could be killed")
	}
	r := deploy(t, f, v2)
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "never finished") {
		t.Errorf("re-run did not report the interrupted deploy:\n%s", r.stdout)
	}
	wantServing(t, f, "2.0.0", nil)
	r = runDrover(t, "history", "-c", f.Config, "--json")
	if !strings.Contains(r.stdout, `"interrupted"`) {
		t.Errorf("history lacks the interrupted deploy:\n%s", r.stdout)
	}
}

// writeEvilBundle writes a bundle whose manifest is fine but which carries
// an entry that climbs out of the release directory.
func writeEvilBundle(t *testing.T, path string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	payload := []byte("owned\n")
	sum := sha256.Sum256(payload)
	manifest, _ := json.Marshal(map[string]any{
		"service": "hello", "version": "6.6.6", "id": "6.6.6-000000000000",
		"created": time.Now().UTC(), "content_hash": strings.Repeat("0", 64),
		"files": []map[string]any{{"path": "../escaped", "mode": 0o644, "size": len(payload), "sha256": hex.EncodeToString(sum[:])}},
	})
	for _, e := range []struct {
		name string
		body []byte
	}{{"drover-release.json", manifest}, {"../escaped", payload}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	gz.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
