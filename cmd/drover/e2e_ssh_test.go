package main

// End-to-end over real OpenSSH: the drover binary built in TestMain deploys
// to a fleet of sshd instances on loopback (internal/sshfleet), uploading
// itself to every host and running each step there as `drover host ...`.
// Assertions are about what the hosts serve and hold on disk.

import (
	"bufio"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"drover/internal/sshfleet"
)

// newSSHFleet is a fleet of hosts that do not hold drover yet: the first
// deploy uploads it to each (TestE2ESSHFleet checks what that leaves).
func newSSHFleet(t *testing.T, hosts int) *sshfleet.Fleet {
	t.Helper()
	return startSSHFleet(t, sshfleet.Options{Dir: t.TempDir(), Hosts: hosts, NoShellRC: true})
}

// startSSHFleet starts the fleet o describes and stops it when the test
// ends. Every fleet here runs login shells that skip ~/.bashrc
// (sshfleet.Options.NoShellRC): what a machine's own rc costs is not what
// these tests test, and a root rc running `pyenv init` costs each SSH
// session a fifth of a CPU-second.
func startSSHFleet(t *testing.T, o sshfleet.Options) *sshfleet.Fleet {
	t.Helper()
	o.NoShellRC = true
	f, err := sshfleet.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// droverHeld is o with hosts that already hold this test's drover where
// transport ssh installs it (sshfleet.Options.HostBinary), as after an
// earlier deploy: drover runs it there instead of uploading itself. A
// race-built drover is some 50 MB, streamed through sshd to every host of
// every fleet otherwise; only the tests of that upload (TestE2ESSHFleet)
// start from hosts without it.
func droverHeld(o sshfleet.Options) sshfleet.Options {
	o.HostBinary = droverBin
	return o
}

// heldBinaryUsed fails t unless host h still holds the very file
// droverHeld placed there: a drover that uploaded itself anyway would have
// renamed a new file over it.
func heldBinaryUsed(t *testing.T, h *sshfleet.Host) {
	t.Helper()
	bins, _ := filepath.Glob(filepath.Join(h.Root, ".drover", "bin", "drover-*"))
	held, _, err := sshfleet.HostCopyOf(droverBin)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Stat(held)
	if err != nil {
		t.Fatal(err)
	}
	if len(bins) != 1 {
		t.Fatalf("%s holds drover binaries %v, want the one placed there", h.Name, bins)
	}
	if got, err := os.Stat(bins[0]); err != nil || !os.SameFile(got, want) {
		t.Fatalf("%s: %s is not the drover placed there (%v): it was uploaded again", h.Name, bins[0], err)
	}
}

func sshServing(t *testing.T, f *sshfleet.Fleet, v string, except map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := f.Versions(ctx)
	for _, h := range f.Hosts {
		want := v
		if e, ok := except[h.Name]; ok {
			want = e
		}
		if got[h.Name] != want {
			t.Errorf("%s serves %q, want %q", h.Name, got[h.Name], want)
		}
	}
}

// sshDigest fingerprints every host's deploy root (the service's run/
// directory aside: its log grows on its own), keyed by host.
func sshDigest(t *testing.T, f *sshfleet.Fleet, only ...string) map[string]string {
	t.Helper()
	d := map[string]string{}
	for _, h := range f.Hosts {
		if len(only) > 0 && !contains(only, h.Name) {
			continue
		}
		for k, v := range treeDigest(t, h.Root) {
			if strings.HasPrefix(k, "run") {
				continue
			}
			d[h.Name+"/"+k] = v
		}
	}
	return d
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sshRelease(t *testing.T, f *sshfleet.Fleet, version string) string {
	t.Helper()
	src, err := f.WriteRelease(version, true)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestE2ESSHFleet: 8 hosts over real sshd. Bad host keys refuse the
// deploy with nothing touched; a full deploy; the same release again
// changes nothing; a host whose sshd dies mid-deploy is reported
// unreachable and the rest goes on within the failure limit; once it is
// back, a re-deploy touches only it.
func TestE2ESSHFleet(t *testing.T) {
	t.Parallel()
	f := newSSHFleet(t, 8)
	v1 := sshRelease(t, f, "1.0.0")

	// h03 was reinstalled (new host key), h05 was never recorded.
	if err := f.ChangeHostKey("h03"); err != nil {
		t.Fatal(err)
	}
	if err := f.ForgetHostKey("h05"); err != nil {
		t.Fatal(err)
	}
	before := sshDigest(t, f)
	r := runDrover(t, "deploy", "-c", f.Config, "--release", v1)
	mustExit(t, r, 2)
	h03, h05 := f.Host("h03"), f.Host("h05")
	for _, want := range []string{
		"host h03", "HOST KEY MISMATCH", "ssh-keygen -R '[127.0.0.1]:" + strconv.Itoa(h03.SSHPort) + "' -f " + f.KnownHosts,
		"host h05", "[127.0.0.1]:" + strconv.Itoa(h05.SSHPort) + " is not in " + f.KnownHosts, "ssh-keyscan -p " + strconv.Itoa(h05.SSHPort),
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refusal lacks %q:\n%s", want, r)
		}
	}
	if d := diffDigests(before, sshDigest(t, f)); len(d) > 0 {
		t.Fatalf("a refused deploy changed hosts:\n%s", strings.Join(d, "\n"))
	}
	for _, h := range f.Hosts {
		if _, err := os.Stat(filepath.Join(h.Root, "releases")); err == nil {
			t.Errorf("%s was staged by a refused deploy", h.Name)
		}
	}
	r = runDrover(t, "status", "-c", f.Config)
	if !strings.Contains(r.stdout, "HOST KEY MISMATCH") {
		t.Errorf("status does not show the mismatch:\n%s", r)
	}

	// The operator checks and records the keys: the full deploy.
	if err := f.WriteKnownHosts(); err != nil {
		t.Fatal(err)
	}
	r = runDrover(t, "deploy", "-c", f.Config, "--release", v1)
	mustExit(t, r, 0)
	sshServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		bins, _ := filepath.Glob(filepath.Join(h.Root, ".drover", "bin", "drover-*"))
		if len(bins) != 1 {
			t.Fatalf("%s holds drover binaries %v, want one", h.Name, bins)
		}
		if fi, err := os.Stat(bins[0]); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %s mode %v %v", h.Name, bins[0], fi.Mode(), err)
		}
		// What the host holds, and just ran the deploy with, is drover
		// without DWARF, symbol table and section headers.
		ef, err := elf.Open(bins[0])
		if err != nil {
			t.Fatalf("%s: %s is no ELF: %v", h.Name, bins[0], err)
		}
		fi, _ := os.Stat(bins[0])
		own, _ := os.Stat(droverBin)
		if len(ef.Sections) != 0 || fi.Size() >= own.Size() {
			t.Errorf("%s holds drover with %d sections, %d bytes (this one: %d): not stripped", h.Name, len(ef.Sections), fi.Size(), own.Size())
		}
		ef.Close()
	}

	// The same release again changes nothing.
	digest := sshDigest(t, f)
	r = runDrover(t, "deploy", "-c", f.Config, "--release", v1)
	mustExit(t, r, 0)
	if d := diffDigests(digest, sshDigest(t, f)); len(d) > 0 {
		t.Fatalf("re-deploying the same release changed hosts:\n%s", strings.Join(d, "\n"))
	}

	// v2, and h06's sshd dies while the canary is being checked: h06 is
	// unreachable, the default group (failure limit 1 of 7) goes on, and
	// the deploy needs a person (exit 3).
	v2 := sshRelease(t, f, "2.0.0")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, "deploy", "-c", f.Config, "--release", v2)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	lines := bufio.NewScanner(stdout)
	killed := false
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if !killed && strings.Contains(lines.Text(), "h01") && strings.Contains(lines.Text(), "switch") {
			if err := f.Down("h06"); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	res := result{code: code, stdout: out.String(), stderr: errb.String()}
	if !killed {
		t.Fatalf("the canary never switched:\n%s", res)
	}
	mustExit(t, res, 3)
	if !strings.Contains(res.stdout, "UNREACHABLE") || !strings.Contains(res.stdout, "h06") {
		t.Errorf("output does not report h06 unreachable:\n%s", res)
	}
	sshServing(t, f, "2.0.0", map[string]string{"h06": "1.0.0"})

	// h06 comes back: a re-deploy touches only it.
	if err := f.Up("h06"); err != nil {
		t.Fatal(err)
	}
	others := []string{}
	for _, h := range f.Hosts {
		if h.Name != "h06" {
			others = append(others, h.Name)
		}
	}
	digest = sshDigest(t, f, others...)
	r = runDrover(t, "deploy", "-c", f.Config, "--release", v2)
	mustExit(t, r, 0)
	if d := diffDigests(digest, sshDigest(t, f, others...)); len(d) > 0 {
		t.Fatalf("the re-deploy touched other hosts than h06:\n%s", strings.Join(d, "\n"))
	}
	sshServing(t, f, "2.0.0", nil)
	if !strings.Contains(r.stdout, "h06") {
		t.Errorf("re-deploy output does not mention h06:\n%s", r)
	}
}
