//go:build unix

package hello

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover"
)

// buildStandIn builds cmd/hello under the name drover, which is all the
// release scripts need from drover (`drover sample-service ...`), and
// returns its directory to put first on PATH.
func buildStandIn(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary and runs processes")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH to build the stand-in")
	}
	dir := t.TempDir()
	out, err := exec.Command(gobin, "build", "-o", filepath.Join(dir, "drover"), "drover/examples/hello/cmd/hello").CombinedOutput()
	if err != nil {
		t.Fatalf("build stand-in: %v\n%s", err, out)
	}
	return dir
}

// deployRoot is a hand-made host layout (what hostops does in production):
// releases/<v>/ with the rendered config, and the current link.
type deployRoot struct {
	t    *testing.T
	root string
	path string // PATH for hooks
	port int
}

func (d *deployRoot) stage(version string, healthy bool) {
	t := d.t
	t.Helper()
	dir := filepath.Join(d.root, "releases", version)
	if err := WriteRelease(dir, version, healthy); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(dir, ConfigTemplate))
	if err != nil {
		t.Fatal(err)
	}
	out, err := drover.Render(ConfigTemplate, string(tmpl), templateData("h01", d.port, version, d.root))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	// The validate command of drover.yaml, run as drover runs it.
	if out, err := d.run(5*time.Second, dir, "bin/hello -check -config hello.conf"); err != nil {
		t.Fatalf("validate %s: %v\n%s", version, err, out)
	}
}

// promote points current at releases/<version> atomically, as hostops does.
func (d *deployRoot) promote(version string) {
	d.t.Helper()
	tmp := filepath.Join(d.root, "current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("releases", version), tmp); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.root, "current")); err != nil {
		d.t.Fatal(err)
	}
}

// run runs a hook with sh -c in dir. Its output goes to a pipe, as in
// drover's runner, so a service that kept the pipe open would make Run
// wait for it; the elapsed-time check in hook catches exactly that.
func (d *deployRoot) run(timeout time.Duration, dir, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+d.path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = timeout
	err := cmd.Run()
	return out.String(), err
}

// hook runs bin/<name> ROOT from the current release and fails the test
// if it takes long: a hook must return at once, not live as long as the
// service it started.
func (d *deployRoot) hook(name, rootArg string) string {
	d.t.Helper()
	start := time.Now()
	out, err := d.run(20*time.Second, filepath.Join(d.root, "current"), "bin/"+name+" "+drover.ShellQuote(rootArg))
	if err != nil {
		d.t.Fatalf("bin/%s: %v\n%s", name, err, out)
	}
	if el := time.Since(start); el > 4*time.Second {
		d.t.Fatalf("bin/%s took %v: the hook waited on the service\n%s", name, el, out)
	}
	return out
}

func (d *deployRoot) pidfile() int {
	b, err := os.ReadFile(filepath.Join(d.root, "run", "hello.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// servicePIDs lists live sample-service processes running from root, or
// returns ok=false where there is no /proc to look in.
func servicePIDs(root string) (pids []int, ok bool) {
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("sample-service")) || !bytes.Contains(cmdline, []byte(root+"/")) {
			continue
		}
		if alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, true
}

// alive reports whether pid runs; a zombie (exited, not yet reaped by
// whatever adopted it) does not count.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestRestartAndStopScripts(t *testing.T) {
	bin := buildStandIn(t)
	d := &deployRoot{
		t:    t,
		root: filepath.Join(t.TempDir(), "srv", "hello"),
		path: bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		port: freePort(t),
	}
	t.Cleanup(func() {
		// Never leave a service behind when the test fails half way.
		if pids, _ := servicePIDs(d.root); len(pids) > 0 {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", d.port)

	d.stage("1.0.0", true)
	d.promote("1.0.0")
	d.hook("restart", d.root)
	if code, body := get(t, base+"/version"); code != 200 || body != "1.0.0\n" {
		t.Fatalf("after first restart: /version = %d %q", code, body)
	}
	first := d.pidfile()
	if first == 0 {
		t.Fatal("no pid in run/hello.pid")
	}
	if pgid, err := syscall.Getpgid(first); err != nil || pgid != first {
		t.Errorf("service pid %d has process group %d (%v): not detached with setsid", first, pgid, err)
	}

	d.stage("2.0.0", true)
	d.promote("2.0.0")
	d.hook("restart", d.root)
	if code, body := get(t, base+"/version"); code != 200 || body != "2.0.0\n" {
		t.Fatalf("after second restart: /version = %d %q", code, body)
	}
	second := d.pidfile()
	if second == 0 || second == first {
		t.Fatalf("pidfile %d after restart, first was %d", second, first)
	}
	if alive(first) {
		t.Errorf("old instance %d still runs", first)
	}
	if pids, ok := servicePIDs(d.root); ok && (len(pids) != 1 || pids[0] != second) {
		t.Errorf("services running from %s: %v, want only %d", d.root, pids, second)
	}

	// A broken release starts, reports its version, and fails health. The
	// root argument is wrong on purpose: the scripts fall back to the root
	// they live in.
	d.stage("3.0.0", false)
	d.promote("3.0.0")
	d.hook("restart", filepath.Join(t.TempDir(), "not-a-root"))
	if code, body := get(t, base+"/version"); code != 200 || body != "3.0.0\n" {
		t.Fatalf("broken release: /version = %d %q", code, body)
	}
	if code, _ := get(t, base+"/health"); code != 500 {
		t.Errorf("broken release: /health = %d, want 500", code)
	}

	third := d.pidfile()
	out := d.hook("stop", d.root)
	if !strings.Contains(out, "stopped pid") {
		t.Errorf("bin/stop output %q", out)
	}
	if alive(third) {
		t.Errorf("instance %d still runs after bin/stop", third)
	}
	if pids, ok := servicePIDs(d.root); ok && len(pids) != 0 {
		t.Errorf("services still running after bin/stop: %v", pids)
	}
	if _, err := os.Stat(filepath.Join(d.root, "run", "hello.pid")); !os.IsNotExist(err) {
		t.Errorf("pidfile left after bin/stop: %v", err)
	}
	// Stopping what is not running succeeds.
	d.hook("stop", d.root)

	// The service's output went to the log, where an operator looks.
	logb, _ := os.ReadFile(filepath.Join(d.root, "run", "hello.log"))
	for _, want := range []string{"hello 1.0.0 listening", "hello 1.0.0 stopped", "hello 3.0.0 stopped"} {
		if !strings.Contains(string(logb), want) {
			t.Errorf("run/hello.log lacks %q:\n%s", want, logb)
		}
	}
}

// TestStopIgnoresStalePidfile: a pidfile naming a process that is not the
// service (the number was reused) must not get it killed.
func TestStopIgnoresStalePidfile(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc to tell processes apart")
	}
	bin := buildStandIn(t)
	d := &deployRoot{t: t, root: filepath.Join(t.TempDir(), "srv", "hello"), path: bin + string(os.PathListSeparator) + os.Getenv("PATH"), port: freePort(t)}
	d.stage("1.0.0", true)
	d.promote("1.0.0")

	bystander := exec.Command("sleep", "30")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer bystander.Process.Kill()
	if err := os.MkdirAll(filepath.Join(d.root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.root, "run", "hello.pid"), []byte(strconv.Itoa(bystander.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.hook("stop", d.root)
	if !alive(bystander.Process.Pid) {
		t.Fatal("bin/stop killed a process that was not the service")
	}
}

// TestStopStopsServiceBeforeItsExec: the pidfile is written by hello_start's
// inner shell before it execs the service; a stop in that window must stop
// it, not take it for a stranger and leave a second instance to start
// beside it (the crash matrix met this: the host served the dead run's
// release after recovery restarted it).
func TestStopStopsServiceBeforeItsExec(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc to tell processes apart")
	}
	bin := buildStandIn(t)
	d := &deployRoot{t: t, root: filepath.Join(t.TempDir(), "srv", "hello"), path: bin + string(os.PathListSeparator) + os.Getenv("PATH"), port: freePort(t)}
	d.stage("1.0.0", true)
	d.promote("1.0.0")
	pidfile := filepath.Join(d.root, "run", "hello.pid")
	// What hello_start runs, caught before its exec: "sh -c ... hello-start PIDFILE ...".
	starting := exec.Command("sh", "-c", "sleep 30; :", "hello-start", pidfile)
	starting.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := starting.Start(); err != nil {
		t.Fatal(err)
	}
	defer starting.Process.Kill()
	go starting.Wait()
	if err := os.MkdirAll(filepath.Dir(pidfile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(starting.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.hook("stop", d.root)
	for deadline := time.Now().Add(5 * time.Second); alive(starting.Process.Pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bin/stop left the starting service running")
		}
	}
}
