package ssh

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/internal/tmpfsns"
	"drover/release"
)

// fullDiskEnv names the deploy root, a 1 MB tmpfs, in the child process
// TestServeOnAFullDisk runs itself as.
const fullDiskEnv = "DROVER_TEST_FULL_DISK_ROOT"

// A host whose disk fills while it takes a release: a real full disk, a
// 1 MB tmpfs mounted in a mount namespace of the test's own
// (internal/tmpfsns), where the test runs itself again to serve. The
// request fails with the disk's own error, nothing of it is left on the
// disk, and the host goes on serving.
func TestServeOnAFullDisk(t *testing.T) {
	if root := os.Getenv(fullDiskEnv); root != "" {
		serveOnAFullDisk(t, root)
		return
	}
	t.Parallel()
	root := t.TempDir()
	ns := tmpfsns.New(t, root, "1m")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := ns.Command(ctx, os.Args[0], "-test.run", "^TestServeOnAFullDisk$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), fullDiskEnv+"="+root)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestServeOnAFullDisk") {
		t.Fatalf("in a mount namespace with a full disk: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func serveOnAFullDisk(t *testing.T, root string) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(root, &fs); err != nil || fs.Blocks*uint64(fs.Bsize) > 2<<20 {
		t.Fatalf("%s is not the 1 MB tmpfs (statfs: %v, %d bytes)", root, err, fs.Blocks*uint64(fs.Bsize))
	}
	used := func() uint64 {
		t.Helper()
		if err := syscall.Statfs(root, &fs); err != nil {
			t.Fatal(err)
		}
		return (fs.Blocks - fs.Bfree) * uint64(fs.Bsize)
	}
	// Bodies go to a file here, as bundles over memSpoolMax do: one held
	// in memory never meets the disk.
	memSpoolMax = 0
	sv := serveOnPipes(t, root)
	sv.next() // the greeting
	answer := func() Response {
		t.Helper()
		var r Response
		if l := sv.next(); json.Unmarshal([]byte(l), &r) != nil {
			t.Fatalf("answer %q", l)
		}
		return r
	}
	alive := func() {
		t.Helper()
		if err := sv.send(Request{Op: OpExec, Exec: &drover.ExecRequest{Command: "echo alive", Dir: ".", Timeout: time.Minute}}, nil); err != nil {
			t.Fatal(err)
		}
		if r := answer(); r.Error != nil || r.Exec == nil || !strings.Contains(r.Exec.Output, "alive") {
			t.Fatalf("the host stopped serving after the full disk: %+v", r)
		}
	}

	// Two releases, built off the tmpfs: one whose bundle is 1.5 MB of
	// random bytes, one whose 3 MB of zeros gzip to a few KB.
	random := make([]byte, 1536<<10)
	rand.Read(random)
	build := func(name string, content []byte) (*drover.Release, []byte) {
		t.Helper()
		src := filepath.Join(os.TempDir(), "drover-full-disk-"+name)
		os.RemoveAll(src)
		t.Cleanup(func() { os.RemoveAll(src); os.Remove(src + ".tar.gz") })
		if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "bin", name), content, 0o644); err != nil {
			t.Fatal(err)
		}
		rel, err := release.Build(context.Background(), src, release.BuildOptions{Service: "hello", Version: "2.0.0", Out: src + ".tar.gz", Now: time.Unix(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		bundle, err := os.ReadFile(rel.BundlePath)
		if err != nil {
			t.Fatal(err)
		}
		return rel, bundle
	}

	// 1. The bundle itself does not fit on the 1 MB disk.
	rel, bundle := build("random", random)
	if err := sv.send(Request{Op: OpStage, Stage: &drover.StageRequest{DeployID: "d1", Release: rel}}, bundle); err != nil {
		t.Fatal(err)
	}
	r := answer()
	if r.Error == nil || r.Error.Code != drover.EFAILED || !strings.Contains(r.Error.Message, "no space left on device") ||
		!strings.Contains(r.Error.Hint, "free disk space under "+root) {
		t.Fatalf("a bundle that filled the disk: answer %+v (error %+v), want EFAILED naming the full disk with a hint", r, r.Error)
	}
	t.Logf("a bundle that filled the disk: %s (hint: %s)", r.Error.Message, r.Error.Hint)
	alive()
	if u := used(); u > 64<<10 {
		t.Fatalf("%d bytes of the disk still in use after the failed stage: the spooled body was kept", u)
	}

	// 2. The bundle fits, its release does not.
	rel, bundle = build("zeros", make([]byte, 3<<20))
	if err := sv.send(Request{Op: OpStage, Stage: &drover.StageRequest{DeployID: "d1", Release: rel}}, bundle); err != nil {
		t.Fatal(err)
	}
	// EFAILED, not EINVALID: the bundle is fine, the host's disk is not.
	if r := answer(); r.Error == nil || r.Error.Code != drover.EFAILED || !strings.Contains(r.Error.Message, "no space left on device") || r.Error.Hint == "" {
		t.Fatalf("a release that filled the disk while unpacking: answer %+v (error %+v), want EFAILED naming the full disk with a hint", r, r.Error)
	} else {
		t.Logf("a release that filled the disk: %s (hint: %s)", r.Error.Message, r.Error.Hint)
	}
	alive()
	if u := used(); u > 64<<10 {
		t.Fatalf("%d bytes of the disk still in use after the failed stage: the partial release was kept", u)
	}
	sv.in.Close()
	if err := <-sv.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
