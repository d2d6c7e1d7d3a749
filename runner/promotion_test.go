package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/release"
)

// TestDeployPromotion: prod requires staging with a 30m soak. Both share
// one store, as operators sharing etcd or a drover server do; the clock is
// injected, so the soak passes without waiting.
func TestDeployPromotion(t *testing.T) {
	ctx := context.Background()
	stagingSpec, prodSpec := testSpec(2), testSpec(2)
	stagingSpec.Env, stagingSpec.RequiredBy = "staging", []string{"prod"}
	prodSpec.Env = "prod"
	prodSpec.Requires = &drover.Requirement{Env: "staging", Soak: 30 * time.Minute, Hosts: hostNames(2)}
	staging, prod := newEnv(t, stagingSpec), newEnv(t, prodSpec)
	prod.store.Store = staging.store.Store
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	staging.r.Now, prod.r.Now = clock.Now, clock.Now
	n := 0
	prod.r.NewID = func() string { n++; return fmt.Sprintf("p-%04d", n) }
	bundles := release.Dir{Root: filepath.Join(t.TempDir(), "bundles")}
	staging.r.Bundles, prod.r.Bundles = bundles, bundles

	v1 := mkRelease(t, "1.0.0")
	refused := func(rel *drover.Release, want ...string) {
		t.Helper()
		mark := prod.log.mark()
		_, err := prod.r.Deploy(ctx, DeployOptions{Release: rel, Force: true})
		if drover.ErrorCode(err) != drover.EINVALID || drover.ErrorHint(err) == "" {
			t.Fatalf("deploy %s to prod: want EINVALID with a hint, got %v", rel.ID(), err)
		}
		for _, w := range append(want, "prod accepts only releases that ran in staging", rel.ID()) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("refusal lacks %q:\n%v", w, err)
			}
		}
		// Refused before the lock: no host, no journal, no lock touched.
		if calls := prod.log.since(mark); len(calls) > 0 {
			t.Errorf("a refused deploy made calls: %+v", calls)
		}
	}
	refused(v1, "never succeeded in staging")
	// plan and converge refuse it too, before they touch anything.
	if _, err := prod.r.Plan(ctx, DeployOptions{Release: v1}); drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "never succeeded in staging") {
		t.Errorf("plan of a release that never ran in staging: %v", err)
	}
	mark := prod.log.mark()
	if _, err := prod.r.Converge(ctx, ConvergeOptions{Release: v1}); drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "never succeeded in staging") {
		t.Errorf("converge of a release that never ran in staging: %v", err)
	}
	if calls := prod.log.since(mark); len(calls) > 0 {
		t.Errorf("a refused converge made calls: %+v", calls)
	}

	staging.mustDeploy(v1, "")
	if p, err := bundles.Path("hello", v1.ID()); err != nil {
		t.Fatalf("staging's bundle not kept: %v", err)
	} else if b, _ := os.ReadFile(p); len(b) != int(v1.BundleSize) {
		t.Fatalf("kept bundle is %d bytes, want %d", len(b), v1.BundleSize)
	}
	refused(v1, "of its 30m soak", "to go")
	// The same version built from other content is another release.
	v1b := mkRelease(t, "1.0.0")
	v1b.Manifest.ID = "1.0.0-0123456789ab"
	refused(v1b, "never succeeded in staging, which runs "+v1.ID(), "the same version 1.0.0")

	clock.mu.Lock()
	clock.t = clock.t.Add(31 * time.Minute)
	clock.mu.Unlock()
	out := prod.mustDeploy(v1, "")
	var noted bool
	for _, ev := range prod.events.all() {
		noted = noted || ev.Deploy == out.DeployID && ev.Kind == drover.EventNotice && strings.Contains(ev.Message, "promotion: release "+v1.ID())
	}
	if !noted {
		t.Errorf("the accepted promotion is not on the deploy's record: %+v", prod.events.all())
	}
	// prod is required by no one: its bundles are not kept.
	if ents, _ := os.ReadDir(filepath.Join(bundles.Root, "hello")); len(ents) != 1 {
		t.Errorf("kept bundles %v, want staging's only", ents)
	}

	// A failed deploy in staging resets the soak of what it runs.
	v2 := mkRelease(t, "2.0.0")
	staging.fleet.Fail("h01", opCheck, 1, drover.Errorf(drover.EFAILED, "503 from /health"))
	if o := staging.deploy(ctx, DeployOptions{Release: v2}); o.ExitCode != drover.ExitRolledBack {
		t.Fatalf("bad v2 in staging: exit %d %s", o.ExitCode, o.Summary)
	}
	clock.mu.Lock()
	clock.t = clock.t.Add(time.Hour)
	clock.mu.Unlock()
	refused(v1, "since reset its soak", "halted and rolled back")
	refused(v2, "never succeeded in staging")

	// Nothing configured, nothing changes: a spec without requires deploys
	// whatever it is given.
	prodSpec.Requires = nil
	prod.mustDeploy(v2, "")
}
