package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/examples/hello"
	"drover/internal/localfleet"
)

// TestE2EPruneForeign: pruning keeps another tool's release while it is
// current or previous whatever the config says, keeps it afterwards by
// default, and removes it once the operator sets prune_foreign (issue 20).
func TestE2EPruneForeign(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 1, Groups: adoptGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	h := f.Hosts[0]
	root := f.DeployRoot(h.Name)
	foreign := filepath.Join(root, "releases", "20260101120000")
	if err := hello.WriteRelease(foreign, "1.4.2", true); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(foreign, filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
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

	// The foreign release becomes previous: kept, even with the switch on.
	setConfig(true)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true), "--yes"), 0)
	if !kept() {
		t.Fatal("prune removed the foreign release while it was previous")
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
