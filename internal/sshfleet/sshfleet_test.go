package sshfleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"drover"
	"drover/config"
	sshtransport "drover/transport/ssh"
)

func newFleet(t *testing.T, n int) *Fleet {
	t.Helper()
	f, err := New(Options{Dir: t.TempDir(), Hosts: n, NoShellRC: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// state reads host's state.json over real SSH, through drover.yaml as
// drover itself reads it.
func state(t *testing.T, f *Fleet, name string) error {
	t.Helper()
	spec, err := config.LoadConfig(f.Config, "")
	if err != nil {
		t.Fatal(err)
	}
	h, ok := spec.Host(name)
	if !ok {
		t.Fatalf("no host %s in %s", name, f.Config)
	}
	tr := &sshtransport.Transport{Config: spec.SSH, AgentSocket: "/nonexistent"}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := tr.Open(ctx, h)
	if err != nil {
		return err
	}
	_, err = c.State(ctx)
	return err
}

func TestFleetOverRealSSH(t *testing.T) {
	f := newFleet(t, 3)
	for _, h := range f.Hosts {
		if err := state(t, f, h.Name); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if fi, err := os.Stat(h.Root); err != nil || !fi.IsDir() {
			t.Fatalf("deploy root of %s: %v", h.Name, err)
		}
	}

	// Down: unreachable, by name; Up: back on the same port.
	if err := f.Down("h02"); err != nil {
		t.Fatal(err)
	}
	err := state(t, f, "h02")
	if drover.ErrorCode(err) != drover.EUNREACHABLE || !strings.Contains(err.Error(), "host h02") {
		t.Fatalf("h02 down: %v", err)
	}
	if err := f.Up("h02"); err != nil {
		t.Fatal(err)
	}
	if err := state(t, f, "h02"); err != nil {
		t.Fatalf("h02 back up: %v", err)
	}

	// A new host key is a mismatch; a forgotten one is unknown.
	if err := f.ChangeHostKey("h01"); err != nil {
		t.Fatal(err)
	}
	if err := state(t, f, "h01"); drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "HOST KEY MISMATCH") {
		t.Fatalf("h01 with a new key: %v", err)
	}
	if err := f.ForgetHostKey("h03"); err != nil {
		t.Fatal(err)
	}
	if err := state(t, f, "h03"); drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "is not in") {
		t.Fatalf("h03 forgotten: %v", err)
	}
	if err := f.WriteKnownHosts(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"h01", "h03"} {
		if err := state(t, f, n); err != nil {
			t.Fatalf("%s after WriteKnownHosts: %v", n, err)
		}
	}
}

// Down must take the connections with it: a connection made before is
// gone too, as when a machine dies.
func TestDownKillsConnections(t *testing.T) {
	f := newFleet(t, 2)
	spec, err := config.LoadConfig(f.Config, "")
	if err != nil {
		t.Fatal(err)
	}
	tr := &sshtransport.Transport{Config: spec.SSH, AgentSocket: "/nonexistent"}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := tr.Open(ctx, spec.Hosts[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.State(ctx); err != nil {
		t.Fatal(err)
	}
	f.Down("h01")
	if _, err := c.State(ctx); drover.ErrorCode(err) != drover.EUNREACHABLE {
		t.Fatalf("state on a dead host's old connection: %v", err)
	}
}

func TestMissingSshdFailsNamingIt(t *testing.T) {
	_, err := New(Options{Dir: t.TempDir(), Hosts: 1, Sshd: filepath.Join(t.TempDir(), "sshd")})
	if err == nil || !strings.Contains(err.Error(), "sshd is missing") || !strings.Contains(err.Error(), "openssh-server") {
		t.Fatalf("error %v", err)
	}
}

// NoShellRC: sshd hands the login shell SHLVL=1, so bash does not take
// itself for a shell started by sshd and skips ~/.bashrc.
func TestNoShellRC(t *testing.T) {
	f, err := New(Options{Dir: t.TempDir(), Hosts: 1, NoShellRC: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	key, err := os.ReadFile(f.Identity)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := knownhosts.New(f.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	cl, err := gossh.Dial("tcp", f.Hosts[0].Address(), &gossh.ClientConfig{User: user, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sess, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Output(`case $(readlink /proc/$$/exe) in */bash) echo "bash $SHLVL";; *) echo "other $SHLVL";; esac`)
	if err != nil {
		t.Fatal(err)
	}
	// bash counts itself on top of sshd's 1; another shell leaves it.
	if got := strings.TrimSpace(string(out)); got != "bash 2" && got != "other 1" {
		t.Fatalf("login shell says %q, want SHLVL set by sshd (bash 2 or other 1)", got)
	}
}

// HostBinary: every host holds the binary, hard-linked, where transport
// ssh looks for a drover with its sha256, in a directory only its owner
// may enter: what drover's own upload leaves.
func TestHostBinaryPlacedWhereDroverLooks(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "drover")
	body := []byte("#!/bin/sh\necho a drover\n")
	if err := os.WriteFile(bin, body, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{Dir: t.TempDir(), Hosts: 2, HostBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	// Not ELF: drover sends it as it is.
	sum := sha256.Sum256(body)
	held, _, err := HostCopyOf(bin)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Stat(held)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range f.Hosts {
		p := sshtransport.RemoteBinary(h.Root, hex.EncodeToString(sum[:]))
		got, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if !os.SameFile(got, want) {
			t.Errorf("%s: %s is not a link to %s", h.Name, p, held)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != string(body) {
			t.Errorf("%s: %s holds %q (%v), want the binary", h.Name, p, b, err)
		}
		if got.Mode().Perm()&0o100 == 0 {
			t.Errorf("%s: %s is not executable (%v)", h.Name, p, got.Mode())
		}
		if d, err := os.Stat(filepath.Dir(p)); err != nil || d.Mode().Perm() != 0o700 {
			t.Errorf("%s: %s: %v %v, want a 0700 directory", h.Name, filepath.Dir(p), d.Mode(), err)
		}
	}
}
