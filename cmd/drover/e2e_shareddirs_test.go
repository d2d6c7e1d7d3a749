package main

// shared_dirs end to end (issue 17): a validate that needs its log
// directory, as `nginx -t` does, fails on a fresh release until the
// directory is a shared dir; then every release links it, what the service
// wrote there survives a new release and a rollback, and a release that
// ships the directory is refused naming host and file.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"drover/internal/localfleet"
	"drover/internal/sshfleet"
)

// needLogsToValidate rewrites the fleet's validate command to open a log
// file in logs/ before checking the config, as `nginx -t` opens its
// error_log, and sets shared_dirs when shared.
func needLogsToValidate(t *testing.T, config string, shared bool) {
	t.Helper()
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	old := `validate: "bin/hello -check -config {{.Path}}"`
	s := strings.Replace(string(b), old, `validate: ": >> logs/validate.log && bin/hello -check -config {{.Path}}"`, 1)
	if s == string(b) && !strings.Contains(s, "logs/validate.log") {
		t.Fatalf("no %q in %s", old, config)
	}
	if shared {
		s += "shared_dirs: [logs, var/run]\n"
	}
	if err := os.WriteFile(config, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sharedLogsOK asserts that root's current release links logs and var/run
// into root/shared and that validate wrote there.
func sharedLogsOK(t *testing.T, host, root string) {
	t.Helper()
	for name, link := range map[string]string{"logs": "../../shared/logs", "var/run": "../../../shared/var/run"} {
		got, err := os.Readlink(filepath.Join(root, "current", name))
		if err != nil || got != link {
			t.Errorf("%s: current/%s -> %q (%v), want %q", host, name, got, err, link)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "shared", "logs", "validate.log")); err != nil {
		t.Errorf("%s: validate did not write through the shared dir: %v", host, err)
	}
}

func TestE2ESharedDirsLocal(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: e2eGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	v1 := writeRelease(t, f, "1.0.0", true)

	// Without shared_dirs the validate has no logs/ and the deploy stops
	// before any host switched.
	needLogsToValidate(t, f.Config, false)
	r := deploy(t, f, v1, "--yes")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "logs/validate.log") {
		t.Fatalf("validate needing logs/ passed without shared_dirs: %s", r)
	}

	needLogsToValidate(t, f.Config, true)
	mustExit(t, deploy(t, f, v1, "--yes"), 0)
	wantServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		sharedLogsOK(t, h.Name, f.DeployRoot(h.Name))
		// The service writes its own log through current/logs.
		if err := os.WriteFile(filepath.Join(f.DeployRoot(h.Name), "current", "logs", "app.log"), []byte("1.0.0 was here\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	mustExit(t, deploy(t, f, writeRelease(t, f, "1.1.0", true), "--yes"), 0)
	mustExit(t, runDrover(t, "rollback", "-c", f.Config, "--yes"), 0)
	wantServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		sharedLogsOK(t, h.Name, f.DeployRoot(h.Name))
		b, err := os.ReadFile(filepath.Join(f.DeployRoot(h.Name), "current", "logs", "app.log"))
		if err != nil || string(b) != "1.0.0 was here\n" {
			t.Errorf("%s: the shared log after a new release and a rollback: %q %v", h.Name, b, err)
		}
	}

	// A release shipping logs/ is refused, naming host and file; nothing
	// switches.
	bad := writeRelease(t, f, "1.2.0", true)
	if err := os.MkdirAll(filepath.Join(bad, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "logs", "old.log"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = deploy(t, f, bad, "--yes")
	if r.code == 0 {
		t.Fatalf("a release shipping logs/ deployed: %s", r)
	}
	for _, want := range []string{"h01", "shared dir logs", "ships logs/"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("refusal lacks %q: %s", want, r)
		}
	}
	wantServing(t, f, "1.0.0", nil)

	// A shared dir outside the release is a config error at its line.
	b, _ := os.ReadFile(f.Config)
	cfg := strings.Replace(string(b), "shared_dirs: [logs, var/run]\n", "shared_dirs:\n  - logs\n  - ../etc\n", 1)
	line := strings.Count(cfg[:strings.Index(cfg, "  - ../etc")], "\n") + 1
	os.WriteFile(f.Config, []byte(cfg), 0o644)
	r = deploy(t, f, v1, "--yes")
	mustExit(t, r, 2)
	if want := "drover.yaml:" + strconv.Itoa(line); !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, `"../etc" leaves the release directory`) {
		t.Fatalf("config error lacks %s: %s", want, r)
	}
}

// Over SSH the host side (`drover host stage`) makes and links the shared
// dirs; the data survives a rollback there too.
func TestE2ESharedDirsSSH(t *testing.T) {
	t.Parallel()
	f := startSSHFleet(t, droverHeld(sshfleet.Options{Dir: t.TempDir(), Hosts: 2}))
	needLogsToValidate(t, f.Config, true)
	mustExit(t, runDrover(t, "deploy", "-c", f.Config, "--release", sshRelease(t, f, "1.0.0"), "--yes"), 0)
	for _, h := range f.Hosts {
		sharedLogsOK(t, h.Name, h.Root)
		os.WriteFile(filepath.Join(h.Root, "current", "logs", "app.log"), []byte("kept\n"), 0o644)
	}
	mustExit(t, runDrover(t, "deploy", "-c", f.Config, "--release", sshRelease(t, f, "1.1.0"), "--yes"), 0)
	mustExit(t, runDrover(t, "rollback", "-c", f.Config, "--yes"), 0)
	sshServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		sharedLogsOK(t, h.Name, h.Root)
		if b, err := os.ReadFile(filepath.Join(h.Root, "current", "logs", "app.log")); err != nil || string(b) != "kept\n" {
			t.Errorf("%s: shared log after rollback: %q %v", h.Name, b, err)
		}
	}
}
