//go:build unix

package localfleet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/examples/hello"
)

// buildStandIn builds examples/hello/cmd/hello under the name drover: the
// release scripts only need `drover sample-service`. It returns a PATH
// with the stand-in first.
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
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// deploy does by hand what drover does on a host: copy the release into
// releases/<version>, render its config, point current at it and run the
// restart hook.
func deploy(t *testing.T, f *Fleet, path, host, src, version string) {
	t.Helper()
	h, _ := f.Host(host)
	root := f.DeployRoot(host)
	rel := filepath.Join(root, "releases", version)
	if err := os.CopyFS(rel, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(rel, hello.ConfigTemplate))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := drover.Render(hello.ConfigTemplate, string(tmpl), drover.TemplateData{
		Host:    drover.TemplateHost{Name: h.Name, Address: h.Dir, Vars: map[string]any{"port": h.Port}},
		Release: drover.TemplateRelease{ID: version, Version: version},
		Root:    root,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rel, hello.ConfigFile), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("releases", version), filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bin/restart", root)
	cmd.Dir = filepath.Join(root, "current")
	cmd.Env = append(os.Environ(), "PATH="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: bin/restart: %v\n%s", host, err, out)
	}
}

func TestStopKillsServices(t *testing.T) {
	path := buildStandIn(t)
	f, err := New(Options{Dir: t.TempDir(), Hosts: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range f.Processes() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	src, err := f.WriteRelease("1.0.0", true)
	if err != nil {
		t.Fatal(err)
	}
	// CopyFS keeps only the executable bit's presence; check it survived.
	if fi, err := os.Stat(filepath.Join(src, "bin", "restart")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("bin/restart not executable: %v", err)
	}
	deploy(t, f, path, "h01", src, "1.0.0")
	deploy(t, f, path, "h02", src, "1.0.0")

	ctx := context.Background()
	for _, host := range []string{"h01", "h02"} {
		waitVersion(t, f, host, "1.0.0")
	}
	vs := f.Versions(ctx)
	if vs["h01"] != "1.0.0" || vs["h02"] != "1.0.0" || !strings.HasPrefix(vs["h03"], "down: ") {
		t.Errorf("Versions = %v", vs)
	}
	if _, err := f.Version(ctx, "h99"); err == nil {
		t.Error("Version of an unknown host succeeded")
	}

	pids := f.Processes()
	if len(pids) != 2 {
		t.Fatalf("Processes = %v, want 2", pids)
	}
	f.Stop()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still runs after Stop", pid)
		}
	}
	for _, host := range []string{"h01", "h02"} {
		if v, err := f.Version(ctx, host); err == nil {
			t.Errorf("%s still answers %q after Stop", host, v)
		}
		if _, err := os.Stat(filepath.Join(f.DeployRoot(host), "run", "hello.pid")); !os.IsNotExist(err) {
			t.Errorf("%s: pidfile left after Stop: %v", host, err)
		}
	}
	if got := f.Processes(); len(got) != 0 {
		t.Errorf("Processes after Stop = %v", got)
	}
	f.Stop() // nothing left: a no-op
}

// TestStopFindsLostPidfile: a service whose pidfile is gone is still found
// by its command line and stopped.
func TestStopFindsLostPidfile(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc")
	}
	path := buildStandIn(t)
	f, err := New(Options{Dir: t.TempDir(), Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range f.Processes() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	src, err := f.WriteRelease("2.0.0", true)
	if err != nil {
		t.Fatal(err)
	}
	deploy(t, f, path, "h01", src, "2.0.0")
	waitVersion(t, f, "h01", "2.0.0")
	if err := os.Remove(filepath.Join(f.DeployRoot("h01"), "run", "hello.pid")); err != nil {
		t.Fatal(err)
	}
	f.Stop()
	if v, err := f.Version(context.Background(), "h01"); err == nil {
		t.Errorf("h01 still answers %q after Stop", v)
	}
}

// TestStopSparesOthers: a pidfile naming a process that is not a sample
// service (a stale file whose number was reused) does not get it killed.
func TestStopSparesOthers(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc to tell processes apart")
	}
	f, err := New(Options{Dir: t.TempDir(), Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	bystander := exec.Command("sleep", "30")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { bystander.Process.Kill(); bystander.Wait() }()
	run := filepath.Join(f.DeployRoot("h01"), "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "hello.pid"), []byte(strconv.Itoa(bystander.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Stop()
	if !alive(bystander.Process.Pid) {
		t.Fatal("Stop killed a process that was not a sample service")
	}
}

func waitVersion(t *testing.T, f *Fleet, host, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := f.Version(context.Background(), host)
		if err == nil && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: version %q, %v; want %q", host, v, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
