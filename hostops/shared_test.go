package hostops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
)

func (f *fixture) stageShared(r *drover.Release, validate string, shared ...string) (drover.StageResult, error) {
	req := f.req(r, 1, validate)
	req.SharedDirs = shared
	return f.h.StageFile(context.Background(), r.BundlePath, req)
}

// A validate that writes into a shared dir passes on a fresh host (no
// before_stage mkdir), and what it wrote is under <root>/shared.
func TestSharedDirsLinkedBeforeValidate(t *testing.T) {
	f := newFixture(t)
	v1 := f.build("v1", nil)
	// As `nginx -t` does: opens its log and pid files, relative to the
	// release directory.
	res, err := f.stageShared(v1, "echo checked >> logs/validate.log && : > var/run/app.pid", "logs", "var/run")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, link string }{{"logs", "../../shared/logs"}, {"var/run", "../../../shared/var/run"}} {
		l, err := os.Readlink(filepath.Join(f.h.Root, "releases", res.Slot, c.name))
		if err != nil || l != c.link {
			t.Fatalf("%s in the release: link %q (%v), want %q", c.name, l, err, c.link)
		}
	}
	b, err := os.ReadFile(filepath.Join(f.h.Root, "shared", "logs", "validate.log"))
	if err != nil || string(b) != "checked\n" {
		t.Fatalf("shared/logs/validate.log: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(f.h.Root, "shared", "var", "run", "app.pid")); err != nil {
		t.Fatal(err)
	}
	// Without shared dirs the same validate fails: the test tests the
	// links, not the command.
	g := newFixture(t)
	if _, err := g.stageShared(g.build("v1", nil), "echo checked >> logs/validate.log"); err == nil {
		t.Fatal("validate writing to logs/ passed without shared dirs")
	}
}

// The slot hash depends on the shared dirs (a host staged without them is
// not up to date once they are configured) and equals ConfigHash without.
func TestSharedDirsInSlotHash(t *testing.T) {
	f := newFixture(t)
	v1 := f.build("v1", nil)
	plain := f.stage(v1, 1)
	res, err := f.stageShared(v1, "", "logs")
	if err != nil {
		t.Fatal(err)
	}
	if res.ConfigHash == plain.ConfigHash || res.Reused {
		t.Fatalf("staged with shared dirs: %+v, without: %+v", res, plain)
	}
	again, err := f.stageShared(v1, "", "logs")
	if err != nil || !again.Reused || again.Slot != res.Slot {
		t.Fatalf("restage: %+v %v", again, err)
	}
	if drover.SlotHash(nil, nil) != drover.ConfigHash(nil) {
		t.Fatal("SlotHash without shared dirs differs from ConfigHash")
	}
}

// Data in a shared dir survives a new release, a restore to the old one
// and pruning of the release it was written through.
func TestSharedDirsSurviveRollbackAndPrune(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var slots []string
	var snaps []drover.Snapshot
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		r := f.build(v, nil)
		res, err := f.stageShared(r, "", "logs")
		if err != nil {
			t.Fatal(err)
		}
		st := f.promote(r, res)
		slots = append(slots, res.Slot)
		snaps = append(snaps, st.Snapshot())
		// The service writes through current/logs.
		if err := os.WriteFile(filepath.Join(f.h.Root, "current", "logs", v+".log"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.h.Restore(ctx, drover.RestoreRequest{DeployID: "rb", To: snaps[2], Action: drover.ActionRollback, At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	removed, err := f.h.Prune(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || removed[0] != slots[0] && removed[1] != slots[0] {
		t.Fatalf("pruned %v, want v1 and v2 (%v)", removed, slots[:2])
	}
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		b, err := os.ReadFile(filepath.Join(f.h.Root, "current", "logs", v+".log"))
		if err != nil || string(b) != v {
			t.Fatalf("shared log of %s after rollback and prune: %q %v", v, b, err)
		}
	}
}

// A release that ships something where a shared dir goes is refused with
// the file named; an empty placeholder directory is replaced.
func TestSharedDirsCollision(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  map[string]string
		shared string
		msg    string
	}{
		{"file", map[string]string{"logs": "not a dir\n"}, "logs", "ships logs (a file)"},
		{"dir with files", map[string]string{"logs/old.log": "x\n"}, "logs", "ships logs/ (a directory with files in it)"},
		{"symlink", map[string]string{"logs": "->bin"}, "logs", "ships logs (a symlink)"},
		{"parent symlink", map[string]string{"var": "->bin"}, "var/run", "ships var (a symlink)"},
		{"parent file", map[string]string{"var": "x\n"}, "var/run", "ships var (a file)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r := f.build("v1", tc.extra)
			_, err := f.stageShared(r, "", tc.shared)
			wantCode(t, err, drover.EINVALID)
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "shared dir "+tc.shared) {
				t.Fatalf("error %q, want %q", err, tc.msg)
			}
			if got := f.releaseEntries(); len(got) != 0 {
				t.Fatalf("a refused stage left %v", got)
			}
		})
	}
}

// Hostile shared dir names from a request are refused on the host too,
// and a config file may not be rendered into a shared dir.
func TestSharedDirsBadRequest(t *testing.T) {
	for _, tc := range []struct {
		shared []string
		msg    string
	}{
		{[]string{"../../etc"}, "leaves the release directory"},
		{[]string{"/etc"}, "is absolute"},
		{[]string{"logs", "logs/x"}, "overlap"},
		{[]string{"."}, "release directory itself"},
	} {
		f := newFixture(t)
		_, err := f.stageShared(f.build("v1", nil), "", tc.shared...)
		wantCode(t, err, drover.EINVALID)
		if !strings.Contains(err.Error(), tc.msg) {
			t.Fatalf("%q: error %q, want %q", tc.shared, err, tc.msg)
		}
		if _, err := os.Stat(filepath.Join(f.h.Root, "shared")); err == nil && tc.shared[0] != "logs" {
			t.Fatalf("%q: made shared/", tc.shared)
		}
	}
	f := newFixture(t)
	req := f.req(f.build("v1", nil), 1, "")
	req.ConfigFiles[0].Dest = "logs/hello.conf"
	req.SharedDirs = []string{"logs"}
	_, err := f.h.StageFile(context.Background(), req.Release.BundlePath, req)
	wantCode(t, err, drover.EINVALID)
	if !strings.Contains(err.Error(), "inside shared dir logs") {
		t.Fatalf("error %q", err)
	}
}
