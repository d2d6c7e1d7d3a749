package hostops

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"drover"
)

// capLayout lays the host out as Capistrano leaves it: two releases, an
// absolute current link to the newer one, no state.json.
func capLayout(t *testing.T, f *fixture) string {
	t.Helper()
	for _, r := range []string{"20251201120000", "20260101120000"} {
		dir := filepath.Join(f.h.Root, "releases", r)
		os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
		os.WriteFile(filepath.Join(dir, "bin", "app"), []byte("#!/bin/sh\necho "+r+"\n"), 0o755)
		os.WriteFile(filepath.Join(dir, "REVISION"), []byte("abc"+r+"\n"), 0o644)
	}
	link := filepath.Join(f.h.Root, "releases", "20260101120000") // absolute, as cap writes it
	if err := os.Symlink(link, filepath.Join(f.h.Root, "current")); err != nil {
		t.Fatal(err)
	}
	return link
}

func TestForeignLinkIsCurrentNeverNone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	link := capLayout(t, f)
	st, err := f.h.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != "20260101120000" || !st.IsForeign(st.Current) || st.Foreign[st.Current].Link != link {
		t.Fatalf("state %+v", st)
	}
	snap := st.Snapshot()
	if snap.Foreign == nil || snap.Label() != "foreign releases/20260101120000" {
		t.Fatalf("snapshot %+v label %q", snap, snap.Label())
	}
	if _, err := os.Stat(filepath.Join(f.h.Root, drover.StateFile)); !os.IsNotExist(err) {
		t.Fatal("reading the state wrote state.json")
	}

	// A first drover deploy, then its restore: current is the exact
	// link again, state.json records the foreign release.
	v1 := f.build("v1", nil)
	after := f.deploy(v1, 1)
	if after.Previous != "20260101120000" || !after.IsForeign(after.Previous) {
		t.Fatalf("after deploy %+v", after)
	}
	want, err := ForeignHash(ctx, filepath.Join(f.h.Root, "releases", "20260101120000"))
	if err != nil || f.stateFile().Foreign["20260101120000"].Hash != want || len(want) != 64 {
		t.Fatalf("state.json records hash %q, want %q (%v)", f.stateFile().Foreign["20260101120000"].Hash, want, err)
	}
	st, err = f.h.Restore(ctx, drover.RestoreRequest{DeployID: "d", To: snap})
	if err != nil {
		t.Fatal(err)
	}
	if f.link() != link || st.Current != "20260101120000" || !st.IsForeign(st.Current) || st.Previous != "" {
		t.Fatalf("after restore: link %q state %+v", f.link(), st)
	}
	if got := f.stateFile(); !got.IsForeign("20260101120000") {
		t.Fatalf("state.json %+v", got)
	}
	// Restoring again changes nothing.
	if _, err := f.h.Restore(ctx, drover.RestoreRequest{DeployID: "d", To: snap}); err != nil || len(f.stateFile().History) != 2 {
		t.Fatalf("second restore: %v, history %+v", err, f.stateFile().History)
	}
}

func TestRollbackToForeignAndPruneKeepsIt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	link := capLayout(t, f)
	var last drover.HostState
	for i, v := range []string{"v1", "v2", "v3"} {
		last = f.deploy(f.build(v, nil), 1)
		if i == 0 {
			// The journal of a crash keeps only the slot: the host
			// itself completes the record.
			if !last.IsForeign(last.Previous) {
				t.Fatalf("%+v", last)
			}
		}
	}
	if _, err := f.h.Prune(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"20251201120000", "20260101120000"} {
		if _, err := os.Stat(filepath.Join(f.h.Root, "releases", r)); err != nil {
			t.Fatalf("prune removed the foreign release %s", r)
		}
	}
	st, _ := f.h.State(ctx)
	snap, err := f.h.RollbackTarget(st, "20260101120000")
	if err != nil || snap.Foreign == nil || snap.Foreign.Link != link {
		t.Fatalf("rollback target %+v, %v", snap, err)
	}
	// Without the foreign record (a journal that lost it), the slot alone.
	snap.Foreign = nil
	st, err = f.h.Restore(ctx, drover.RestoreRequest{Action: drover.ActionRollback, To: snap})
	if err != nil {
		t.Fatal(err)
	}
	if f.link() != link || !st.IsForeign("20260101120000") {
		t.Fatalf("after rollback link %q state %+v", f.link(), st)
	}
}

func TestRestoreToNoneNeverRemovesForeignCurrent(t *testing.T) {
	f := newFixture(t)
	link := capLayout(t, f)
	_, err := f.h.Restore(context.Background(), drover.RestoreRequest{To: drover.Snapshot{}})
	wantCode(t, err, drover.EFAILED)
	if f.link() != link {
		t.Fatalf("current is %q", f.link())
	}
}

func TestForeignDeployedAfterDrover(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1 := f.build("v1", nil)
	f.deploy(v1, 1)
	dir := filepath.Join(f.h.Root, "releases", "20260101120000")
	os.MkdirAll(dir, 0o755)
	os.Remove(filepath.Join(f.h.Root, "current"))
	os.Symlink("releases/20260101120000", filepath.Join(f.h.Root, "current"))
	st, err := f.h.State(ctx)
	if err != nil || st.Current != "20260101120000" || st.Previous != f.stateFile().Current || !st.IsForeign(st.Current) || st.Version != "" {
		t.Fatalf("state %+v, %v", st, err)
	}
}

func TestLiveDirectoryAndAdopt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	cur := filepath.Join(f.h.Root, "current")
	os.MkdirAll(filepath.Join(cur, "bin"), 0o755)
	os.WriteFile(filepath.Join(cur, "bin", "app"), []byte("v0"), 0o755)
	before, _ := os.Stat(cur)
	st, err := f.h.State(ctx)
	if err != nil || st.LiveDir != LiveDir || st.Current != "" {
		t.Fatalf("state %+v, %v", st, err)
	}
	hash, err := ForeignHash(ctx, cur)
	if err != nil {
		t.Fatal(err)
	}
	// Staging and promoting refuse to clobber it.
	v1 := f.build("v1", nil)
	res := f.stage(v1, 1)
	_, err = f.h.Promote(ctx, drover.PromoteRequest{Slot: res.Slot})
	wantCode(t, err, drover.EFAILED)
	// A stray link from an adopt that crashed before the exchange is
	// replaced.
	slot := drover.ForeignPrefix + hash[:12]
	os.Symlink("releases/"+slot, filepath.Join(f.h.Root, "releases", slot))

	st, err = f.h.Restore(ctx, drover.RestoreRequest{Action: drover.ActionAdopt, DeployID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != slot || !st.IsForeign(slot) || st.Foreign[slot].Hash != hash || st.LiveDir != "" || f.link() != "releases/"+slot {
		t.Fatalf("after adopt %+v link %q", st, f.link())
	}
	after, err := os.Stat(filepath.Join(f.h.Root, "releases", slot))
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("the adopted directory is not the one that was live: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(cur, "bin", "app")); string(got) != "v0" {
		t.Fatalf("current/bin/app = %q", got)
	}
	// Adopt again: nothing to do.
	again, err := f.h.Restore(ctx, drover.RestoreRequest{Action: drover.ActionAdopt})
	if err != nil || !reflect.DeepEqual(again, st) {
		t.Fatalf("second adopt %+v, %v", again, err)
	}
	// Now a deploy and a restore work like on any host.
	after2 := f.promote(v1, res)
	if after2.Previous != slot {
		t.Fatalf("%+v", after2)
	}
	if _, err := f.h.Restore(ctx, drover.RestoreRequest{To: st.Snapshot()}); err != nil || f.link() != "releases/"+slot {
		t.Fatalf("restore: %v, link %q", err, f.link())
	}
}

func TestForeignLinkOutsideReleases(t *testing.T) {
	f := newFixture(t)
	other := t.TempDir()
	os.Symlink(other, filepath.Join(f.h.Root, "current"))
	st, err := f.h.State(context.Background())
	if err != nil || !strings.HasPrefix(st.LiveDir, "link:") {
		t.Fatalf("state %+v, %v", st, err)
	}
	_, err = f.h.Restore(context.Background(), drover.RestoreRequest{To: drover.Snapshot{}})
	wantCode(t, err, drover.EFAILED)
}

func TestStageNeverReplacesForeignSlot(t *testing.T) {
	f := newFixture(t)
	v1 := f.build("v1", nil)
	dir := filepath.Join(f.h.Root, "releases", v1.ID())
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "mine"), []byte("x"), 0o644)
	res := f.stage(v1, 1)
	if res.Slot == v1.ID() {
		t.Fatal("staged over a directory drover did not make")
	}
	if _, err := os.Stat(filepath.Join(dir, "mine")); err != nil {
		t.Fatal(err)
	}
}

// TestOlderStateFileStillReads: a state.json written before foreign
// releases existed reads as it did, and the next write keeps it so.
func TestOlderStateFileStillReads(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1 := f.build("v1", nil)
	f.deploy(v1, 1)
	old := `{"current":"` + v1.ID() + `","previous":"","release":"` + v1.ID() + `","version":"v1","deployed_at":"2025-03-01T12:00:00Z","deploy_id":"d","history":[]}` + "\n"
	if err := os.WriteFile(filepath.Join(f.h.Root, drover.StateFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := f.h.State(ctx)
	if err != nil || st.Current != v1.ID() || st.Version != "v1" || st.Foreign != nil || st.LiveDir != "" {
		t.Fatalf("state %+v, %v", st, err)
	}
	b, _ := json.Marshal(st)
	if strings.Contains(string(b), "foreign") || strings.Contains(string(b), "live_dir") {
		t.Fatalf("a host with no foreign release encodes %s", b)
	}
}

// PruneForeign (prune_foreign: true) removes foreign releases like
// drover's own once they are neither current nor previous, and never
// while they are.
func TestPruneForeignOnlyWhenOperatorSaysSo(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	capLayout(t, f) // current -> 20260101120000, and an older 20251201120000
	exists := func(slot string) bool {
		_, err := os.Stat(filepath.Join(f.h.Root, "releases", slot))
		return err == nil
	}
	// v1: the foreign current becomes previous; neither prune touches it.
	v1 := f.build("v1", nil)
	f.deploy(v1, 1)
	if _, err := f.h.PruneForeign(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if !exists("20260101120000") {
		t.Fatal("PruneForeign removed the foreign release that is previous")
	}
	if exists("20251201120000") {
		t.Fatal("PruneForeign kept an old foreign release beyond keep")
	}
	// v2: the foreign release is neither current nor previous now.
	f.deploy(f.build("v2", nil), 1)
	if _, err := f.h.Prune(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if !exists("20260101120000") {
		t.Fatal("Prune without the operator's word removed a foreign release")
	}
	removed, err := f.h.PruneForeign(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != "20260101120000" || exists("20260101120000") {
		t.Fatalf("PruneForeign removed %v", removed)
	}
	if !exists(v1.ID()) {
		t.Fatal("PruneForeign removed the previous release")
	}
}
