// Package tmpfsns gives a test a small, real file system that can fill up:
// a tmpfs mounted in a mount namespace the test makes, so that nothing is
// mounted on the machine itself and nothing outlives the test. Programs
// run in the namespace (Command) see the tmpfs at its directory; every
// other process sees the directory as it was.
//
// A full disk is a fault drover must survive on the hosts it deploys to
// (a release that does not fit) and on the machine it runs on (a journal
// that cannot be written); faking ENOSPC in a writer would test what the
// fake returns, not what SQLite, the unpacker or the kernel do.
package tmpfsns

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NS is a mount namespace holding a tmpfs at Dir.
type NS struct {
	Dir string
	pid int
}

// New mounts a tmpfs of size (as mount's size=, e.g. "1m") on dir in a
// new mount namespace and returns it; the namespace ends with the test.
// It fails the test, naming what is missing, when it cannot: it needs
// root and util-linux's unshare and nsenter.
func New(t testing.TB, dir, size string) *NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("tmpfsns: this test mounts a tmpfs in a mount namespace of its own: run it as root (make test does)")
	}
	for _, tool := range []string{"unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("tmpfsns: this test needs %s (Debian packages util-linux and mount): %v", tool, err)
		}
	}
	if strings.ContainsAny(size, " ,") {
		t.Fatalf("tmpfsns: size %q", size)
	}
	// A shell that mounts the tmpfs, says so, and waits for its stdin to
	// close: the test's end.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size="$2" drover-test "$1" && echo mounted && exec cat >/dev/null`, "sh", dir, size)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- l
	}()
	select {
	case l := <-ready:
		if l != "mounted\n" {
			cmd.Process.Kill()
			t.Fatalf("tmpfsns: mounting a tmpfs on %s in a new mount namespace failed: %q %s", dir, l, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tmpfsns: no tmpfs on %s after 30 s: %s", dir, stderr.String())
	}
	return &NS{Dir: dir, pid: cmd.Process.Pid}
}

// Command is exec.CommandContext for a program run in the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(ns.pid), "--mount", "--", name}, args...)...)
}

// Run runs a program in the namespace and returns its error with its
// output.
func (ns *NS) Run(ctx context.Context, name string, args ...string) error {
	out, err := ns.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v in the mount namespace: %v: %s", name, args, err, out)
	}
	return nil
}
