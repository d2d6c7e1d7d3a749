package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover/internal/localfleet"
	"drover/internal/tmpfsns"
)

// The disk under state_dir fills in the middle of a deploy: a real 8 MB
// tmpfs (internal/tmpfsns: mounted in a mount namespace of the test's own,
// drover and its hooks run in it), filled to
// the last byte by h02's before_restart hook. The next journal write —
// SQLite's, into its WAL — fails, and the deploy freezes there: no step
// starts on any host, drover exits 3 saying why and what to do. Once the
// disk has room, `drover resume` takes the hosts the deploy touched back
// to 1.0.0.
func TestE2EStateDiskFullFreezes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	ns := tmpfsns.New(t, state, "8m")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// in runs drover in the namespace, where state is the tmpfs.
	in := func(args ...string) result {
		t.Helper()
		return runCmd(t, ns.Command(ctx, droverBin, args...))
	}

	fill := filepath.Join(state, "fill")
	trigger := filepath.Join(dir, "fill-the-disk")
	f, err := localfleet.New(localfleet.Options{
		Dir: dir, Hosts: 4, StateDir: state,
		Groups: "groups:\n  - {name: canary, hosts: [h01], batch: 1, failure_limit: 0}\n  - {name: default, hosts: [\"h*\"], batch: 1}\n",
		// h02, once the test says so, fills the disk under state_dir to
		// its last byte (dd stops at ENOSPC).
		ExtraHooks: fmt.Sprintf("before_restart: %q", fmt.Sprintf("if [ {{.Host.Name}} = h02 ] && [ -e %s ]; then dd if=/dev/zero of=%s bs=64k 2>/dev/null; true; fi", trigger, fill)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	v1, v2 := writeRelease(t, f, "1.0.0", true), writeRelease(t, f, "2.0.0", true)
	mustExit(t, in("deploy", "-c", f.Config, "--release", v1), 0)
	wantServing(t, f, "1.0.0", nil)

	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := in("deploy", "-c", f.Config, "--release", v2)
	mustExit(t, r, 3)
	t.Logf("the deploy that filled the disk: %s", r)
	for _, want := range []string{"the journal cannot be written", "drover resume"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("the frozen deploy does not say %q:\n%s", want, r)
		}
	}
	if !strings.Contains(r.stdout+r.stderr, "full") && !strings.Contains(r.stdout+r.stderr, "no space left") {
		t.Errorf("the frozen deploy does not name the full disk:\n%s", r)
	}
	// Nothing after h02's before_restart: h03 and h04 were never touched.
	for _, h := range []string{"h03", "h04"} {
		if st := readState(t, f, h); !strings.HasPrefix(st.Current, "1.0.0-") {
			t.Errorf("%s is on %s after the journal filled the disk, want untouched on 1.0.0", h, st.Current)
		}
	}

	// Room again (and h02's hook no longer fills it).
	if err := os.Remove(trigger); err != nil {
		t.Fatal(err)
	}
	if err := ns.Run(ctx, "rm", fill); err != nil {
		t.Fatal(err)
	}
	r = in("resume", "-c", f.Config)
	mustExit(t, r, 0)
	wantServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		if st := readState(t, f, h.Name); !strings.HasPrefix(st.Current, "1.0.0-") {
			t.Errorf("%s is on %s after resume, want 1.0.0", h.Name, st.Current)
		}
	}
}
