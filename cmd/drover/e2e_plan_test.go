package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runDroverTmp runs drover with TMPDIR set to tmp, so a test sees every
// scratch directory it makes (and that it removes them).
func runDroverTmp(t *testing.T, tmp string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
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
		t.Fatalf("drover %v: %v", args, err)
	}
	return r
}

// TestE2EPlanValidatesAndGuardsDeploy: plan runs the release's validate
// commands on every host it would change, in a scratch directory it
// removes, and exits 1 naming the host whose config would fail; it lists
// the release files that change; it exits 3 when a host is unreachable;
// and a deploy made from a saved plan refuses, with nothing changed, once
// the fleet moved since the plan.
func TestE2EPlanValidatesAndGuardsDeploy(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 4)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)

	// 2.0.0 adds a file, and its config is one h03's service refuses.
	bad := writeRelease(t, f, "2.0.0", true)
	if err := os.WriteFile(filepath.Join(bad, "NOTES"), []byte("new in 2.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(bad, "hello.conf.tmpl")
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl, append(b, []byte("{{if eq .Host.Name \"h03\"}}port = not-a-port\n{{end}}")...), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := hostsDigest(t, f)
	tmp := t.TempDir()
	r := runDroverTmp(t, tmp, "plan", "-c", f.Config, "--release", bad, "--diff")
	mustExit(t, r, 1)
	for _, want := range []string{"validate: FAILED", "not-a-port", "validate: ok", "1 added, 0 removed", "+ NOTES", "(1 would fail validate)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, r.stdout)
		}
	}
	if i := strings.Index(r.stdout, "validate: FAILED"); i < 0 || !strings.Contains(r.stdout[strings.LastIndex(r.stdout[:i], "h0"):i], "h03") {
		t.Errorf("the failed validate is not h03's:\n%s", r.stdout)
	}
	if d := diffDigests(hosts, hostsDigest(t, f)); len(d) > 0 {
		t.Errorf("plan changed hosts:\n%s", strings.Join(d, "\n"))
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("plan left %d scratch entries in TMPDIR: %v", len(left), left[0].Name())
	}

	// A good release, planned and saved; someone deploys meanwhile.
	v2 := writeRelease(t, f, "2.0.1", true)
	planFile := filepath.Join(t.TempDir(), "plan.json")
	mustExit(t, runDrover(t, "plan", "-c", f.Config, "--release", v2, "-o", planFile), 0)
	mustExit(t, deploy(t, f, v2, "--limit", "h02"), 0)
	hosts = hostsDigest(t, f)
	r = deploy(t, f, v2, "--plan", planFile)
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "changed since the plan") {
		t.Errorf("stale plan refusal does not say why:\n%s", r)
	}
	if d := diffDigests(hosts, hostsDigest(t, f)); len(d) > 0 {
		t.Errorf("a refused deploy changed hosts:\n%s", strings.Join(d, "\n"))
	}
	mustExit(t, runDrover(t, "plan", "-c", f.Config, "--release", v2, "-o", planFile), 0)
	mustExit(t, deploy(t, f, v2, "--plan", planFile), 0)
	wantServing(t, f, "2.0.1", nil)

	// A host that does not answer: exit 3, as status.
	h4, _ := f.Host("h04")
	if err := os.Rename(h4.Dir, h4.Dir+".away"); err != nil {
		t.Fatal(err)
	}
	r = runDrover(t, "plan", "-c", f.Config, "--release", writeRelease(t, f, "2.0.2", true))
	if err := os.Rename(h4.Dir+".away", h4.Dir); err != nil {
		t.Fatal(err)
	}
	mustExit(t, r, 3)
	if !strings.Contains(r.stdout, "h04") || !strings.Contains(r.stdout, "unreachable") {
		t.Errorf("plan does not name the unreachable host:\n%s", r.stdout)
	}
}
