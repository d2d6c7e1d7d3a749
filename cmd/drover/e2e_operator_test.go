package main

// What the operator sees when something is unfinished or odd (issue 17):
// status naming a running or interrupted deploy, tables that stay tables,
// rollback targets by version. Terminal text is compared with
// testdata/*.golden after normalizing IDs and times; -update rewrites them.

import (
	"encoding/json"
	"fmt"
	"os"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/config"
	"drover/internal/localfleet"
	"drover/report"
)

// normalize replaces what changes from run to run (deploy IDs, times,
// pids, user and machine names) with fixed words.
func normalize(s string) string {
	user := ""
	if u, err := osuser.Current(); err == nil {
		user = u.Username
	}
	machine, _ := os.Hostname()
	for _, r := range []struct{ re, to string }{
		{`d-\d{8}T\d{6}-[0-9a-f]+(-rollback|-recover)?`, "DEPLOY$1"},
		{`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`, "TIME"},
		{`pid \d+`, "pid PID"},
		{`\b\d+\.\d+\.\d+-[0-9a-f]{12}\b`, "RELEASE"},
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.to)
	}
	if machine != "" {
		s = strings.ReplaceAll(s, "machine "+machine, "machine MACHINE")
		s = strings.ReplaceAll(s, "@"+machine, "@MACHINE")
	}
	if user != "" {
		s = strings.ReplaceAll(s, "user "+user+",", "user USER,")
		s = strings.ReplaceAll(s, "by "+user+"@", "by USER@")
	}
	return s
}

// golden compares got with testdata/name.golden (or rewrites it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// tail returns what follows the host table: the lines after its first
// blank line.
func afterTable(s string) string {
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return s[i+2:]
	}
	return ""
}

// TestE2EStatusShowsRunningAndInterruptedDeploy: while a deploy runs,
// status names its holder, since when and its phase (the lock error sends
// people there); once its process is killed, status names the hosts it
// left switched and says to run `drover resume`; after resume, nothing.
func TestE2EStatusShowsRunningAndInterruptedDeploy(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	r := runDrover(t, "status", "-c", f.Config)
	mustExit(t, r, 0)
	if afterTable(r.stdout) != "" {
		t.Errorf("status of a quiet fleet prints more than the table:\n%s", r.stdout)
	}
	r = runDrover(t, "status", "-c", f.Config, "--json")
	if strings.Contains(r.stdout, `"running"`) || strings.Contains(r.stdout, `"unfinished"`) {
		t.Errorf("status --json of a quiet fleet grew fields:\n%s", r.stdout)
	}

	cmd, events := startDeploy(t, f, writeRelease(t, f, "2.0.0", true))
	var id string
	stopped := false
	for e := range events {
		if e.Kind == drover.EventDeployStart {
			id = e.Deploy
		}
		if e.Kind == drover.EventStepDone && e.Step == "switch" && e.Host == "h02" {
			cmd.Process.Signal(syscall.SIGSTOP)
			stopped = true
			break
		}
	}
	if !stopped {
		t.Fatal("the deploy finished before it could be stopped")
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGCONT) })

	locked := deploy(t, f, writeRelease(t, f, "3.0.0", true))
	mustExit(t, locked, 5)
	if !strings.Contains(locked.stderr, "see `drover status`") {
		t.Errorf("the lock error no longer points at status:\n%s", locked)
	}
	r = runDrover(t, "status", "-c", f.Config)
	mustExit(t, r, 0)
	got := afterTable(r.stdout)
	for _, want := range []string{"deploy " + id + " of 2.0.0 is running", fmt.Sprintf("pid %d", cmd.Process.Pid), "since ", "now: "} {
		if !strings.Contains(got, want) {
			t.Errorf("status while deploying lacks %q:\n%s", want, r.stdout)
		}
	}
	var sv struct {
		Running    *report.RunningDeploy     `json:"running"`
		Unfinished []report.UnfinishedDeploy `json:"unfinished"`
		Hosts      []json.RawMessage         `json:"hosts"`
	}
	r = runDrover(t, "status", "-c", f.Config, "--json")
	mustExit(t, r, 0)
	if err := json.Unmarshal([]byte(r.stdout), &sv); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if sv.Running == nil || sv.Running.ID != id || sv.Running.Status != report.StatusRunning || sv.Running.Holder.PID != cmd.Process.Pid || sv.Running.Phase == "" || len(sv.Hosts) != 2 {
		t.Errorf("status --json while deploying: %+v\n%s", sv.Running, r.stdout)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Wait()

	r = runDrover(t, "status", "-c", f.Config)
	mustExit(t, r, 0)
	golden(t, "status_interrupted", normalize(afterTable(r.stdout)))
	sv.Running, sv.Unfinished = nil, nil
	r = runDrover(t, "status", "-c", f.Config, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &sv); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if sv.Running != nil || len(sv.Unfinished) != 1 || sv.Unfinished[0].ID != id ||
		strings.Join(sv.Unfinished[0].Switched, ",") != "h01,h02" {
		t.Errorf("status --json after kill -9: running %+v unfinished %+v", sv.Running, sv.Unfinished)
	}

	mustExit(t, runDrover(t, "resume", "-c", f.Config), 0)
	r = runDrover(t, "status", "-c", f.Config)
	mustExit(t, r, 0)
	if afterTable(r.stdout) != "" {
		t.Errorf("status after resume still reports a deploy:\n%s", r.stdout)
	}
}

// TestE2EStatusAndPlanCreateNothing: on hosts never deployed, status and
// plan read and leave no deploy root behind.
func TestE2EStatusAndPlanCreateNothing(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	for _, h := range f.Hosts {
		if err := os.RemoveAll(f.DeployRoot(h.Name)); err != nil {
			t.Fatal(err)
		}
	}
	v1 := writeRelease(t, f, "1.0.0", true)
	mustExit(t, runDrover(t, "status", "-c", f.Config), 0)
	mustExit(t, runDrover(t, "plan", "-c", f.Config, "--release", v1, "--diff"), 0)
	for _, h := range f.Hosts {
		if _, err := os.Lstat(f.DeployRoot(h.Name)); !os.IsNotExist(err) {
			t.Errorf("status or plan created %s (%v)", f.DeployRoot(h.Name), err)
		}
	}
	mustExit(t, deploy(t, f, v1), 0)
	wantServing(t, f, "1.0.0", nil)
}

// TestE2ERollbackToVersion: history shows release IDs; `rollback --to`
// takes a version when it names one release, refuses (exit 2, the IDs
// listed) when it names two builds, and takes an ID from history.
func TestE2ERollbackToVersion(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	v1 := writeRelease(t, f, "1.0.0", true)
	mustExit(t, deploy(t, f, v1), 0)
	mustExit(t, deploy(t, f, writeRelease(t, f, "2.0.0", true)), 0)
	mustExit(t, deploy(t, f, writeRelease(t, f, "3.0.0", true)), 0)

	rows := historyRows(t, f)
	r := runDrover(t, "history", "-c", f.Config)
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "RELEASE") || !strings.Contains(r.stdout, rows[2].Release) || rows[2].Version != "1.0.0" {
		t.Errorf("history does not show release IDs (want %s):\n%s", rows[2].Release, r.stdout)
	}
	r = runDrover(t, "rollback", "-c", f.Config, "--yes", "--to", "1.0.0")
	mustExit(t, r, 0)
	wantServing(t, f, "1.0.0", nil)

	// A rebuild of 1.0.0 with other content: the version now names two.
	if err := os.WriteFile(filepath.Join(v1, "EXTRA"), []byte("rebuilt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExit(t, deploy(t, f, v1), 0)
	mustExit(t, deploy(t, f, writeRelease(t, f, "3.0.0", true)), 0)
	rebuilt := historyRows(t, f)[1].Release
	r = runDrover(t, "rollback", "-c", f.Config, "--yes", "--to", "1.0.0")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, rows[2].Release) || !strings.Contains(r.stderr, rebuilt) || rebuilt == rows[2].Release {
		t.Errorf("ambiguous --to does not list both IDs (%s, %s):\n%s", rows[2].Release, rebuilt, r)
	}
	wantServing(t, f, "3.0.0", nil)
	mustExit(t, runDrover(t, "rollback", "-c", f.Config, "--yes", "--to", rebuilt), 0)
	wantServing(t, f, "1.0.0", nil)
}

// TestE2ERollbackOnFirstRelease: with nothing earlier, rollback says the
// host is on its first release and what --to could name — not --limit.
func TestE2ERollbackOnFirstRelease(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	r := runDrover(t, "rollback", "-c", f.Config, "--yes")
	mustExit(t, r, 2)
	golden(t, "rollback_first_release", normalize(r.stderr))
}

// TestE2EReleaseTemplateMissingVar: a release config template using a var
// some hosts lack is reported once, at the template's line, naming the
// first host and how many more, with the hint a check template gets from
// config validation — not a raw Go template error for one host.
func TestE2EReleaseTemplateMissingVar(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3)
	src := writeRelease(t, f, "1.0.0", true)
	tmpl := filepath.Join(src, "hello.conf.tmpl")
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Count(string(b), "\n") + 1
	if err := os.WriteFile(tmpl, append(b, "upstream = {{.Host.Vars.upstream}}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := deploy(t, f, src)
	mustExit(t, r, 2)
	for _, want := range []string{
		fmt.Sprintf("hello.conf.tmpl:%d: config_files[0]", line),
		"template fails for host h01 (and 2 more hosts): at <.Host.Vars.upstream>: map has no entry for key \"upstream\"",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("deploy's error lacks %q:\n%s", want, r)
		}
	}
	_, cerr := config.Parse("drover.yaml", []byte(`service: x
deploy_root: /srv/x
hosts: [{name: h01, address: /f}]
groups: [{name: a, hosts: ['*']}]
checks: [{name: c, type: tcp, address: "127.0.0.1:{{.Host.Vars.port}}"}]
`), "")
	hint := drover.ErrorHint(cerr)
	if hint == "" || !strings.Contains(r.stderr, "hint: "+hint) {
		t.Errorf("the hint differs from a check template's (%q):\n%s", hint, r)
	}
	if strings.Count(r.stderr, "upstream") != 2 {
		t.Errorf("the failure is not reported once:\n%s", r)
	}
}

// TestReleaseBuildReadsVersionFile: `release build DIR` takes the version
// from DIR/VERSION as `deploy --release DIR` does; the help of `release`
// promises only its one subcommand.
func TestReleaseBuildReadsVersionFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "VERSION"), []byte("1.2.3\n"), 0o644)
	os.WriteFile(filepath.Join(src, "app"), []byte("hi\n"), 0o644)
	r := runDrover(t, "release", "build", src, "-o", filepath.Join(dir, "out.tar.gz"))
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "release 1.2.3-") {
		t.Errorf("release build did not take DIR/VERSION:\n%s", r)
	}
	os.Remove(filepath.Join(src, "VERSION"))
	r = runDrover(t, "release", "build", src, "-o", filepath.Join(dir, "out2.tar.gz"))
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "VERSION file") {
		t.Errorf("no version: the error does not say where one comes from:\n%s", r)
	}
	r = runDrover(t, "release", "--help")
	mustExit(t, r, 0)
	if strings.Contains(r.stdout, "inspect") {
		t.Errorf("release --help promises what does not exist:\n%s", r.stdout)
	}
}

// TestE2EDeployTextWords: the line-per-event output says "1 host", not
// "1 hosts", and prints no depool/repool lines when the spec configures
// no rotation ("depool ok (0s)" on every host said something happened).
func TestE2EDeployTextWords(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: sequentialGroups, ExtraYAML: "stage_parallelism: 1\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	r := deploy(t, f, writeRelease(t, f, "1.0.0", true), "--no-progress")
	mustExit(t, r, 0)
	out := regexp.MustCompile(`\d\d:\d\d:\d\d`).ReplaceAllString(normalize(r.stdout), "HH:MM:SS")
	out = regexp.MustCompile(`\(\d+(\.\d+)?(ns|µs|ms|s)\)`).ReplaceAllString(out, "(T)")
	out = regexp.MustCompile(`in \d+(\.\d+)?(ns|µs|ms|s)\b`).ReplaceAllString(out, "in T")
	golden(t, "deploy_text_no_rotation", out)
	if strings.Contains(r.stdout, "1 hosts") || strings.Contains(r.stdout, "depool") || strings.Contains(r.stdout, "repool") {
		t.Errorf("deploy output:\n%s", r.stdout)
	}
}

// TestE2EStatusDeployedIgnoresRestore: after a deploy fails and restores
// a host, status's DEPLOYED is still when its release was deployed, not
// when the restore swapped it back.
func TestE2EStatusDeployedIgnoresRestore(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	deployed := func() map[string]time.Time {
		r := runDrover(t, "status", "-c", f.Config, "--json")
		mustExit(t, r, 0)
		var st struct {
			Hosts []struct {
				Name       string    `json:"name"`
				Version    string    `json:"version"`
				DeployedAt time.Time `json:"deployed_at"`
			} `json:"hosts"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatal(err)
		}
		out := map[string]time.Time{}
		for _, h := range st.Hosts {
			out[h.Name+" "+h.Version] = h.DeployedAt
		}
		return out
	}
	before := deployed()
	mustExit(t, deploy(t, f, releaseWithBadHosts(t, f, "2.0.0", "h02")), 1)
	after := deployed()
	for _, h := range []string{"h01 1.0.0", "h02 1.0.0"} {
		if b, a := before[h], after[h]; b.IsZero() || !a.Equal(b) {
			t.Errorf("%s: deployed_at %v after the restore, want %v (the 1.0.0 deploy)", h, a, b)
		}
	}
	if s := readState(t, f, "h01"); s.Version != "1.0.0" {
		t.Fatalf("h01 was not restored: %+v", s)
	}
}
