package ssh

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A body up to memSpoolMax is spooled in memory, with no file at all: it
// is read once, not written to the page cache and read back (here: it is
// spooled even where no file can be made, which before left it to be
// streamed). A larger body still goes to a file, unlinked, in the deploy
// root.
func TestSpoolBodyInMemoryUpToMax(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	noDir := filepath.Join(t.TempDir(), "missing")
	want := make([]byte, 3<<20+7)
	rand.Read(want)
	in := io.MultiReader(bytes.NewReader(want), bytes.NewReader([]byte("next request")))
	body, ok, werr := spoolBody(in, int64(len(want)), noDir)
	if !ok || body == nil || werr != nil {
		t.Fatalf("spoolBody: %v, ok %v, %v: a %d-byte body was not spooled without a file", body, ok, werr, len(want))
	}
	if _, isFile := body.(*os.File); isFile {
		t.Fatal("a body under memSpoolMax went to a file")
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, want) {
		t.Fatalf("spooled %d bytes, not the body of %d", len(got), len(want))
	}
	if rest, _ := io.ReadAll(in); string(rest) != "next request" {
		t.Fatalf("read past the body: %q left", rest)
	}

	// Cut short: the controller is gone.
	if _, ok, _ := spoolBody(bytes.NewReader(want[:100]), int64(len(want)), noDir); ok {
		t.Fatal("a body cut short was spooled")
	}

	root := t.TempDir()
	big := memSpoolMax + 1
	body, ok, _ = spoolBody(io.LimitReader(zeros{}, big), big, root)
	f, isFile := body.(*os.File)
	if !ok || !isFile {
		t.Fatalf("a body over memSpoolMax: %T, ok %v, want a file", body, ok)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != big {
		t.Fatalf("spool file: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("deploy root holds %v: the spool file was not unlinked", ents)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// BenchmarkSpoolBody: spooling the 8 MB body of bench/sshdeploy's job
// (a pipe's worth at a time, as sshd hands it over) in memory and into an
// unlinked file, then reading it back as the stage does.
func BenchmarkSpoolBody(b *testing.B) {
	body := make([]byte, 8<<20)
	rand.Read(body)
	dir := b.TempDir()
	for _, name := range []string{"memory", "file"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				in := &chunked{r: bytes.NewReader(body), n: 64 << 10}
				var r io.ReadCloser
				if name == "memory" {
					r, _, _ = spoolBody(in, int64(len(body)), dir)
				} else {
					f, _, _ := spoolFile(in, int64(len(body)), dir)
					r = f
				}
				io.Copy(io.Discard, r)
				r.Close()
			}
		})
	}
}

// chunked reads at most n bytes at a time.
type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }
