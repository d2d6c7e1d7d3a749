package release

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"drover"
)

// A directory deployed again must not be packed again: a multi-megabyte
// tree costs seconds of compression per deploy (bench/README.md).
func TestReuseHitMissAndInvalidation(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	cache := t.TempDir()
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	build := func(version string, now time.Time) *drover.Release {
		t.Helper()
		r, err := ResolveReusing(ctx, src, version, "hello", cache, now)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := build("v1", t1)

	// Hit: same tree, version and revision: the same bundle, not packed
	// again (its Created is the first build's).
	again := build("v1", t1.Add(time.Hour))
	if again.BundlePath != first.BundlePath || again.BundleSHA256 != first.BundleSHA256 || !again.Manifest.Created.Equal(t1) {
		t.Fatalf("second build of the same tree: %s %s created %v, want the cached %s %s created %v",
			again.BundlePath, again.BundleSHA256, again.Manifest.Created, first.BundlePath, first.BundleSHA256, t1)
	}

	// Miss: another version of the same tree is another bundle.
	v2 := build("v2", t1)
	if v2.BundlePath == first.BundlePath || v2.Manifest.Version != "v2" {
		t.Fatalf("v2 reused %s", v2.BundlePath)
	}

	// Miss: content changed.
	writeTree(t, src, map[string]string{"static/index.html": "<h1>changed</h1>\n"})
	changed := build("v1", t1.Add(2*time.Hour))
	if changed.BundlePath == first.BundlePath || changed.Manifest.ContentHash == first.Manifest.ContentHash {
		t.Fatalf("changed tree reused the bundle of the old one: %s", changed.BundlePath)
	}
	if !changed.Manifest.Created.Equal(t1.Add(2 * time.Hour)) {
		t.Fatalf("changed tree: Created %v, want a fresh build", changed.Manifest.Created)
	}
}

// A cached bundle damaged on disk (or replaced by another file under its
// name) is detected by full verification and packed again, never shipped.
func TestReuseRebuildsCorruptEntry(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	cache := t.TempDir()
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first, err := ResolveReusing(ctx, src, "v1", "hello", cache, t1)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func(p string){
		"flipped byte": func(p string) {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
		},
		"truncated": func(p string) { os.Truncate(p, 100) },
		"other bundle under its name": func(p string) {
			other := sampleTree(t)
			writeTree(t, other, map[string]string{"extra": "x"})
			r, err := Build(ctx, other, BuildOptions{Service: "hello", Version: "v1", Out: filepath.Join(t.TempDir(), "o.tar.gz")})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(r.BundlePath)
			os.WriteFile(p, b, 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			damage(first.BundlePath)
			now := t1.Add(time.Hour)
			r, err := ResolveReusing(ctx, src, "v1", "hello", cache, now)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Manifest.Created.Equal(now) {
				t.Fatalf("damaged cache entry was reused (Created %v)", r.Manifest.Created)
			}
			if r.Manifest.ContentHash != first.Manifest.ContentHash || r.BundlePath != first.BundlePath {
				t.Fatalf("rebuilt %s %s, want %s %s", r.BundlePath, r.Manifest.ContentHash, first.BundlePath, first.Manifest.ContentHash)
			}
			if _, err := Open(ctx, r.BundlePath); err != nil {
				t.Fatalf("rebuilt bundle does not verify: %v", err)
			}
		})
	}
}

// The cache keeps the KeepCached most recently used bundles, plus any used
// within the hour (a concurrent deploy may be streaming it).
func TestReusePrunesOldBundles(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	cache := t.TempDir()
	old := time.Now().Add(-48 * time.Hour)
	var paths []string
	for i := range KeepCached + 3 {
		r, err := ResolveReusing(ctx, src, "v"+string(rune('a'+i)), "hello", cache, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, r.BundlePath)
		if i < KeepCached+2 {
			// Every bundle but the last two was last used two days ago,
			// oldest first.
			at := old.Add(time.Duration(i) * time.Minute)
			os.Chtimes(r.BundlePath, at, at)
		}
	}
	ents, _ := filepath.Glob(filepath.Join(cache, "*.tar.gz"))
	if len(ents) != KeepCached {
		t.Fatalf("cache holds %d bundles, want %d: %v", len(ents), KeepCached, ents)
	}
	for _, p := range paths[:3] {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("oldest bundle %s kept", p)
		}
	}
	for _, p := range paths[3:] {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("recent bundle %s removed", p)
		}
	}
}

// Bundles are compressed at gzip's default level, not its best: level 9
// cost 2.6 times the CPU for 0.3% on a Go binary (bench/README.md). The
// gzip header's XFL byte says which: 2 for the best level, 0 for default.
func TestBundleCompressionLevel(t *testing.T) {
	r, err := Build(context.Background(), sampleTree(t), BuildOptions{Version: "v1", Out: filepath.Join(t.TempDir(), "b.tar.gz")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(r.BundlePath)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || b[8] != 0 {
		t.Fatalf("gzip header XFL = %d, want 0 (default level; 2 is the slow best level)", b[8])
	}
}
