package runner

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/release"
)

// bgSpec is testSpec(n) with strategy blue-green: blue on the host's port,
// green 1000 above it.
func bgSpec(n int) *drover.Spec {
	s := testSpec(n)
	s.Strategy = drover.StrategyBlueGreen
	s.BlueGreen = drover.BlueGreenSpec{
		Ports:     map[string]string{drover.ColorBlue: "{{.Host.Vars.port}}", drover.ColorGreen: "2{{.Host.Vars.port}}"},
		StartIdle: "bin/start {{.Slot.Color}}", StopIdle: "bin/stop {{.Slot.Color}}", KeepOld: time.Hour,
	}
	return s
}

// mkSlotRelease is a release whose config names the colour's port, as a
// blue/green service's config does.
func mkSlotRelease(t *testing.T, v string) *drover.Release {
	t.Helper()
	src := t.TempDir()
	for name, body := range map[string]string{
		"app.conf.tmpl": "version = {{.Release.Version}}\nlisten = {{.Slot.Port}}\n",
		"bin/app":       "#!/bin/sh\necho " + v + "\n",
	} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := release.Build(context.Background(), src, release.BuildOptions{Service: "hello", Version: v, Out: filepath.Join(t.TempDir(), "hello-"+v+".tar.gz"), Now: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// slotHash is the config hash of rel on h rendered for slot, computed
// with the root's renderer directly (not the planner under test).
func slotHash(t *testing.T, s *drover.Spec, h drover.Host, rel *drover.Release, slot drover.TemplateSlot) string {
	t.Helper()
	tmpl, err := release.ReadFiles(rel, []string{"app.conf.tmpl"})
	if err != nil {
		t.Fatal(err)
	}
	data := drover.NewTemplateData(s, h, rel.ID(), rel.Version())
	data.Slot = slot
	files, err := drover.RenderConfigFiles(s.ConfigFiles, func(p string) ([]byte, error) { return tmpl[path.Clean(p)], nil }, data)
	if err != nil {
		t.Fatal(err)
	}
	return drover.ConfigHash(files)
}

// TestPlanPredictsBlueGreenSkips: on a blue/green fleet, `drover plan`
// says exactly which hosts `drover deploy` then skips. Plan rendered the
// config with no colour while Deploy rendered it with the live colour's
// port: a host live on the release read as changed to plan, and a host on
// the release from a rolling deploy (no colour yet) read as up to date
// although the deploy moves it into a colour.
func TestPlanPredictsBlueGreenSkips(t *testing.T) {
	spec := bgSpec(3)
	e := newEnv(t, spec)
	rel := mkSlotRelease(t, "2.0.0")
	meta := slotMeta{Release: rel.ID(), Version: rel.Version()}
	// h01: live in blue on the release, green idle and stopped.
	h01, _ := spec.Host("h01")
	meta.ConfigHash = slotHash(t, spec, h01, rel, drover.TemplateSlot{Color: drover.ColorBlue, Port: "18001"})
	e.fleet.SetState("h01", drover.HostState{Current: rel.ID(), Release: rel.ID(), Version: "2.0.0", ConfigHash: meta.ConfigHash,
		Live: drover.ColorBlue, Idle: &drover.IdleColor{Color: drover.ColorGreen}}, map[string]slotMeta{rel.ID(): meta})
	// h02: on the release from a rolling deploy: no colour.
	h02, _ := spec.Host("h02")
	meta.ConfigHash = slotHash(t, spec, h02, rel, drover.TemplateSlot{})
	e.fleet.SetState("h02", drover.HostState{Current: rel.ID(), Release: rel.ID(), Version: "2.0.0", ConfigHash: meta.ConfigHash}, map[string]slotMeta{rel.ID(): meta})
	// h03: nothing yet.

	p, err := e.r.Plan(context.Background(), DeployOptions{Release: rel})
	if err != nil {
		t.Fatal(err)
	}
	planned := map[string]string{}
	for _, g := range p.Groups {
		for _, h := range g.Hosts {
			planned[h.Name] = h.Action
			if h.Name == "h03" && (len(h.Diffs) != 1 || !strings.Contains(h.Diffs[0].Diff, "+listen = 18003")) {
				// A first deploy goes to blue: the diff shows blue's port.
				t.Errorf("h03 diff, want the blue port: %+v", h.Diffs)
			}
		}
	}
	want := map[string]string{"h01": "skip", "h02": "deploy", "h03": "deploy"}
	for name, w := range want {
		if planned[name] != w {
			t.Errorf("plan: %s %q, want %q", name, planned[name], w)
		}
	}

	out := e.deploy(context.Background(), DeployOptions{Release: rel})
	for _, h := range e.record(out.DeployID).Hosts {
		if got := h.Skipped; got != (planned[h.Name] == "skip") {
			t.Errorf("deploy skipped %s = %v, but plan said %q", h.Name, got, planned[h.Name])
		}
	}
}

// TestRollbackSetupFailureLeavesNoUnfinishedDeploy: a rollback whose setup
// fails (a blue/green port template that does not render for a host) is
// bad input and leaves no record. restoreHosts began the record and then
// returned on the failure without finishing it: the next deploy found an
// "unfinished" rollback and recovered hosts nobody had touched.
func TestRollbackSetupFailureLeavesNoUnfinishedDeploy(t *testing.T) {
	spec := bgSpec(1)
	e := newEnv(t, spec)
	v1, v2 := mkSlotRelease(t, "1.0.0"), mkSlotRelease(t, "2.0.0")
	slots := map[string]slotMeta{
		v1.ID(): {Release: v1.ID(), Version: "1.0.0"},
		v2.ID(): {Release: v2.ID(), Version: "2.0.0"},
	}
	e.fleet.SetState("h01", drover.HostState{Current: v2.ID(), Previous: v1.ID(), Release: v2.ID(), Version: "2.0.0", Live: drover.ColorGreen,
		Idle: &drover.IdleColor{Color: drover.ColorBlue, Slot: v1.ID(), Release: v1.ID(), Version: "1.0.0", Running: true}}, slots)
	spec.BlueGreen.Ports[drover.ColorGreen] = "{{.Host.Vars.nope}}"
	before := e.states()

	out, err := e.r.Rollback(context.Background(), RollbackOptions{})
	if err == nil {
		t.Fatalf("rollback with a port template that fails: no error, outcome %+v", out)
	}
	if code := drover.ErrorCode(err); code != drover.EINVALID {
		t.Errorf("error code %s, want %s: %v", code, drover.EINVALID, err)
	}
	un, uerr := e.store.Unfinished(context.Background(), Key(spec))
	if uerr != nil {
		t.Fatal(uerr)
	}
	if len(un) != 0 {
		t.Errorf("a failed setup left %d unfinished record(s): %+v", len(un), un)
	}
	e.wantSnapshots(before)
}

// TestDeployFromPlanRefusesChangedFleet: a deploy made from a saved plan
// (Expect) goes ahead while the fleet is as planned, and refuses with
// nothing changed once a host moved since.
func TestDeployFromPlanRefusesChangedFleet(t *testing.T) {
	e := newEnv(t, testSpec(3))
	v1, v2, v3 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0"), mkRelease(t, "3.0.0")
	e.mustDeploy(v1, "")
	p, err := e.r.Plan(context.Background(), DeployOptions{Release: v2})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := e.r.Plan(context.Background(), DeployOptions{Release: v2}); again.Fingerprint != p.Fingerprint || p.Fingerprint == "" {
		t.Fatalf("two plans of an unchanged fleet: fingerprints %q and %q", p.Fingerprint, again.Fingerprint)
	}
	e.mustDeploy(v3, "h02") // someone else deploys meanwhile
	before := e.states()
	_, err = e.r.Deploy(context.Background(), DeployOptions{Release: v2, Expect: p.Fingerprint})
	if drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "changed since the plan") {
		t.Fatalf("deploy from a stale plan: %v, want EINVALID naming the change", err)
	}
	e.wantSnapshots(before)

	p, err = e.r.Plan(context.Background(), DeployOptions{Release: v2})
	if err != nil {
		t.Fatal(err)
	}
	if out := e.deploy(context.Background(), DeployOptions{Release: v2, Expect: p.Fingerprint}); out.ExitCode != 0 {
		t.Fatalf("deploy from a fresh plan: exit %d: %s", out.ExitCode, out.Summary)
	}
}

func TestDiffManifests(t *testing.T) {
	f := func(p, sum string) drover.ManifestFile { return drover.ManifestFile{Path: p, SHA256: sum, Mode: 0o644} }
	from := drover.Manifest{Files: []drover.ManifestFile{f("a", "1"), f("b", "2"), f("c", "3"), {Path: "d", Mode: 0o755, SHA256: "4"}}}
	to := drover.Manifest{Files: []drover.ManifestFile{f("a", "1"), f("b", "9"), {Path: "d", Mode: 0o644, SHA256: "4"}, f("e", "5")}}
	got := diffManifests(from, to)
	if strings.Join(got.Changed, ",") != "b,d" || strings.Join(got.Added, ",") != "e" || strings.Join(got.Removed, ",") != "c" {
		t.Errorf("diff %+v, want changed b,d added e removed c", got)
	}
}
