package hostops

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/release"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock advancing a minute per call.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { c.t = c.t.Add(time.Minute); return c.t }

// fixture is one host and a place to build releases.
type fixture struct {
	t     *testing.T
	h     *Host
	clock *clock
	dir   string
}

func newFixture(t *testing.T) *fixture {
	c := &clock{t: t0}
	root := filepath.Join(t.TempDir(), "srv", "hello")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, h: &Host{Root: root, Now: c.Now}, clock: c, dir: t.TempDir()}
}

// build makes release version with the standard template and extra files.
func (f *fixture) build(version string, extra map[string]string) *drover.Release {
	f.t.Helper()
	src := filepath.Join(f.dir, "src-"+version)
	files := map[string]string{
		"bin/app":         "#!/bin/sh\necho " + version + "\n",
		"hello.conf.tmpl": "port = {{.Host.Vars.port}}\nversion = {{.Release.Version}}\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, content := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				f.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			f.t.Fatal(err)
		}
	}
	r, err := release.Build(context.Background(), src, release.BuildOptions{Service: "hello", Version: version, CacheDir: f.dir, Now: t0})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) req(r *drover.Release, port int, validate string) drover.StageRequest {
	return drover.StageRequest{
		DeployID: "d-" + r.Version(),
		Release:  r,
		ConfigFiles: []drover.ConfigFile{
			{Template: "hello.conf.tmpl", Dest: "hello.conf", Validate: validate},
		},
		Data: drover.TemplateData{
			Host:    drover.TemplateHost{Name: "h01", Vars: map[string]any{"port": port}},
			Release: drover.TemplateRelease{ID: r.ID(), Version: r.Version()},
			Service: "hello",
			Root:    f.h.Root,
		},
	}
}

func (f *fixture) stage(r *drover.Release, port int) drover.StageResult {
	f.t.Helper()
	res, err := f.h.StageFile(context.Background(), r.BundlePath, f.req(r, port, ""))
	if err != nil {
		f.t.Fatalf("stage %s: %v", r.ID(), err)
	}
	return res
}

func (f *fixture) promote(r *drover.Release, res drover.StageResult) drover.HostState {
	f.t.Helper()
	st, err := f.h.Promote(context.Background(), drover.PromoteRequest{
		DeployID: "d-" + r.Version(), Slot: res.Slot, Release: r.ID(), Version: r.Version(), ConfigHash: res.ConfigHash, At: f.clock.Now(),
	})
	if err != nil {
		f.t.Fatalf("promote %s: %v", res.Slot, err)
	}
	return st
}

func (f *fixture) deploy(r *drover.Release, port int) drover.HostState {
	f.t.Helper()
	return f.promote(r, f.stage(r, port))
}

func (f *fixture) link() string {
	f.t.Helper()
	l, err := os.Readlink(filepath.Join(f.h.Root, "current"))
	if err != nil {
		return ""
	}
	return l
}

func (f *fixture) stateFile() drover.HostState {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.h.Root, drover.StateFile))
	if err != nil {
		f.t.Fatal(err)
	}
	var st drover.HostState
	if err := json.Unmarshal(b, &st); err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *fixture) releaseEntries() []string {
	f.t.Helper()
	ents, _ := os.ReadDir(filepath.Join(f.h.Root, "releases"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got nil", code)
	}
	if got := drover.ErrorCode(err); got != code {
		t.Fatalf("want error %s, got %s: %v", code, got, err)
	}
}

func TestStateOfNewHost(t *testing.T) {
	f := newFixture(t)
	st, err := f.h.State(context.Background())
	if err != nil || !reflect.DeepEqual(st, drover.HostState{}) {
		t.Fatalf("state %+v, %v", st, err)
	}
}

func TestStagePromote(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1 := f.build("v1", nil)
	res := f.stage(v1, 8001)
	if res.Slot != v1.ID() || res.Reused || len(res.ConfigHash) != 64 {
		t.Fatalf("stage result %+v", res)
	}
	slot := filepath.Join(f.h.Root, "releases", res.Slot)
	conf, err := os.ReadFile(filepath.Join(slot, "hello.conf"))
	if err != nil {
		t.Fatal(err)
	}
	wantConf := "port = 8001\nversion = v1\n"
	if string(conf) != wantConf {
		t.Fatalf("rendered %q, want %q", conf, wantConf)
	}
	// The host's hash is the controller's: drover.ConfigHash of the same
	// rendering.
	if want := drover.ConfigHash([]drover.RenderedFile{{Dest: "hello.conf", Content: []byte(wantConf)}}); res.ConfigHash != want {
		t.Fatalf("config hash %s, controller computes %s", res.ConfigHash, want)
	}
	meta, err := f.h.ReadSlotMeta(res.Slot)
	if err != nil || meta.Release != v1.ID() || meta.Version != "v1" || meta.ConfigHash != res.ConfigHash || meta.StagedAt.IsZero() {
		t.Fatalf("slot meta %+v %v", meta, err)
	}
	if got := f.releaseEntries(); !reflect.DeepEqual(got, []string{res.Slot}) {
		t.Fatalf("releases/ holds %v", got)
	}

	// Staging again is idempotent.
	again := f.stage(v1, 8001)
	if again.Slot != res.Slot || !again.Reused || again.ConfigHash != res.ConfigHash {
		t.Fatalf("restage %+v", again)
	}
	if got := f.releaseEntries(); !reflect.DeepEqual(got, []string{res.Slot}) {
		t.Fatalf("releases/ after restage holds %v", got)
	}

	at := t0.Add(time.Hour)
	st, err := f.h.Promote(ctx, drover.PromoteRequest{DeployID: "d1", Slot: res.Slot, Release: v1.ID(), Version: "v1", ConfigHash: res.ConfigHash, At: at})
	if err != nil {
		t.Fatal(err)
	}
	want := drover.HostState{
		Current: res.Slot, Release: v1.ID(), Version: "v1", ConfigHash: res.ConfigHash, DeployedAt: at, DeployID: "d1",
		History: []drover.HostHistoryEntry{{Action: "promote", From: "", To: res.Slot, Version: "v1", DeployID: "d1", At: at}},
	}
	if !reflect.DeepEqual(st, want) || !reflect.DeepEqual(f.stateFile(), want) {
		t.Fatalf("state\n got %+v\nfile %+v\nwant %+v", st, f.stateFile(), want)
	}
	if l := f.link(); l != "releases/"+res.Slot {
		t.Fatalf("current -> %q", l)
	}
	if b, err := f.h.ReadFile(ctx, "current/hello.conf"); err != nil || string(b) != wantConf {
		t.Fatalf("ReadFile current/hello.conf: %q %v", b, err)
	}

	// Promoting the current slot again changes nothing.
	st2, err := f.h.Promote(ctx, drover.PromoteRequest{DeployID: "d2", Slot: res.Slot, At: at.Add(time.Hour)})
	if err != nil || !reflect.DeepEqual(st2, want) || !reflect.DeepEqual(f.stateFile(), want) {
		t.Fatalf("idempotent promote changed state: %+v %v", st2, err)
	}

	_, err = f.h.Promote(ctx, drover.PromoteRequest{Slot: "v9-000000000000"})
	wantCode(t, err, drover.EFAILED)
	_, err = f.h.Promote(ctx, drover.PromoteRequest{Slot: "../x"})
	wantCode(t, err, drover.EINVALID)
}

func TestPromoteRepairsAfterCrashBetweenLinkAndState(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1, v2 := f.build("v1", nil), f.build("v2", nil)
	f.deploy(v1, 1)
	res := f.stage(v2, 1)
	// The crash: the link was swapped, state.json was not written.
	if err := f.h.pointCurrent(res.Slot); err != nil {
		t.Fatal(err)
	}
	st, err := f.h.Promote(ctx, drover.PromoteRequest{Slot: res.Slot, Release: v2.ID(), Version: "v2", At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != v2.ID() || st.Previous != v1.ID() {
		t.Fatalf("after repair current %q previous %q", st.Current, st.Previous)
	}
}

// The incident drover exists for: a halted deploy must leave current and
// previous exactly as before, so that a later rollback goes to v1 and not
// to the broken v3.
func TestHaltedDeployThenRollbackLandsOnV1(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1, v2, v3 := f.build("v1", nil), f.build("v2", nil), f.build("v3", nil)
	f.deploy(v1, 1)
	before := f.deploy(v2, 1)
	if before.Current != v2.ID() || before.Previous != v1.ID() {
		t.Fatalf("before v3: %+v", before.Snapshot())
	}
	snap := before.Snapshot()
	f.deploy(v3, 1)

	at := t0.Add(5 * time.Hour)
	st, err := f.h.Restore(ctx, drover.RestoreRequest{DeployID: "d-v3", To: snap, Action: drover.ActionRestore, Reason: "check version failed", At: at})
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshot() != snap {
		t.Fatalf("restored snapshot %+v, want %+v", st.Snapshot(), snap)
	}
	if st.DeployedAt != at || st.DeployID != "d-v3" {
		t.Fatalf("restore at/id: %v %q", st.DeployedAt, st.DeployID)
	}
	last := st.History[len(st.History)-1]
	if want := (drover.HostHistoryEntry{Action: "restore", From: v3.ID(), To: v2.ID(), Version: "v2", DeployID: "d-v3", At: at, Reason: "check version failed"}); last != want {
		t.Fatalf("history entry %+v, want %+v", last, want)
	}
	if f.link() != "releases/"+v2.ID() {
		t.Fatalf("current -> %s", f.link())
	}
	if !reflect.DeepEqual(f.stateFile(), st) {
		t.Fatal("state.json differs from the returned state")
	}

	// Operator: drover rollback.
	target, err := f.h.RollbackTarget(st, "")
	if err != nil {
		t.Fatal(err)
	}
	if target.Current != v1.ID() || target.Previous != "" || target.Version != "v1" || target.Release != v1.ID() || len(target.ConfigHash) != 64 {
		t.Fatalf("rollback target %+v", target)
	}
	st, err = f.h.Restore(ctx, drover.RestoreRequest{DeployID: "rb1", To: target, Action: drover.ActionRollback, At: at.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != v1.ID() || st.Previous != "" || st.Version != "v1" || f.link() != "releases/"+v1.ID() {
		t.Fatalf("after rollback %+v -> %s", st.Snapshot(), f.link())
	}
	if st.History[len(st.History)-1].Action != drover.ActionRollback {
		t.Fatalf("history %+v", st.History[len(st.History)-1])
	}
	// And there is nothing further back.
	_, err = f.h.RollbackTarget(st, "")
	wantCode(t, err, drover.ENOTFOUND)
	if !strings.Contains(err.Error(), "host has no previous release") {
		t.Fatalf("message: %v", err)
	}
}

func TestRollbackTargetTo(t *testing.T) {
	f := newFixture(t)
	v1, v2, v3 := f.build("v1", nil), f.build("v2", nil), f.build("v3", nil)
	f.deploy(v1, 1)
	f.deploy(v2, 1)
	st := f.deploy(v3, 1)

	target, err := f.h.RollbackTarget(st, v1.ID())
	if err != nil {
		t.Fatal(err)
	}
	if target.Current != v1.ID() || target.Previous != "" {
		t.Fatalf("--to v1: %+v", target)
	}
	target, err = f.h.RollbackTarget(st, "")
	if err != nil || target.Current != v2.ID() || target.Previous != v1.ID() {
		t.Fatalf("default target %+v %v", target, err)
	}
	_, err = f.h.RollbackTarget(st, "v0-123")
	wantCode(t, err, drover.ENOTFOUND)
	for _, s := range []string{v1.ID(), v2.ID(), v3.ID()} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error does not list %s: %v", s, err)
		}
	}
	// Over a HostConn: metadata through ReadFile, slots from state.json.
	ctx := context.Background()
	meta := func(slot string) (SlotMeta, error) {
		b, err := f.h.ReadFile(ctx, SlotMetaPath(slot))
		if err != nil {
			return SlotMeta{}, err
		}
		return ParseSlotMeta(b)
	}
	target, err = RollbackSnapshot(st, "", meta, nil)
	if err != nil || target.Current != v2.ID() || target.Previous != v1.ID() || target.Version != "v2" {
		t.Fatalf("RollbackSnapshot %+v %v", target, err)
	}
	_, err = RollbackSnapshot(st, "nope", meta, nil)
	wantCode(t, err, drover.ENOTFOUND)
	if !strings.Contains(err.Error(), v1.ID()) {
		t.Fatalf("error does not list known slots: %v", err)
	}
}

func TestRestoreToNothingAndGoneSlot(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v1 := f.build("v1", nil)
	f.deploy(v1, 1)
	st, err := f.h.Restore(ctx, drover.RestoreRequest{DeployID: "d", To: drover.Snapshot{}, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != "" || st.Previous != "" || st.Version != "" || f.link() != "" {
		t.Fatalf("after restore to nothing: %+v link %q", st.Snapshot(), f.link())
	}
	if _, err := os.Lstat(filepath.Join(f.h.Root, "current")); !os.IsNotExist(err) {
		t.Fatalf("current still there: %v", err)
	}
	_, err = f.h.Restore(ctx, drover.RestoreRequest{To: drover.Snapshot{Current: "v0-aaaaaaaaaaaa"}})
	wantCode(t, err, drover.EFAILED)
	if want := "release dir releases/v0-aaaaaaaaaaaa is gone; restore it by hand or deploy"; err.Error() != want {
		t.Fatalf("message %q", err)
	}
	_, err = f.h.Restore(ctx, drover.RestoreRequest{To: drover.Snapshot{Current: v1.ID()}, Action: "promote"})
	wantCode(t, err, drover.EINVALID)
}

func TestConfigOnlyChangeGetsOwnSlot(t *testing.T) {
	f := newFixture(t)
	v1 := f.build("v1", nil)
	first := f.stage(v1, 8001)
	f.promote(v1, first)
	promoted := filepath.Join(f.h.Root, "releases", first.Slot)
	before := snapshotDir(t, promoted)

	second := f.stage(v1, 8002)
	if want := v1.ID() + "+" + second.ConfigHash[:8]; second.Slot != want || second.Reused {
		t.Fatalf("config change staged to %+v, want slot %s", second, want)
	}
	if second.ConfigHash == first.ConfigHash {
		t.Fatal("config hash did not change")
	}
	if after := snapshotDir(t, promoted); !reflect.DeepEqual(before, after) {
		t.Fatalf("promoted dir was modified:\n%v\n%v", before, after)
	}
	b, _ := os.ReadFile(filepath.Join(f.h.Root, "releases", second.Slot, "hello.conf"))
	if !strings.Contains(string(b), "port = 8002") {
		t.Fatalf("new slot config %q", b)
	}
	st := f.promote(v1, second)
	if st.Current != second.Slot || st.Previous != first.Slot || st.Release != v1.ID() {
		t.Fatalf("state %+v", st.Snapshot())
	}
	// Going back to the first config reuses the first slot untouched.
	back := f.stage(v1, 8001)
	if back.Slot != first.Slot || !back.Reused {
		t.Fatalf("restage first config: %+v", back)
	}
	if after := snapshotDir(t, promoted); !reflect.DeepEqual(before, after) {
		t.Fatal("promoted dir was modified by a restage")
	}
}

func TestNonLiveSlotIsReplaced(t *testing.T) {
	f := newFixture(t)
	v1 := f.build("v1", nil)
	a := f.stage(v1, 1)
	b := f.stage(v1, 2)
	if b.Slot != a.Slot || b.Reused || b.ConfigHash == a.ConfigHash {
		t.Fatalf("restage with new config of a never-promoted slot: %+v then %+v", a, b)
	}
	conf, _ := os.ReadFile(filepath.Join(f.h.Root, "releases", b.Slot, "hello.conf"))
	if !strings.Contains(string(conf), "port = 2") {
		t.Fatalf("slot not replaced: %q", conf)
	}
	if got := f.releaseEntries(); !reflect.DeepEqual(got, []string{a.Slot}) {
		t.Fatalf("releases/ holds %v", got)
	}
}

func TestStageFailuresLeaveNoSlot(t *testing.T) {
	ctx := context.Background()
	cases := map[string]struct {
		mutate func(f *fixture, r *drover.Release, req *drover.StageRequest)
		code   string
		want   string
	}{
		"missing template key": {
			mutate: func(f *fixture, r *drover.Release, req *drover.StageRequest) { req.Data.Host.Vars = map[string]any{} },
			code:   drover.EINVALID, want: "port",
		},
		"validate fails": {
			mutate: func(f *fixture, r *drover.Release, req *drover.StageRequest) {
				req.ConfigFiles[0].Validate = "echo bad config in {{.Path}} >&2; exit 3"
			},
			code: drover.EFAILED, want: "bad config in",
		},
		"template not in release": {
			mutate: func(f *fixture, r *drover.Release, req *drover.StageRequest) {
				req.ConfigFiles[0].Template = "nope.tmpl"
			},
			code: drover.EINVALID, want: "nope.tmpl",
		},
		"dest escapes": {
			mutate: func(f *fixture, r *drover.Release, req *drover.StageRequest) {
				req.ConfigFiles[0].Dest = "../../outside.conf"
			},
			code: drover.EINVALID, want: "outside.conf",
		},
		"dest absolute": {
			mutate: func(f *fixture, r *drover.Release, req *drover.StageRequest) {
				req.ConfigFiles[0].Dest = "/etc/hello.conf"
			},
			code: drover.EINVALID, want: "/etc/hello.conf",
		},
		"dest is a symlink": {
			mutate: func(f *fixture, r *drover.Release, req *drover.StageRequest) { req.ConfigFiles[0].Dest = "shared.conf" },
			code:   drover.EINVALID, want: "not a regular file",
		},
		"bundle sha mismatch": {
			mutate: func(f *fixture, r *drover.Release, req *drover.StageRequest) {
				c := *r
				c.BundleSHA256 = strings.Repeat("0", 64)
				req.Release = &c
			},
			code: drover.EINVALID, want: "sha256",
		},
		"wrong release": {
			mutate: func(f *fixture, r *drover.Release, req *drover.StageRequest) {
				c := *r
				c.Manifest.ID = "v1-000000000000"
				c.BundleSHA256 = ""
				req.Release = &c
			},
			code: drover.EINVALID, want: "expected v1-000000000000",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			// Rendering to shared.conf must not write through the link
			// into conf/base.conf.
			r := f.build("v1", map[string]string{"conf/base.conf": "base\n", "shared.conf": "->conf/base.conf"})
			req := f.req(r, 1, "")
			c.mutate(f, r, &req)
			_, err := f.h.StageFile(ctx, r.BundlePath, req)
			wantCode(t, err, c.code)
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if got := f.releaseEntries(); len(got) != 0 {
				t.Fatalf("releases/ holds %v after a failed stage", got)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f.h.Root), "outside.conf")); err == nil {
				t.Fatal("wrote outside the release")
			}
		})
	}
}

func TestValidateSeesStagedFile(t *testing.T) {
	f := newFixture(t)
	r := f.build("v1", nil)
	var seen string
	f.h.RunValidate = func(ctx context.Context, dir, command string) (drover.ExecResult, error) {
		seen = command
		return RunShell(ctx, dir, command, nil, time.Minute)
	}
	req := f.req(r, 7, `grep -q "port = 7" {{.Path}} && test "$(basename "$PWD")" != "`+r.ID()+`"`)
	res, err := f.h.StageFile(context.Background(), r.BundlePath, req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(seen, filepath.Join(f.h.Root, "releases", ".stage-")) {
		t.Fatalf("validate did not run on the staged file: %s", seen)
	}
	if res.Slot != r.ID() {
		t.Fatalf("slot %s", res.Slot)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var rels []*drover.Release
	for i := 1; i <= 6; i++ {
		rels = append(rels, f.build(fmt.Sprintf("v%d", i), nil))
	}
	for _, r := range rels[:4] {
		f.deploy(r, 1) // v4 current, v3 previous
	}
	f.stage(rels[4], 1) // v5, v6 staged, never promoted
	f.stage(rels[5], 1)
	stale := filepath.Join(f.h.Root, "releases", ".stage-dead")
	fresh := filepath.Join(f.h.Root, "releases", ".stage-running")
	os.Mkdir(stale, 0o755)
	os.Mkdir(fresh, 0o755)
	old := f.clock.t.Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	fresh2 := f.clock.t
	os.Chtimes(fresh, fresh2, fresh2)

	removed, err := f.h.Prune(ctx, 3, rels[0].ID())
	if err != nil {
		t.Fatal(err)
	}
	// Kept: v4 (current), v3 (previous), v1 (protected) fill keep=3 ...
	// so v2, v5 and v6 go.
	want := []string{rels[1].ID(), rels[4].ID(), rels[5].ID()}
	if !reflect.DeepEqual(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("stale .stage- dir survived")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("fresh .stage- dir was removed")
	}
	os.Remove(fresh)

	// With room, the newest non-live slots stay.
	f.stage(rels[4], 1)
	f.stage(rels[5], 1)
	removed, err = f.h.Prune(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{rels[0].ID(), rels[4].ID()}; !reflect.DeepEqual(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	if got := f.releaseEntries(); !reflect.DeepEqual(got, []string{rels[2].ID(), rels[3].ID(), rels[5].ID()}) {
		t.Fatalf("releases/ holds %v", got)
	}
	// keep 0 never removes what is live.
	if _, err := f.h.Prune(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.releaseEntries(); !reflect.DeepEqual(got, []string{rels[2].ID(), rels[3].ID()}) {
		t.Fatalf("releases/ holds %v", got)
	}
}

func TestReadFile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	_, err := f.h.ReadFile(ctx, "current/hello.conf")
	wantCode(t, err, drover.ENOTFOUND)
	_, err = f.h.ReadFile(ctx, "../../etc/passwd")
	wantCode(t, err, drover.EINVALID)
	_, err = f.h.ReadFile(ctx, "/etc/passwd")
	wantCode(t, err, drover.EINVALID)
	os.Symlink("/etc", filepath.Join(f.h.Root, "etc"))
	_, err = f.h.ReadFile(ctx, "etc/passwd")
	wantCode(t, err, drover.EINVALID)
	gone := &Host{Root: filepath.Join(f.dir, "nope")}
	_, err = gone.ReadFile(ctx, "state.json")
	wantCode(t, err, drover.ENOTFOUND)
}

func TestHistoryIsCapped(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.build("a", nil), f.build("b", nil)
	sa, sb := f.stage(a, 1), f.stage(b, 1)
	var st drover.HostState
	for i := 0; i < MaxHistory+10; i++ {
		slot := sa.Slot
		if i%2 == 1 {
			slot = sb.Slot
		}
		var err error
		if st, err = f.h.Promote(ctx, drover.PromoteRequest{Slot: slot, At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.History) != MaxHistory {
		t.Fatalf("history has %d entries", len(st.History))
	}
}

func TestStateCorrupt(t *testing.T) {
	f := newFixture(t)
	os.WriteFile(filepath.Join(f.h.Root, drover.StateFile), []byte("{"), 0o644)
	_, err := f.h.State(context.Background())
	wantCode(t, err, drover.EFAILED)
}

// snapshotDir maps every path under dir to its mode, size, mtime and
// content.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		v := fmt.Sprintf("%v %d %v", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	return out
}

// TestValidateLeavesNoTrace: Validate runs the validate commands on the
// rendered config in a scratch directory outside the deploy root and
// removes it; the deploy root of a host never deployed stays absent, and a
// failing command is Stage's EFAILED with its output.
func TestValidateLeavesNoTrace(t *testing.T) {
	f := newFixture(t)
	r := f.build("v1", nil)
	if err := os.Remove(f.h.Root); err != nil {
		t.Fatal(err)
	}
	var dir string
	f.h.RunValidate = func(ctx context.Context, d, command string) (drover.ExecResult, error) {
		dir = d
		return RunShell(ctx, d, command, nil, time.Minute)
	}
	res, err := f.h.ValidateFile(context.Background(), r.BundlePath, f.req(r, 7, `grep -q "port = 7" {{.Path}}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Slot != "" || res.ConfigHash == "" {
		t.Errorf("result %+v: want no slot and the config hash", res)
	}
	if strings.HasPrefix(dir, f.h.Root) || dir == "" {
		t.Errorf("validate ran in %q, inside the deploy root", dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("scratch directory %s left behind (%v)", dir, err)
	}
	if _, err := os.Stat(f.h.Root); !os.IsNotExist(err) {
		t.Errorf("validate created the deploy root (%v)", err)
	}
	_, err = f.h.ValidateFile(context.Background(), r.BundlePath, f.req(r, 7, "echo bad config in {{.Path}} >&2; exit 3"))
	wantCode(t, err, drover.EFAILED)
	if !strings.Contains(err.Error(), "bad config in") {
		t.Errorf("error %q lacks the command's output", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("scratch directory left behind after a failure")
	}
}

// TestValidateSharedDirsInScratch: validate sees a release's shared dirs
// (nginx -t needs its log directory) as empty directories of the scratch
// release, and makes nothing under the deploy root's shared/.
func TestValidateSharedDirsInScratch(t *testing.T) {
	f := newFixture(t)
	r := f.build("v1", nil)
	req := f.req(r, 7, `test -d logs && test -d var/run && ! test -L logs`)
	req.SharedDirs = []string{"logs", "var/run"}
	if _, err := f.h.ValidateFile(context.Background(), r.BundlePath, req); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(f.h.Root); len(ents) != 0 {
		t.Errorf("validate left %d entries in the deploy root, first %s", len(ents), ents[0].Name())
	}
}
