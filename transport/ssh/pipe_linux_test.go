package ssh

import (
	"bytes"
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// A host's drover makes its stdin pipe (sshd's) hold 1 MB, so a bundle's
// window in flight sits in the pipe instead of in sshd's buffer.
func TestServeWidensStdinPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The same pipe, to look at after serve has closed its stdin.
	fd, err := unix.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	w.Close() // serve sees EOF: the controller is gone
	var out bytes.Buffer
	Serve(context.Background(), OpServe, r, &out, ServeOptions{Root: t.TempDir()})
	n, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil || n != 1<<20 {
		t.Fatalf("stdin pipe holds %d bytes (%v), want 1 MB", n, err)
	}
}
