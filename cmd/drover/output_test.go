package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
)

// TestHintsThroughTheCLI runs the real binary into errors people meet and
// checks that each says what was wrong, where, and what to try.
func TestHintsThroughTheCLI(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	v1 := writeRelease(t, f, "1.0.0", true)
	mustExit(t, deploy(t, f, v1), 0)

	bad := filepath.Join(t.TempDir(), "drover.yaml")
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, append(cfg, []byte("stage_retires: 3\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		args []string
		code int
		what []string // in the error line(s)
		hint string   // in the hint line
	}{
		{"no config file", []string{"status", "-c", "/nonexistent/drover.yaml"}, 2,
			[]string{"/nonexistent/drover.yaml", "cannot read config file"}, "pass the path of drover.yaml with -c"},
		{"unknown key", []string{"status", "-c", bad}, 2,
			[]string{"drover.yaml:", "stage_retires"}, "stage_retries"},
		{"limit matches nothing", []string{"deploy", "-c", f.Config, "--release", v1, "--limit", "web*"}, 2,
			[]string{`--limit "web*" matches no host`}, "hosts are: h01, h02"},
		{"release missing", []string{"deploy", "-c", f.Config, "--release", "/nonexistent/release"}, 2,
			[]string{"/nonexistent/release"}, "drover release build"},
		{"nothing to roll back to", []string{"rollback", "-c", f.Config, "--yes"}, 2,
			[]string{"cannot roll back, nothing was changed", "host h01", "on its first release 1.0.0", "nothing earlier to roll back to"}, "--to has nothing to name"},
		{"init over a file", []string{"init", "-c", f.Config, "--service", "x", "--hosts", "a"}, 2,
			[]string{f.Config, "already exists"}, "--force"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runDrover(t, c.args...)
			mustExit(t, r, c.code)
			for _, w := range c.what {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if h := hintLine(r.stderr); !strings.Contains(h, c.hint) {
				t.Errorf("hint line %q lacks %q; stderr:\n%s", h, c.hint, r.stderr)
			}
		})
	}
}

// hintLine is the first "hint:" line of stderr.
func hintLine(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "hint: ") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestHintLockHeldNamesHolder: a second deploy while one runs says who
// holds the lock and since when, and exits 5.
func TestHintLockHeldNamesHolder(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	src := writeRelease(t, f, "1.0.0", true)
	restart := filepath.Join(src, "bin", "restart")
	b, err := os.ReadFile(restart)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(restart, bytes.Replace(b, []byte("set -eu\n"), []byte("set -eu\nsleep 2\n"), 1), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := exec.CommandContext(ctx, droverBin, "deploy", "-c", f.Config, "--release", src, "--output", "json")
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	first.Stdout = w
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waited := make(chan error, 1)
	go func() { waited <- first.Wait() }()
	defer func() { cancel(); <-waited }()
	// The first deploy holds the lock from before deploy_start until it
	// ends; its restarts take seconds.
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), `"kind":"`+drover.EventDeployStart+`"`) {
	}
	go func() {
		for sc.Scan() {
		}
	}()
	r := runDrover(t, "deploy", "-c", f.Config, "--release", src)
	mustExit(t, r, drover.ExitLocked)
	for _, w := range []string{"holds the lock", "pid ", "since 20", "deploy d-"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	if h := hintLine(r.stderr); !strings.Contains(h, "wait for it") {
		t.Errorf("hint line %q; stderr:\n%s", h, r.stderr)
	}
	if err := <-waited; err != nil {
		t.Errorf("the first deploy failed: %v", err)
	}
	waited <- nil
}

// TestHintEveryProblemOfAConfig: a config with several problems reports
// each on its own line with its own hint.
func TestHintEveryProblemOfAConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "drover.yaml")
	os.WriteFile(p, []byte("service: hello\ndeploy_root: srv\nkeep_releases: 1\nhosts: [{name: a, address: ./a}]\ngroups: [{name: all, hosts: [\"*\"]}]\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"status", "-c", p}, strings.NewReader(""), &stdout, &stderr)
	if code != drover.ExitUsage {
		t.Fatalf("exit %d, want 2\n%s", code, stderr.String())
	}
	got := stderr.String()
	for _, want := range []string{"2 problems", "drover.yaml:2: deploy_root", "hint: use an absolute path", "drover.yaml:3: keep_releases", "hint: use 2 or more"} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr lacks %q:\n%s", want, got)
		}
	}
}
