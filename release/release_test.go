package release

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// writeTree creates files under dir: a value starting with "->" makes a
// symlink, a key ending in "*" an executable.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o775
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func sampleTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"bin/hello*":          "#!/bin/sh\necho hello\n",
		"hello.conf.tmpl":     "port = {{.Host.Vars.port}}\n",
		"static/index.html":   "<h1>hi</h1>\n",
		"static/current.css":  "->style-v2.css",
		"static/style-v2.css": "body{}\n",
		"lib/up":              "->../static",
		".git/HEAD":           "ref: refs/heads/main\n",
	})
	return src
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

func TestBuildOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	out := filepath.Join(t.TempDir(), "hello.tar.gz")
	r, err := Build(ctx, src, BuildOptions{Service: "hello", Version: "1.2.0", Out: out, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	m := r.Manifest
	if m.Service != "hello" || m.Version != "1.2.0" || !m.Created.Equal(t0) {
		t.Fatalf("manifest header: %+v", m)
	}
	if want := "1.2.0-" + m.ContentHash[:12]; m.ID != want || r.ID() != want {
		t.Fatalf("id %q, want %q", m.ID, want)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	if got, want := strings.Join(paths, " "), "bin/hello hello.conf.tmpl lib/up static/current.css static/index.html static/style-v2.css"; got != want {
		t.Fatalf("files %q, want %q (.git must be skipped)", got, want)
	}
	for _, f := range m.Files {
		switch f.Path {
		case "bin/hello":
			if f.Mode != 0o755 {
				t.Errorf("bin/hello mode %o, want 755 (775 normalised)", f.Mode)
			}
		case "static/current.css":
			if f.Link != "style-v2.css" || f.SHA256 != "" {
				t.Errorf("symlink entry %+v", f)
			}
		case "hello.conf.tmpl":
			if f.Mode != 0o644 || f.Size != int64(len("port = {{.Host.Vars.port}}\n")) {
				t.Errorf("template entry %+v", f)
			}
		}
	}

	got, err := Open(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Manifest.ID != m.ID || got.BundleSHA256 != r.BundleSHA256 || got.BundleSize != r.BundleSize || got.BundlePath != out {
		t.Fatalf("Open = %+v\nBuild = %+v", got, r)
	}
	if fi, _ := os.Stat(out); fi.Size() != r.BundleSize {
		t.Fatalf("BundleSize %d, file %d", r.BundleSize, fi.Size())
	}

	dest := t.TempDir()
	f, _ := os.Open(out)
	defer f.Close()
	um, err := Unpack(f, dest)
	if err != nil {
		t.Fatal(err)
	}
	if um.ID != m.ID {
		t.Fatalf("unpacked id %s", um.ID)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "static/current.css")); string(b) != "body{}\n" {
		t.Fatalf("symlink content %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dest, "lib/up")); l != "../static" {
		t.Fatalf("lib/up -> %q", l)
	}
	if fi, _ := os.Stat(filepath.Join(dest, "bin/hello")); fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/hello unpacked mode %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(dest, drover.ManifestName)); err != nil {
		t.Fatalf("manifest not unpacked: %v", err)
	}
}

func TestBuildDeterministic(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	dir := t.TempDir()
	a, err := Build(ctx, src, BuildOptions{Version: "v1", Out: filepath.Join(dir, "a.tar.gz"), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	// Touch every file: mtimes must not matter.
	later := t0.Add(time.Hour)
	filepath.Walk(src, func(p string, _ os.FileInfo, _ error) error { os.Chtimes(p, later, later); return nil })
	b, err := Build(ctx, src, BuildOptions{Version: "v1", Out: filepath.Join(dir, "b.tar.gz"), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a.BundlePath)
	bb, _ := os.ReadFile(b.BundlePath)
	if !bytes.Equal(ab, bb) || a.BundleSHA256 != b.BundleSHA256 {
		t.Fatal("same tree and time gave different bundles")
	}
	c, err := Build(ctx, src, BuildOptions{Version: "v1", CacheDir: dir, Now: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != a.ID() {
		t.Fatalf("build time changed the id: %s vs %s", c.ID(), a.ID())
	}
	if c.BundlePath != filepath.Join(dir, c.ID()+".tar.gz") {
		t.Fatalf("default bundle path %s", c.BundlePath)
	}
	writeTree(t, src, map[string]string{"static/index.html2": "x"})
	d, err := Build(ctx, src, BuildOptions{Version: "v1", CacheDir: dir, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID() == a.ID() {
		t.Fatal("different content, same id")
	}
}

func TestBuildRefuses(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	cases := map[string]func(t *testing.T, src string){
		"absolute symlink": func(t *testing.T, src string) {
			writeTree(t, src, map[string]string{"etc": "->" + outside})
		},
		"escaping symlink": func(t *testing.T, src string) {
			writeTree(t, src, map[string]string{"a/b": "->../../x"})
		},
		"escaping through a symlink": func(t *testing.T, src string) {
			writeTree(t, src, map[string]string{"d/up": "->..", "e": "->d/up/../x"})
		},
		"fifo": func(t *testing.T, src string) {
			if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
				t.Skip(err)
			}
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			src := t.TempDir()
			writeTree(t, src, map[string]string{"ok.txt": "ok"})
			setup(t, src)
			_, err := Build(ctx, src, BuildOptions{Version: "v1", Out: filepath.Join(t.TempDir(), "x.tar.gz")})
			wantCode(t, err, drover.EINVALID)
			if !strings.Contains(err.Error(), src) {
				t.Fatalf("error does not name the path: %v", err)
			}
		})
	}
	t.Run("bad version", func(t *testing.T) {
		_, err := Build(ctx, t.TempDir(), BuildOptions{Version: "1.0/../x"})
		wantCode(t, err, drover.EINVALID)
	})
	t.Run("missing source", func(t *testing.T) {
		_, err := Build(ctx, filepath.Join(t.TempDir(), "nope"), BuildOptions{Version: "v1"})
		wantCode(t, err, drover.ENOTFOUND)
	})
}

func TestBuildSkipsOutputInsideSource(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	out := filepath.Join(src, "hello.tar.gz")
	a, err := Build(ctx, src, BuildOptions{Version: "v1", Out: out, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(ctx, src, BuildOptions{Version: "v1", Out: out, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() {
		t.Fatalf("the previous bundle in the tree changed the release: %s vs %s", a.ID(), b.ID())
	}
}

func TestBuildGitRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src, map[string]string{"app.txt": "v1\n"})
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", src, "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "first")
	head := git("rev-parse", "HEAD")

	out := filepath.Join(src, "out.tar.gz")
	r, err := Build(ctx, src, BuildOptions{Version: "v1", Out: out, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if r.Manifest.Revision != head {
		t.Fatalf("revision %q, want %q", r.Manifest.Revision, head)
	}
	// Rebuilding with the bundle inside the tree is still clean.
	if r, _ = Build(ctx, src, BuildOptions{Version: "v1", Out: out, Now: t0}); r.Manifest.Revision != head {
		t.Fatalf("bundle in tree made it dirty: %q", r.Manifest.Revision)
	}
	writeTree(t, src, map[string]string{"new.txt": "x"})
	r, err = Build(ctx, src, BuildOptions{Version: "v1", Out: out, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if r.Manifest.Revision != head+"-dirty" {
		t.Fatalf("revision %q, want %q", r.Manifest.Revision, head+"-dirty")
	}
	// Not a work tree: no revision, no error.
	plain := sampleTree(t)
	if r, err = Build(ctx, plain, BuildOptions{Version: "v1", CacheDir: t.TempDir()}); err != nil || r.Manifest.Revision != "" {
		t.Fatalf("plain dir: revision %q, err %v", r.Manifest.Revision, err)
	}
}

// A source directory can be an unpacked bundle or someone else's checkout:
// reading its git revision must not run the commands its .git/config
// names (core.fsmonitor runs on git status; hooks).
func TestBuildDoesNotRunSourceGitConfig(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not installed; the release tests need it (scripts/deps.sh installs it)")
	}
	src := t.TempDir()
	writeTree(t, src, map[string]string{"app.txt": "v1\n"})
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "first"}} {
		if out, err := exec.Command("git", append([]string{"-C", src}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	pwned := filepath.Join(t.TempDir(), "pwned")
	cfg, err := os.ReadFile(filepath.Join(src, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	hooks := filepath.Join(src, ".git", "evil-hooks")
	os.MkdirAll(hooks, 0o755)
	evil := fmt.Sprintf("\n[core]\n\tfsmonitor = \"touch %s; false\"\n\thooksPath = %s\n", pwned, hooks)
	if err := os.WriteFile(filepath.Join(src, ".git", "config"), append(cfg, evil...), 0o644); err != nil {
		t.Fatal(err)
	}
	// The attack works on a plain git status, so the test is about drover.
	if out, err := exec.Command("git", "-C", src, "status", "--porcelain").CombinedOutput(); err != nil {
		t.Fatalf("git status: %v\n%s", err, out)
	}
	if _, err := os.Stat(pwned); err != nil {
		t.Fatalf("git status did not run core.fsmonitor (%v): the test proves nothing", err)
	}
	os.Remove(pwned)

	r, err := Build(t.Context(), src, BuildOptions{Version: "v1", CacheDir: t.TempDir(), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("release build ran the source's core.fsmonitor")
	}
	if r.Manifest.Revision == "" {
		t.Fatal("no revision: the git commands did not run at all")
	}
	for _, f := range r.Manifest.Files {
		if strings.Contains(f.Path, ".git") {
			t.Fatalf("bundle carries %s", f.Path)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	src := sampleTree(t)
	dir := t.TempDir()
	r, err := Build(ctx, src, BuildOptions{Version: "v1", Out: filepath.Join(dir, "good.tar.gz"), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(r.BundlePath)

	_, err = Open(ctx, filepath.Join(dir, "missing.tar.gz"))
	wantCode(t, err, drover.ENOTFOUND)
	if drover.ErrorHint(err) == "" {
		t.Error("missing bundle: no hint")
	}

	trunc := filepath.Join(dir, "trunc.tar.gz")
	os.WriteFile(trunc, good[:len(good)/2], 0o644)
	_, err = Open(ctx, trunc)
	wantCode(t, err, drover.EINVALID)

	flip := append([]byte(nil), good...)
	flip[len(flip)/2] ^= 0xff
	flipped := filepath.Join(dir, "flip.tar.gz")
	os.WriteFile(flipped, flip, 0o644)
	_, err = Open(ctx, flipped)
	wantCode(t, err, drover.EINVALID)

	notgz := filepath.Join(dir, "x.tar.gz")
	os.WriteFile(notgz, []byte("hello"), 0o644)
	_, err = Open(ctx, notgz)
	wantCode(t, err, drover.EINVALID)
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	src := sampleTree(t)

	_, err := Resolve(ctx, src, "", "hello", cache, t0)
	wantCode(t, err, drover.EINVALID)
	if !strings.Contains(err.Error(), "--version is required for a directory release") {
		t.Fatalf("message: %v", err)
	}

	writeTree(t, src, map[string]string{"VERSION": "2.0.1\n"})
	r, err := Resolve(ctx, src, "", "hello", cache, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() != "2.0.1" || filepath.Dir(r.BundlePath) != cache {
		t.Fatalf("built %s into %s", r.Version(), r.BundlePath)
	}

	again, err := Resolve(ctx, r.BundlePath, "2.0.1", "hello", cache, t0)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != r.ID() || again.BundleSHA256 != r.BundleSHA256 {
		t.Fatalf("bundle resolved to %s", again.ID())
	}
	_, err = Resolve(ctx, r.BundlePath, "2.0.2", "hello", cache, t0)
	wantCode(t, err, drover.EINVALID)

	missing := filepath.Join(cache, "nope")
	_, err = Resolve(ctx, missing, "", "hello", cache, t0)
	wantCode(t, err, drover.ENOTFOUND)
	if want := "release " + missing + ": no such file or directory"; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
}
