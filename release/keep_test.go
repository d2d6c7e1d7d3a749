package release

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
)

func TestDirKeepPathPrune(t *testing.T) {
	ctx := context.Background()
	d := Dir{Root: filepath.Join(t.TempDir(), "bundles"), Most: 2}
	build := func(v string) *drover.Release {
		t.Helper()
		src := t.TempDir()
		writeTree(t, src, map[string]string{"VERSION": v})
		r, err := Build(ctx, src, BuildOptions{Service: "hello", Version: v, Out: filepath.Join(t.TempDir(), v+".tar.gz"), Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := build("1.0.0")
	if _, err := d.Path("hello", r1.ID()); drover.ErrorCode(err) != drover.ENOTFOUND || !strings.Contains(err.Error(), r1.ID()) {
		t.Fatalf("before keeping: %v", err)
	}
	if err := d.Keep(ctx, "hello", r1); err != nil {
		t.Fatal(err)
	}
	p, err := d.Path("hello", r1.ID())
	if err != nil {
		t.Fatal(err)
	}
	// What is kept is the same bundle, verified again on open.
	got, err := Open(ctx, p)
	if err != nil || got.ID() != r1.ID() || got.BundleSHA256 != r1.BundleSHA256 {
		t.Fatalf("kept bundle: %+v %v", got, err)
	}
	// Kept again: only marked as used.
	if err := d.Keep(ctx, "hello", r1); err != nil {
		t.Fatal(err)
	}
	// The oldest beyond Most go; the one just kept never does.
	past := time.Now().Add(-time.Hour)
	os.Chtimes(p, past, past)
	r2, r3 := build("2.0.0"), build("3.0.0")
	for i, r := range []*drover.Release{r2, r3} {
		if err := d.Keep(ctx, "hello", r); err != nil {
			t.Fatal(err)
		}
		rp, _ := d.Path("hello", r.ID())
		at := past.Add(time.Duration(i+1) * time.Minute)
		os.Chtimes(rp, at, at)
	}
	if _, err := d.Path("hello", r1.ID()); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("oldest bundle still kept: %v", err)
	}
	for _, r := range []*drover.Release{r2, r3} {
		if _, err := d.Path("hello", r.ID()); err != nil {
			t.Errorf("%s: %v", r.ID(), err)
		}
	}
}

// TestDirKeepRefusesChangedBundle: a bundle that changed on disk since it
// was verified is not kept under the verified release's name.
func TestDirKeepRefusesChangedBundle(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src, map[string]string{"a": "a"})
	r, err := Build(ctx, src, BuildOptions{Service: "hello", Version: "1", Out: filepath.Join(t.TempDir(), "b.tar.gz"), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.BundlePath, []byte("not the bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := Dir{Root: t.TempDir()}
	if err := d.Keep(ctx, "hello", r); err == nil || !strings.Contains(err.Error(), "changed since it was verified") {
		t.Fatalf("keep of a changed bundle: %v", err)
	}
	if _, err := d.Path("hello", r.ID()); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Fatalf("changed bundle kept: %v", err)
	}
}

// TestDirPathRefusesHostileNames: release IDs come from history records,
// which with a shared store another machine wrote.
func TestDirPathRefusesHostileNames(t *testing.T) {
	d := Dir{Root: t.TempDir()}
	for _, id := range []string{"../x", "..", ".hidden", "a/b", "", strings.Repeat("a", 200), "x\n"} {
		if _, err := d.Path("hello", id); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Path(%q): %v", id, err)
		}
	}
	if _, err := d.Path("../etc", "1.0-abc"); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("service ../etc: %v", err)
	}
}
