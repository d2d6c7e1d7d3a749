package local

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/release"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got nil", code)
	}
	if got := drover.ErrorCode(err); got != code {
		t.Fatalf("want error %s, got %s: %v", code, got, err)
	}
}

func newHost(t *testing.T) drover.Host {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "h01")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return drover.Host{Name: "h01", Address: dir, DeployRoot: "/srv/hello", Vars: map[string]any{"port": 18001}}
}

func open(t *testing.T, tr *Transport, h drover.Host) drover.HostConn {
	t.Helper()
	c, err := tr.Open(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOpenUnreachable(t *testing.T) {
	h := newHost(t)
	h.Address = filepath.Join(h.Address, "missing")
	_, err := (&Transport{}).Open(context.Background(), h)
	wantCode(t, err, drover.EUNREACHABLE)
	var de *drover.Error
	if !asError(err, &de) || de.Where != "host h01" {
		t.Fatalf("where: %#v", err)
	}
}

// TestDeployRootOnFirstWrite: opening and reading a host create nothing
// (status and plan leave a fresh host alone); the first write creates the
// deploy root.
func TestDeployRootOnFirstWrite(t *testing.T) {
	h := newHost(t)
	c := open(t, &Transport{}, h)
	root := filepath.Join(h.Address, "srv", "hello")
	if _, err := c.State(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.ReadFile(context.Background(), "releases/x/hello.conf")
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Fatalf("open and reads created the deploy root: %v", err)
	}
	if _, err := c.Prune(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("deploy root after a write: %v", err)
	}
}

func TestExec(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	c := open(t, &Transport{}, h)
	root := DeployRoot(h)

	res, err := c.Exec(ctx, drover.ExecRequest{Command: `echo out; echo err >&2; echo "$DROVER_HOST $DROVER_ROOT $X $PWD"; exit 7`, Dir: ".", Env: []string{"X=y"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 7 {
		t.Fatalf("exit %d", res.ExitCode)
	}
	for _, want := range []string{"out\n", "err\n", "h01 " + root + " y " + root} {
		if !strings.Contains(res.Output, want) {
			t.Fatalf("output %q lacks %q", res.Output, want)
		}
	}

	// Only the tail of the output is kept.
	res, err = c.Exec(ctx, drover.ExecRequest{Command: `head -c 100000 /dev/zero | tr '\0' a; echo END`, Dir: "."})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%v %+v", err, res.ExitCode)
	}
	if len(res.Output) != 4096 || !strings.HasSuffix(res.Output, "aEND\n") {
		t.Fatalf("output of %d bytes ends %q", len(res.Output), res.Output[len(res.Output)-10:])
	}

	// No current release yet: the default directory is missing.
	_, err = c.Exec(ctx, drover.ExecRequest{Command: "true"})
	wantCode(t, err, drover.EFAILED)
	_, err = c.Exec(ctx, drover.ExecRequest{Command: "true", Dir: "../.."})
	wantCode(t, err, drover.EINVALID)
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	h := newHost(t)
	c := open(t, &Transport{}, h)
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	_, err := c.Exec(context.Background(), drover.ExecRequest{
		Command: "sleep 60 & echo $! > " + pidFile + "; echo waiting; wait",
		Dir:     ".",
		Timeout: 300 * time.Millisecond,
	})
	wantCode(t, err, drover.ETIMEOUT)
	if !strings.Contains(err.Error(), "waiting") {
		t.Fatalf("timeout error lacks the output: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	pid := readPid(t, pidFile)
	waitDead(t, pid)
}

func TestExecBackgroundChildDoesNotHang(t *testing.T) {
	h := newHost(t)
	c := open(t, &Transport{}, h)
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	// The child keeps stdout and stderr open: a service started by a
	// restart hook without redirecting its output.
	res, err := c.Exec(context.Background(), drover.ExecRequest{
		Command: "sleep 60 & echo $! > " + pidFile + "; echo started",
		Dir:     ".",
		Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, pidFile)
	defer syscall.Kill(pid, syscall.SIGKILL)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Exec waited %v for a background child", d)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Output, "started") {
		t.Fatalf("result %+v", res)
	}
	// The child survives the hook: it is the service.
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("background child was killed: %v", err)
	}
}

func TestUnreachableWhenDirRemoved(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	c := open(t, &Transport{RunCheck: func(context.Context, drover.CheckSpec, func(context.Context, string) (drover.ExecResult, error)) drover.CheckResult {
		return drover.CheckResult{OK: true}
	}}, h)
	if err := os.RemoveAll(h.Address); err != nil {
		t.Fatal(err)
	}
	checks := map[string]func() error{
		"State":    func() error { _, err := c.State(ctx); return err },
		"Stage":    func() error { _, err := c.Stage(ctx, drover.StageRequest{Release: &drover.Release{}}); return err },
		"Promote":  func() error { _, err := c.Promote(ctx, drover.PromoteRequest{Slot: "x"}); return err },
		"Restore":  func() error { _, err := c.Restore(ctx, drover.RestoreRequest{}); return err },
		"Exec":     func() error { _, err := c.Exec(ctx, drover.ExecRequest{Command: "true", Dir: "."}); return err },
		"Check":    func() error { _, err := c.Check(ctx, drover.CheckSpec{Name: "x"}); return err },
		"ReadFile": func() error { _, err := c.ReadFile(ctx, "state.json"); return err },
		"Prune":    func() error { _, err := c.Prune(ctx, 1); return err },
	}
	for name, f := range checks {
		err := f()
		if drover.ErrorCode(err) != drover.EUNREACHABLE || !strings.Contains(err.Error(), "host h01") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestStagePromoteCheck(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "hello"), []byte("#!/bin/sh\ncat hello.conf\n"), 0o755)
	os.WriteFile(filepath.Join(src, "hello.conf.tmpl"), []byte("port={{.Host.Vars.port}} version={{.Release.Version}}\n"), 0o644)
	r, err := release.Build(ctx, src, release.BuildOptions{Service: "hello", Version: "1.0.0", CacheDir: t.TempDir(), Now: t0})
	if err != nil {
		t.Fatal(err)
	}

	var checked drover.CheckSpec
	tr := &Transport{
		Now: func() time.Time { return t0 },
		RunCheck: func(ctx context.Context, c drover.CheckSpec, exec func(context.Context, string) (drover.ExecResult, error)) drover.CheckResult {
			checked = c
			res, err := exec(ctx, c.Command)
			ok := err == nil && res.ExitCode == 0 && strings.Contains(res.Output, "port=18001")
			return drover.CheckResult{Name: c.Name, OK: ok, Attempts: 1, Reason: res.Output}
		},
	}
	h := newHost(t)
	c := open(t, tr, h)
	spec := &drover.Spec{Service: "hello"}
	data := drover.NewTemplateData(spec, h, r.ID(), r.Version())
	sr, err := c.Stage(ctx, drover.StageRequest{
		DeployID:    "d1",
		Release:     r,
		ConfigFiles: []drover.ConfigFile{{Template: "hello.conf.tmpl", Dest: "hello.conf", Validate: "grep -q port=18001 {{.Path}}"}},
		Data:        data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sr.Slot != r.ID() {
		t.Fatalf("slot %s", sr.Slot)
	}
	st, err := c.Promote(ctx, drover.PromoteRequest{DeployID: "d1", Slot: sr.Slot, Release: r.ID(), Version: r.Version(), ConfigHash: sr.ConfigHash, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != r.ID() || st.Version != "1.0.0" {
		t.Fatalf("state %+v", st)
	}
	link, _ := os.Readlink(filepath.Join(h.Address, "srv", "hello", "current"))
	if link != "releases/"+r.ID() {
		t.Fatalf("current -> %q", link)
	}
	res, err := c.Exec(ctx, drover.ExecRequest{Command: "bin/hello"})
	if err != nil || res.ExitCode != 0 || res.Output != "port=18001 version=1.0.0\n" {
		t.Fatalf("exec in current: %+v %v", res, err)
	}
	got, err := c.ReadFile(ctx, "current/hello.conf")
	if err != nil || string(got) != res.Output {
		t.Fatalf("ReadFile: %q %v", got, err)
	}
	cr, err := c.Check(ctx, drover.CheckSpec{Name: "conf", Type: "command", Command: "bin/hello"})
	if err != nil || !cr.OK || checked.Name != "conf" {
		t.Fatalf("check %+v %v", cr, err)
	}
	st2, err := c.State(ctx)
	if err != nil || st2.Current != st.Current {
		t.Fatalf("State %+v %v", st2, err)
	}

	// A bundle that differs from what was built is refused.
	bad := *r
	bad.BundleSHA256 = strings.Repeat("0", 64)
	_, err = c.Stage(ctx, drover.StageRequest{Release: &bad, Data: data})
	wantCode(t, err, drover.EINVALID)

	c2 := open(t, &Transport{}, h)
	_, err = c2.Check(ctx, drover.CheckSpec{Name: "x"})
	wantCode(t, err, drover.EINTERNAL)
}

func asError(err error, target **drover.Error) bool {
	e, ok := err.(*drover.Error)
	if ok {
		*target = e
	}
	return ok
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	var b []byte
	for i := 0; i < 100; i++ {
		b, _ = os.ReadFile(file)
		if len(strings.TrimSpace(string(b))) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %q", b)
	}
	return pid
}

// waitDead waits for pid to be gone (or a zombie waiting for init).
func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("process %d outlived the timeout", pid)
}
