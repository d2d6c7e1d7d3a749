package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/examples/hello"
	"drover/internal/localfleet"
)

// TestE2EForeignPruneAndJSON (issue 20): a host Capistrano left on
// releases/20260101120000. A failed first deploy's JSON result says the
// host went back to that foreign release, with its link; `show --json`
// has it too; after a good deploy `status --json` names it as the
// foreign previous with its link. Pruning keeps it while it is current
// or previous whatever the config says, keeps it afterwards by default,
// and removes it once the operator sets prune_foreign.
func TestE2EForeignPruneAndJSON(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 1, Groups: adoptGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	fastChecks(t, f.Config)
	h := f.Hosts[0]
	root := f.DeployRoot(h.Name)
	foreign := filepath.Join(root, "releases", "20260101120000")
	if err := hello.WriteRelease(foreign, "1.4.2", true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "hello.conf"), []byte(helloConf(h.Name, h.Port, "1.4.2")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(foreign, filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	runTool(t, root, nil, "current/bin/restart", root)
	waitServing(t, func(ctx context.Context) map[string]string { return f.Versions(ctx) }, "1.4.2")

	// A failed first deploy, as JSON: the result line's restore target.
	r := deploy(t, f, badRelease(t), "--yes", "--output", "json")
	mustExit(t, r, 1)
	var result struct {
		Deploy string `json:"deploy"`
		Hosts  []struct {
			Name          string `json:"name"`
			RestoreTarget *struct {
				Label, Release string
				Foreign        *struct{ Link, Hash string }
			} `json:"restore_target"`
		} `json:"hosts"`
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.Contains(l, `"kind":"result"`) {
			if err := json.Unmarshal([]byte(l), &result); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(result.Hosts) != 1 || result.Hosts[0].RestoreTarget == nil {
		t.Fatalf("no restore target in the result line:\n%s", r.stdout)
	}
	if rt := result.Hosts[0].RestoreTarget; rt.Label != "foreign releases/20260101120000" || rt.Release != "20260101120000" || rt.Foreign == nil || rt.Foreign.Link != foreign {
		t.Fatalf("restore target %+v (foreign %+v), want foreign releases/20260101120000 -> %s", rt, rt.Foreign, foreign)
	}
	wantServing(t, f, "1.4.2", nil)
	r = runDrover(t, "show", "-c", f.Config, result.Deploy, "--json")
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, `"link": "`+foreign+`"`) {
		t.Fatalf("show --json lacks the foreign release's link:\n%s", r.stdout)
	}

	setConfig := func(pruneForeign bool) {
		t.Helper()
		b, err := os.ReadFile(f.Config)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(b), "keep_releases: 5\n", "keep_releases: 2\n", 1)
		s = strings.Replace(s, "prune_foreign: true\n", "", 1)
		if pruneForeign {
			s += "prune_foreign: true\n"
		}
		if err := os.WriteFile(f.Config, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() bool {
		_, err := os.Stat(foreign)
		return err == nil
	}

	// The foreign release becomes previous: kept, even with the switch
	// on, and status --json names it with its link.
	setConfig(true)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true), "--yes"), 0)
	if !kept() {
		t.Fatal("prune removed the foreign release while it was previous")
	}
	r = runDrover(t, "status", "-c", f.Config, "--json")
	mustExit(t, r, 0)
	var st struct {
		Hosts []struct {
			Previous              string
			PreviousForeign       bool                         `json:"previous_foreign"`
			PreviousForeignTarget *struct{ Link, Hash string } `json:"previous_foreign_target"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if p := st.Hosts[0]; !p.PreviousForeign || p.PreviousForeignTarget == nil || p.PreviousForeignTarget.Link != foreign || len(p.PreviousForeignTarget.Hash) != 64 {
		t.Fatalf("status --json: %+v\n%s", p, r.stdout)
	}

	// Neither current nor previous: kept by default ...
	setConfig(false)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.1.0", true), "--yes"), 0)
	if !kept() {
		t.Fatal("prune removed a foreign release without prune_foreign")
	}
	// ... and removed once the operator says so.
	setConfig(true)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.2.0", true), "--yes"), 0)
	if kept() {
		t.Fatal("prune_foreign: true kept a foreign release that is neither current nor previous")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "releases"))
	if len(ents) != 2 {
		t.Fatalf("releases/ holds %d entries after prune with keep 2: %v", len(ents), ents)
	}
	wantServing(t, f, "1.2.0", nil)
}
