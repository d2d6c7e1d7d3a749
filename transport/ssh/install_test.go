package ssh

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"drover"
)

// paddedSelf copies this test binary with 1 MB that no segment holds
// appended (as DWARF and the symbol table are in a go-built drover; `go
// test` links its binaries without them): what the upload must leave off.
func paddedSelf(t *testing.T) (path string, orig int64) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "drover-padded")
	if err := os.WriteFile(p, append(b, bytes.Repeat([]byte{0xdb}, 1<<20)...), 0o755); err != nil {
		t.Fatal(err)
	}
	return p, int64(len(b))
}

// What is uploaded is the ELF without what no process reads, and it still
// runs: it keeps every segment and program header, no section headers.
func TestStrippedELFRuns(t *testing.T) {
	p, orig := paddedSelf(t)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	hdr, end, ok := strippedELF(f, fi.Size())
	if !ok || end >= orig {
		t.Fatalf("strippedELF: ok %v, %d bytes of %d (%d before padding)", ok, end, fi.Size(), orig)
	}
	out := filepath.Join(t.TempDir(), "stripped")
	w, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, uploadReader(f, hdr, end)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	sf, err := elf.Open(out)
	if err != nil {
		t.Fatalf("the stripped binary is no ELF: %v", err)
	}
	of, _ := elf.Open(p)
	if len(sf.Sections) != 0 || len(sf.Progs) != len(of.Progs) || len(of.Progs) == 0 {
		t.Fatalf("stripped: %d sections, %d program headers (were %d)", len(sf.Sections), len(sf.Progs), len(of.Progs))
	}
	sf.Close()
	of.Close()
	// It runs: this test binary, asked for no test, says so and exits 0.
	if b, err := exec.Command(out, "-test.run=^$").CombinedOutput(); err != nil {
		t.Fatalf("the stripped binary does not run: %v\n%s", err, b)
	}

	// Not ELF (a --host-binary for macOS, a script): sent as it is.
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	sc, _ := os.Open(script)
	defer sc.Close()
	if _, _, ok := strippedELF(sc, 17); ok {
		t.Fatal("a script was taken for an ELF executable")
	}
}

// A host gets drover stripped (and compressed when it has zstd), and
// the stripped drover is what serves there: content-addressed by its own
// sha256, which the host checked.
func TestUploadSendsStrippedBinaryThatServes(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	p, orig := paddedSelf(t)
	tr := f.transport(f.config())
	tr.Self = p
	h := f.host("h01", f.srv)
	c := open(t, tr, h)
	if _, err := c.Exec(ctx, drover.ExecRequest{Command: "true", Dir: "."}); err != nil {
		t.Fatalf("upload and exec: %v", err)
	}
	sum, err := tr.sum(p)
	if err != nil {
		t.Fatal(err)
	}
	bin := RemoteBinary(h.DeployRoot, sum)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("drover not installed under its stripped sum: %v", err)
	}
	if int64(len(b)) >= orig {
		t.Fatalf("the host holds %d bytes, the binary has %d without padding: not stripped", len(b), orig)
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
		t.Fatal("the host's binary is not the one named")
	}
	// One upload, then every operation over the serve session it started.
	if _, err := c.State(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countUploads(f.srv); n != 1 {
		t.Fatalf("%d uploads", n)
	}
	if _, err := c.Exec(ctx, drover.ExecRequest{Command: "true", Dir: "."}); err != nil {
		t.Fatalf("exec through the stripped binary: %v", err)
	}
}

// A host with zstd gets drover compressed; a host whose zstd fails or
// gives back anything but the binary gets it again uncompressed, and the
// binary in place is always the one checked.
func TestUploadCompressesWithZstdThenFallsBack(t *testing.T) {
	real, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal("zstd is not installed (Debian package zstd; scripts/deps.sh installs it): the compressed upload needs it on the host")
	}
	for _, tc := range []struct {
		name, script string
		uploads      int
	}{
		{"zstd", "#!/bin/sh\ntouch \"$(dirname \"$0\")/called\"\nexec " + real + " \"$@\"\n", 1},
		{"zstd fails", "#!/bin/sh\ntouch \"$(dirname \"$0\")/called\"\necho 'zstd: unsupported format' >&2; exit 1\n", 2},
		{"zstd gives back garbage", "#!/bin/sh\ntouch \"$(dirname \"$0\")/called\"\ncat\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			bin := f.fakeTool("zstd", tc.script)
			tr := f.transport(f.config())
			tr.zstdLoopback = true
			h := f.host("h01", f.srv)
			c := open(t, tr, h)
			if _, err := c.Exec(ctxT(t), drover.ExecRequest{Command: "true", Dir: "."}); err != nil {
				t.Fatalf("upload and exec: %v (hint: %s)", err, drover.ErrorHint(err))
			}
			if _, err := os.Stat(filepath.Join(bin, "called")); err != nil {
				t.Fatal("the host's zstd was not used")
			}
			self, _ := os.Executable()
			sum, _ := tr.sum(self)
			b, err := os.ReadFile(RemoteBinary(h.DeployRoot, sum))
			if err != nil {
				t.Fatalf("drover not installed: %v", err)
			}
			if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
				t.Fatal("the host's binary is not the one named")
			}
			if n := countUploads(f.srv); n != tc.uploads {
				t.Fatalf("%d upload sessions, want %d", n, tc.uploads)
			}
			left, _ := filepath.Glob(filepath.Join(h.DeployRoot, BinDir, ".upload-*"))
			if len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

// Hosts on this machine's loopback get drover uncompressed: there is no
// link to spare, and decompressing costs their CPU (see overWire).
func TestUploadUncompressedOverLoopback(t *testing.T) {
	f := newFixture(t)
	bin := f.fakeTool("zstd", "#!/bin/sh\ntouch \"$(dirname \"$0\")/called\"\nexit 1\n")
	tr := f.transport(f.config())
	c := open(t, tr, f.host("h01", f.srv))
	if _, err := c.Exec(ctxT(t), drover.ExecRequest{Command: "true", Dir: "."}); err != nil {
		t.Fatalf("upload and exec: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bin, "called")); err == nil {
		t.Fatal("zstd was used for a host on loopback")
	}
	if n := countUploads(f.srv); n != 1 {
		t.Fatalf("%d uploads", n)
	}

	for addr, want := range map[string]bool{"127.0.0.1:2222": false, "127.0.0.5": false, "[::1]:22": false, "localhost": false,
		"10.1.2.3": true, "web1.example.com:22": true, "[2001:db8::1]:22": true} {
		if got := (&Transport{}).overWire(addr); got != want {
			t.Errorf("overWire(%q) = %v, want %v", addr, got, want)
		}
	}
	if !(&Transport{Config: Config{ProxyJump: "bastion"}}).overWire("127.0.0.1:22") {
		t.Error("through a jump host, a loopback address is no longer this machine")
	}
}

// On a Linux host the upload's stdin pipe is made 1 MB before the binary
// is read (sshd then buffers and copies far less of it), and a host where
// that fails still gets drover.
func TestUploadWidensStdinPipe(t *testing.T) {
	realPerl, err := exec.LookPath("perl")
	if err != nil {
		t.Fatal("perl is not installed (Debian package perl-base): the upload script uses it to widen its stdin pipe")
	}
	for _, tc := range []struct{ name, script string }{
		// The real perl, then the pipe's size as it is now (F_GETPIPE_SZ).
		{"perl", "#!/bin/sh\n" + realPerl + " \"$@\" || exit\n" + realPerl + " -e 'print fcntl(STDIN, 1032, 0)' > \"$(dirname \"$0\")/size\"\n"},
		{"perl fails", "#!/bin/sh\necho 'perl: broken' >&2; echo 0 > \"$(dirname \"$0\")/size\"; exit 2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			bin := f.fakeTool("perl", tc.script)
			tr := f.transport(f.config())
			c := open(t, tr, f.host("h01", f.srv))
			if _, err := c.Exec(ctxT(t), drover.ExecRequest{Command: "true", Dir: "."}); err != nil {
				t.Fatalf("upload and exec: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(bin, "size"))
			if err != nil {
				t.Fatal("the upload did not widen its stdin pipe")
			}
			if tc.name == "perl" && string(bytes.TrimSpace(b)) != "1048576" {
				t.Fatalf("stdin pipe is %q bytes, want 1048576", b)
			}
		})
	}
}
