package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover"
	"drover/config"
)

func runInProcess(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestInitWritesAConfigThatLoads(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		args  []string
		check func(t *testing.T, s *drover.Spec)
	}{
		{"defaults", nil, func(t *testing.T, s *drover.Spec) {
			if len(s.Hosts) != 3 || s.Transport != "local" || len(s.Groups) != 2 || s.Groups[0].Name != "canary" {
				t.Errorf("spec %+v", s)
			}
		}},
		{"hosts and port var", []string{"--service", "api", "--hosts", "web1,web2,web3,web4", "--port-var", "port=18001", "--deploy-root", "/opt/api"}, func(t *testing.T, s *drover.Spec) {
			if s.Service != "api" || len(s.Hosts) != 4 || s.Hosts[3].Name != "web4" || !strings.HasSuffix(s.Hosts[0].DeployRoot, "/opt/api") {
				t.Errorf("spec %+v", s)
			}
			if p := s.Hosts[1].Vars["port"]; p != uint64(18002) {
				t.Errorf("web2 port var %v (%T), want 18002", p, p)
			}
			if len(s.Checks) != 1 || s.Checks[0].Type != "tcp" {
				t.Errorf("checks %+v, want the port check", s.Checks)
			}
			if g := s.Groups[1]; g.Name != "default" || len(g.Hosts) != 3 || g.Batch != 1 {
				t.Errorf("default group %+v", g)
			}
		}},
		{"ssh hosts", []string{"--service", "api", "--transport", "ssh", "--host", "web1=10.0.0.11", "--host", "web2=10.0.0.12:2222"}, func(t *testing.T, s *drover.Spec) {
			if s.Transport != "ssh" || s.Hosts[1].Address != "10.0.0.12:2222" {
				t.Errorf("spec %+v", s)
			}
		}},
		{"one host", []string{"--hosts", "solo"}, func(t *testing.T, s *drover.Spec) {
			if len(s.Groups) != 1 || s.Groups[0].Hosts[0] != "solo" {
				t.Errorf("groups %+v", s.Groups)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "drover.yaml")
			code, out, errOut := runInProcess(t, "", append([]string{"init", "-c", path}, c.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			spec, err := config.Load(path, "")
			if err != nil {
				b, _ := os.ReadFile(path)
				t.Fatalf("the written file does not load: %v\n%s", err, b)
			}
			c.check(t, spec)
			b, _ := os.ReadFile(path)
			if n := strings.Count(string(b), "\n#"); n < 10 {
				t.Errorf("only %d comment lines:\n%s", n, b)
			}
		})
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(path, []byte("mine\n"), 0o644)
	code, _, errOut := runInProcess(t, "", "init", "-c", path, "--hosts", "a")
	if code != drover.ExitUsage || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "hint: pass --force") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine\n" {
		t.Fatalf("the file was changed: %q", b)
	}
	if code, _, errOut := runInProcess(t, "", "init", "-c", path, "--hosts", "a", "--force"); code != 0 {
		t.Fatalf("--force: exit %d\n%s", code, errOut)
	}
	if _, err := config.Load(path, ""); err != nil {
		t.Fatal(err)
	}
}

func TestInitBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--service", "no spaces allowed"},
		{"--transport", "carrier-pigeon"},
		{"--host", "web1"},
		{"--port-var", "port=99999"},
		{"--transport", "ssh", "--host", "web1=user@web1"},
	} {
		path := filepath.Join(t.TempDir(), "drover.yaml")
		code, _, errOut := runInProcess(t, "", append([]string{"init", "-c", path}, args...)...)
		if code != drover.ExitUsage {
			t.Errorf("init %v: exit %d, want 2\n%s", args, code, errOut)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("init %v wrote the file", args)
		}
		if !strings.Contains(errOut, "drover:") {
			t.Errorf("init %v: no error message:\n%s", args, errOut)
		}
	}
}

// TestInitNeverAsksWithoutATerminal: answers on a pipe are not read; the
// defaults are taken.
func TestInitNeverAsksWithoutATerminal(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "drover.yaml")
	code, out, errOut := runInProcess(t, "evil\nssh\n", "init", "-c", path, "--service", "svc")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if strings.Contains(out, "[") {
		t.Errorf("asked without a terminal:\n%s", out)
	}
	s, err := config.Load(path, "")
	if err != nil || s.Transport != "local" {
		t.Fatalf("spec %+v, %v", s, err)
	}
}

// TestInitMakesLocalHostDirectories: transport local takes a missing host
// directory for a host that is down, so init makes them, and the fleet it
// wrote is reachable at once; ssh hosts are left alone; a directory that
// cannot be made is printed as the mkdir to run.
func TestInitMakesLocalHostDirectories(t *testing.T) {
	t.Setenv("DROVER_STATE_DIR", t.TempDir())
	dir := t.TempDir()
	path := filepath.Join(dir, "drover.yaml")
	code, out, errOut := runInProcess(t, "", "init", "-c", path, "--service", "svc", "--hosts", "h01,h02", "--host", "h03=other/h03")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, d := range []string{"fleet/h01", "fleet/h02", "other/h03"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("host directory %s not made: %v", d, err)
		}
		if !strings.Contains(out, filepath.Join(dir, d)) {
			t.Errorf("output does not name %s:\n%s", d, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "fleet", "h01", "srv")); err == nil {
		t.Error("init made the deploy root too; the first deploy does")
	}
	if code, out, errOut := runInProcess(t, "", "status", "-c", path); code != 0 || strings.Contains(out, "NO:") {
		t.Fatalf("status right after init: exit %d\n%s%s", code, out, errOut)
	}

	// ssh: nothing is made.
	sdir := t.TempDir()
	if code, out, errOut := runInProcess(t, "", "init", "-c", filepath.Join(sdir, "drover.yaml"), "--transport", "ssh", "--hosts", "web1"); code != 0 || strings.Contains(out, "made") {
		t.Fatalf("ssh init: exit %d\n%s%s", code, out, errOut)
	}
	if ents, _ := os.ReadDir(sdir); len(ents) != 1 {
		t.Fatalf("ssh init made %v", ents)
	}

	// A file where the fleet directory goes: the file is written, and the
	// command to make the directories is printed.
	bdir := t.TempDir()
	os.WriteFile(filepath.Join(bdir, "fleet"), []byte("in the way"), 0o644)
	code, out, errOut = runInProcess(t, "", "init", "-c", filepath.Join(bdir, "drover.yaml"), "--hosts", "h01")
	if code != 0 || !strings.Contains(out, "mkdir -p "+filepath.Join(bdir, "fleet", "h01")) || !strings.Contains(errOut, "host h01") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}
