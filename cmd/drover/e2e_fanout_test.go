package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/internal/sshfleet"
)

// TestE2EFanoutRelay: six real sshd hosts with distribution.mode relay,
// one seed and fanout 2 — h01 gets the bundle from this machine and
// relays it to h02 and h03, h02 to h04 and h05, h03 to h06. Relays pass
// the bundle on as it arrives (h02 fetches from h01 while h01 receives
// it). h02's copy is damaged after it staged (its after_stage hook
// overwrites a byte inside its cached bundle — a byte appended would not
// do: a relay never serves more than the bundle's size), and two hosts
// stage at a time,
// so h04 and h05 only start once h02 is done: h02 serves them a bundle
// whose checksum is wrong, and they detect it, keep nothing, and fetch
// from h01. Every host ends on the release, nothing unverified is left or
// staged, and no relay outlives the deploy.
func TestE2EFanoutRelay(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := startSSHFleet(t, droverHeld(sshfleet.Options{Dir: dir, Hosts: 6,
		ExtraYAML: "distribution: {mode: relay, seeds: 1, fanout: 2}\nstage_parallelism: 2\n"}))
	b, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	const corrupt = `  after_stage: 'if [ "$DROVER_HOST" = h02 ]; then for b in "$DROVER_ROOT"/.drover/bundles/*.tar.gz; do printf X | dd of="$b" bs=1 seek=2048 conv=notrunc 2>/dev/null; done; fi'` + "\n"
	cfg := strings.Replace(string(b), "hooks:\n", "hooks:\n"+corrupt, 1)
	if err := os.WriteFile(f.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	v1 := sshRelease(t, f, "1.0.0")

	r := runDrover(t, "deploy", "-c", f.Config, "--release", v1, "--output", "json")
	mustExit(t, r, 0)
	sshServing(t, f, "1.0.0", nil)
	out := r.stdout + r.stderr
	for _, want := range []string{
		"relay distribution: 6 hosts in a tree 3 deep: 1 seeds from this machine, each host serving up to 2",
		"has sha256", "not kept",
		"5 hosts got the bundle from other hosts, 1 from this machine, 2 after their first source failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	for _, h := range []string{"h04", "h05"} {
		if !strings.Contains(out, "fetching the bundle from h02 failed, fetching it from h01") && !strings.Contains(out, "h02 has no bundle to relay, fetching it from h01") {
			t.Errorf("%s did not fall back from h02 to h01:\n%s", h, r)
		}
	}
	if strings.Contains(out, "Bearer") || strings.Contains(strings.ToLower(out), "token") {
		t.Errorf("the output mentions the relay token:\n%s", r)
	}
	for _, h := range f.Hosts {
		ents, _ := os.ReadDir(filepath.Join(h.Root, ".drover", "bundles"))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-") || strings.HasPrefix(e.Name(), ".part-") {
				t.Errorf("%s: an unverified download %s was left", h.Name, e.Name())
			}
		}
		ents, _ = os.ReadDir(filepath.Join(h.Root, "releases"))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s: leftover %s in releases/", h.Name, e.Name())
			}
		}
	}
	// Every relay ended with the deploy: no `drover host relay-serve`
	// of this fleet is running.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cl, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(cl), "relay-serve") && strings.Contains(string(cl), dir) {
			t.Errorf("a relay outlived the deploy: %s", strings.ReplaceAll(string(cl), "\x00", " "))
		}
	}
}
