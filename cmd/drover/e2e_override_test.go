package main

import (
	"encoding/json"
	"strings"
	"testing"

	"drover"
	"drover/internal/localfleet"
)

// TestE2EOverrides: a release that fails the no-errors log check (it logs
// an ERROR at start, healthy otherwise) is deployed in an emergency with
// --skip-check no-errors -m REASON. Without a reason, or with a check the
// config does not have, nothing is touched (exit 2). With both, the deploy
// succeeds and the override is on the record: the deploy_start event,
// `drover show`, `drover history`. The next plain deploy of the same kind
// of release runs the check again: an override is never carried to the
// next deploy.
func TestE2EOverrides(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: e2eGroups, ExtraChecks: logChecks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)

	bad := withStartupError(t, writeRelease(t, f, "2.0.0", true))
	r := deploy(t, f, bad, "--skip-check", "no-errors")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "needs a reason") || !strings.Contains(r.stderr, "-m") {
		t.Errorf("an override without -m must say it needs a reason:\n%s", r)
	}
	r = deploy(t, f, bad, "--skip-check", "no-eror", "-m", "INC-42")
	mustExit(t, r, 2)
	for _, want := range []string{`"no-eror"`, "started, no-errors"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("an unknown check must be named and the known ones listed (%s):\n%s", want, r)
		}
	}
	r = deploy(t, f, bad, "--skip-gate", "canary:bake", "-m", "INC-42")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "smoke, invariant, analysis, wait, approve, confirm") {
		t.Errorf("an unknown gate kind must list the kinds:\n%s", r)
	}
	r = runDrover(t, "converge", "-c", f.Config, "--release", bad, "--skip-analysis", "p99", "-m", "INC-42")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, `--skip-analysis "p99"`) || !strings.Contains(r.stderr, "(none)") {
		t.Errorf("converge must check its overrides too:\n%s", r)
	}
	wantServing(t, f, "1.0.0", nil)

	const reason = "INC-42: cache dir missing on purpose, fixed in 2.0.1"
	r = deploy(t, f, bad, "--skip-check", "no-errors", "-m", reason, "--output", "json")
	mustExit(t, r, 0)
	wantServing(t, f, "2.0.0", nil)
	var id string
	var start drover.Event
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e drover.Event
		if json.Unmarshal([]byte(line), &e) == nil && e.Kind == drover.EventDeployStart {
			start, id = e, e.Deploy
		}
	}
	want := drover.Override{Kind: drover.OverrideCheck, Name: "no-errors", Reason: reason}
	if len(start.Overrides) != 1 || start.Overrides[0] != want {
		t.Errorf("deploy_start carries overrides %+v, want [%+v]", start.Overrides, want)
	}

	r = runDrover(t, "show", "-c", f.Config, id)
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "OVERRIDE  skipped check no-errors: "+reason) {
		t.Errorf("show lacks the override:\n%s", r.stdout)
	}
	r = runDrover(t, "history", "-c", f.Config, "-n", "2")
	mustExit(t, r, 0)
	if lines := strings.Split(r.stdout, "\n"); len(lines) < 3 || !strings.Contains(lines[1], id+"  deploy!") || strings.Contains(lines[2], "deploy!") {
		t.Errorf("history must mark the overridden deploy (and only it) deploy!:\n%s", r.stdout)
	}

	// Not carried: the next deploy runs no-errors again, and fails it. Its
	// restore goes back to 2.0.0, which logs the same ERROR, and that
	// check runs too (the override was 2.0.0's deploy's, not 2.0.0's):
	// h01 needs a person, exit 3, which is what an operator must be told
	// about a fleet running a release that fails its checks.
	r = deploy(t, f, withStartupError(t, writeRelease(t, f, "3.0.0", true)))
	mustExit(t, r, 3)
	out := r.stdout + r.stderr
	for _, want := range []string{`"hello 3.0.0: ERROR cannot open cache`, `while restoring: check: no-errors`} {
		if !strings.Contains(out, want) {
			t.Errorf("the plain deploy after the override must run no-errors (%s):\n%s", want, r)
		}
	}
	if strings.Contains(out, "OVERRIDE") {
		t.Errorf("the plain deploy shows an override:\n%s", r)
	}
}
