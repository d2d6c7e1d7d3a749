package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover/internal/localfleet"
)

// startServer runs `drover server` for f's config on a free loopback port
// and returns its URL; the server is stopped with SIGTERM at cleanup.
func startServer(t *testing.T, config, tokens string, extra ...string) string {
	t.Helper()
	cmd := exec.Command(droverBin, append([]string{"server", "-c", config, "--tokens", tokens, "--listen", "127.0.0.1:0",
		"--releases-dir", fleetReleases(t, config)}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	var rest strings.Builder
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
				rest.WriteString(sc.Text() + "\n")
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { <-drained; done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("drover server exited: %v\n%s", err, rest.String())
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
			t.Errorf("drover server did not stop on SIGTERM")
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l := <-lines:
			if _, url, ok := strings.Cut(l, "listening on "); ok {
				return url
			}
		case <-deadline:
			t.Fatal("drover server did not say where it listens")
		}
	}
}

// fleetReleases is the directory a local fleet's releases are written in
// (localfleet's WriteRelease): the server's --releases-dir in tests.
func fleetReleases(t *testing.T, config string) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(config), "src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func createToken(t *testing.T, tokens, name, role string) string {
	t.Helper()
	r := runDrover(t, "server", "token", "create", "--name", name, "--role", role, "--tokens", tokens)
	mustExit(t, r, 0)
	return strings.TrimSpace(r.stdout)
}

// The CLI through a server: deploys run in the server and exit with the
// deploy's code (0, then 1 for a release that fails its checks and is
// rolled back), the history is the server's and names the token, and a
// viewer's deploy is refused before anything runs.
func TestE2EServerDeployThroughCLI(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	ci := createToken(t, tokens, "ci", "deployer")
	viewer := createToken(t, tokens, "watcher", "viewer")
	url := startServer(t, f.Config, tokens)

	r := deploy(t, f, writeRelease(t, f, "1.0.0", true), "--server", url, "--token", ci, "--yes", "-m", "via server")
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "exit 0") {
		t.Errorf("deploy output lacks the verdict: %s", r)
	}
	wantServing(t, f, "1.0.0", nil)

	r = deploy(t, f, releaseWithBadHosts(t, f, "2.0.0", "h02"), "--server", url, "--token", ci, "--yes", "--output", "json")
	mustExit(t, r, 1)
	if !strings.Contains(r.stdout, `"kind":"host_failed"`) || !strings.Contains(r.stdout, `"verdict":"rolled_back"`) {
		t.Errorf("json output: %s", r)
	}
	wantServing(t, f, "1.0.0", nil)

	r = deploy(t, f, writeRelease(t, f, "3.0.0", true), "--server", url, "--token", viewer, "--yes")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "viewer") {
		t.Errorf("viewer's deploy: %s", r)
	}
	r = deploy(t, f, writeRelease(t, f, "3.0.0", true), "--server", url, "--token", "drover_nope", "--yes")
	mustExit(t, r, 2)

	// One history: the server's, read through it and read locally.
	for _, args := range [][]string{
		{"history", "-c", f.Config, "--json", "--server", url, "--token", viewer},
		{"history", "-c", f.Config, "--json"},
	} {
		r = runDrover(t, args...)
		mustExit(t, r, 0)
		var rows []struct {
			Kind, User, Message, Outcome string
		}
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, r)
		}
		if len(rows) != 2 || rows[0].User != "token:ci" || rows[1].Message != "via server" || rows[0].Outcome != "rolled_back" {
			t.Errorf("%v: %+v", args, rows)
		}
	}
	r = runDrover(t, "status", "-c", f.Config, "--server", url, "--token", viewer)
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "h03") || !strings.Contains(r.stdout, "1.0.0") {
		t.Errorf("status through the server: %s", r)
	}
}

// drover server refuses to run without a tokens file, with one others
// can read, and on a non-loopback address without TLS.
func TestE2EServerRefusesInsecureStart(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(args ...string) result {
		cmd := exec.CommandContext(ctx, droverBin, args...)
		cmd.Stdout = io.Discard
		var errb strings.Builder
		cmd.Stderr = &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{code: code, stderr: errb.String()}
	}
	r := run("server", "-c", f.Config, "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "tokens") {
		t.Errorf("without tokens: %s", r)
	}
	createToken(t, tokens, "admin", "admin")
	r = run("server", "-c", f.Config, "--tokens", tokens, "--listen", "0.0.0.0:0")
	if r.code != 2 || !strings.Contains(r.stderr, "--tls-cert") {
		t.Errorf("non-loopback without TLS: %s", r)
	}
	if err := exec.Command("chmod", "644", tokens).Run(); err != nil {
		t.Fatal(err)
	}
	r = run("server", "-c", f.Config, "--tokens", tokens, "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("readable tokens file: %s", r)
	}
}

// With a certificate the server speaks https only, and the CLI verifies it
// against --server-ca.
func TestE2EServerTLS(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	tok := createToken(t, tokens, "viewer", "viewer")
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, cert, key)
	url := startServer(t, f.Config, tokens, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("server url %q", url)
	}
	r := runDrover(t, "status", "-c", f.Config, "--server", url, "--token", tok, "--server-ca", cert, "--json")
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, `"h02"`) {
		t.Errorf("status over https: %s", r)
	}
	// An unknown certificate is refused.
	r = runDrover(t, "status", "-c", f.Config, "--server", url, "--token", tok)
	if r.code == 0 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("unverified server accepted: %s", r)
	}
	// Plain http to the TLS port gets nowhere.
	r = runDrover(t, "status", "-c", f.Config, "--server", "http://"+strings.TrimPrefix(url, "https://"), "--token", tok)
	if r.code == 0 {
		t.Errorf("plain http accepted: %s", r)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 that is its own CA.
func writeSelfSigned(t *testing.T, certPath, keyPath string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drover test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Ctrl-C on `drover deploy --server` does what it does on a local deploy:
// the server aborts the run, which rolls back, and the command exits 1.
func TestE2EServerInterruptAborts(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: `groups:
  - name: canary
    hosts: [h01]
    approve: manual
    approve_timeout: 2m
  - name: default
    hosts: ["h*"]
`})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	tok := createToken(t, tokens, "ci", "deployer")
	url := startServer(t, f.Config, tokens)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, "deploy", "-c", f.Config, "--release", writeRelease(t, f, "1.0.0", true),
		"--server", url, "--token", tok, "--yes", "--output", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), `"kind":"gate_start"`) {
			cmd.Process.Signal(syscall.SIGINT)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1 after the interrupt, got %v\n%s\n%s", err, strings.Join(lines, "\n"), errb.String())
	}
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, `"verdict":"rolled_back"`) || !strings.Contains(all, "interrupted") {
		t.Errorf("output:\n%s\n%s", all, errb.String())
	}
	for h, v := range f.Versions(context.Background()) {
		if !strings.HasPrefix(v, "down") {
			t.Errorf("%s serves %q after the aborted first deploy was rolled back", h, v)
		}
	}
}
