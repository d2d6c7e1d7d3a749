package ssh

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/agent"

	"drover"
	"drover/release"
)

func wantCode(t *testing.T, err error, code string) *drover.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got nil", code)
	}
	if got := drover.ErrorCode(err); got != code {
		t.Fatalf("want error %s, got %s: %v (hint: %s)", code, got, err, drover.ErrorHint(err))
	}
	var de *drover.Error
	errors.As(err, &de)
	return de
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, tr *Transport, h drover.Host) drover.HostConn {
	t.Helper()
	c, err := tr.Open(ctxT(t), h)
	if err != nil {
		t.Fatalf("open %s: %v (hint: %s)", h.Name, err, drover.ErrorHint(err))
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func buildRelease(t *testing.T, version string) *drover.Release {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	files := map[string]string{
		"bin/app":         "#!/bin/sh\necho " + version + "\n",
		"app.conf.tmpl":   "port = {{.Host.Vars.port}}\nbig = {{.Host.Vars.big}}\nneg = {{.Host.Vars.neg}}\nversion = {{.Release.Version}}\n",
		"bin/show-drover": "#!/bin/sh\necho \"bin=$DROVER_BIN host=$DROVER_HOST root=$DROVER_ROOT\"\n",
	}
	for name, content := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := release.Build(context.Background(), src, release.BuildOptions{Service: "hello", Version: version, CacheDir: t.TempDir(), Now: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDeployCycle drives every HostConn operation over SSH against the
// in-process server, with this test binary uploaded as the host binary.
func TestDeployCycle(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	h.Vars["big"] = uint64(1000000)
	h.Vars["neg"] = int64(-3)
	c := open(t, tr, h)

	st, err := c.State(ctx)
	if err != nil || st.Current != "" {
		t.Fatalf("state of a new host: %+v %v", st, err)
	}

	// Reading the state wrote nothing: not even drover is on the host yet.
	if _, err := os.Stat(filepath.Join(f.dir, "h01")); err == nil {
		t.Fatal("State wrote to the host")
	}
	if _, err := c.ReadFile(ctx, "state.json"); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Fatalf("read-file of a missing state.json: %v", err)
	}

	// drover is now installed content-addressed, checked, 0700.
	self, _ := os.Executable()
	sum, err := tr.sum(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := RemoteBinary(h.DeployRoot, sum)
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("installed binary %s: %v %v", bin, fi, err)
	}
	if fi, err := os.Stat(filepath.Dir(bin)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("bin dir: %v %v", fi, err)
	}

	r := buildRelease(t, "1.0.0")
	cf := []drover.ConfigFile{{Template: "app.conf.tmpl", Dest: "app.conf", Validate: "test -s {{.Path}}"}}
	spec := &drover.Spec{Service: "hello"}
	data := drover.NewTemplateData(spec, h, r.ID(), r.Version())
	res, err := c.Stage(ctx, drover.StageRequest{DeployID: "d1", Release: r, ConfigFiles: cf, Data: data})
	if err != nil {
		t.Fatalf("stage: %v", err)
	}
	// The host rendered with the controller's values: 1000000 is not
	// "1e+06", and the hash is the controller's.
	wantConf := "port = 18001\nbig = 1000000\nneg = -3\nversion = 1.0.0\n"
	if want := drover.ConfigHash([]drover.RenderedFile{{Dest: "app.conf", Content: []byte(wantConf)}}); res.ConfigHash != want || res.Slot != r.ID() {
		t.Fatalf("stage result %+v, want hash %s", res, want)
	}
	b, err := c.ReadFile(ctx, "releases/"+res.Slot+"/app.conf")
	if err != nil || string(b) != wantConf {
		t.Fatalf("read-file: %q %v", b, err)
	}
	_, err = c.ReadFile(ctx, "nope")
	wantCode(t, err, drover.ENOTFOUND)

	st, err = c.Promote(ctx, drover.PromoteRequest{DeployID: "d1", Slot: res.Slot, Release: r.ID(), Version: "1.0.0", ConfigHash: res.ConfigHash, At: time.Unix(1700000000, 0)})
	if err != nil || st.Current != res.Slot || st.Version != "1.0.0" {
		t.Fatalf("promote: %+v %v", st, err)
	}

	out, err := c.Exec(ctx, drover.ExecRequest{Command: "bin/show-drover; echo $X; exit 3", Env: []string{"X=from-env"}})
	if err != nil || out.ExitCode != 3 {
		t.Fatalf("exec: %+v %v", out, err)
	}
	for _, want := range []string{"bin=" + bin, "host=h01", "root=" + h.DeployRoot, "from-env"} {
		if !strings.Contains(out.Output, want) {
			t.Errorf("exec output %q lacks %q", out.Output, want)
		}
	}
	_, err = c.Exec(ctx, drover.ExecRequest{Command: "true", Dir: "../x"})
	wantCode(t, err, drover.EINVALID)

	// Checks run on the host: a command check in the current release.
	cr, err := c.Check(ctx, drover.CheckSpec{Name: "app", Type: "command", Command: "bin/app | grep -q 1.0.0", Timeout: 5 * time.Second, Interval: 100 * time.Millisecond})
	if err != nil || !cr.OK {
		t.Fatalf("check: %+v %v", cr, err)
	}
	cr, err = c.Check(ctx, drover.CheckSpec{Name: "bad", Type: "command", Command: "false", Timeout: 300 * time.Millisecond, Interval: 100 * time.Millisecond})
	if err != nil || cr.OK || cr.Attempts < 1 {
		t.Fatalf("failing check: %+v %v", cr, err)
	}

	st, err = c.Restore(ctx, drover.RestoreRequest{DeployID: "d1", To: drover.Snapshot{}, At: time.Unix(1700000100, 0)})
	if err != nil || st.Current != "" {
		t.Fatalf("restore: %+v %v", st, err)
	}
	if _, err := os.Lstat(filepath.Join(h.DeployRoot, "current")); err == nil {
		t.Fatal("current link survived a restore to nothing")
	}
	removed, err := c.Prune(ctx, 2)
	if err != nil || len(removed) != 0 {
		t.Fatalf("prune: %v %v", removed, err)
	}
	// Another tool's release: kept by Prune, removed by PruneForeign
	// (prune_foreign) once nothing points at it.
	if err := os.MkdirAll(filepath.Join(h.DeployRoot, "releases", "20200101120000"), 0o755); err != nil {
		t.Fatal(err)
	}
	removed, err = c.Prune(ctx, 0)
	if err != nil || len(removed) != 1 || removed[0] != res.Slot {
		t.Fatalf("prune 0: %v %v", removed, err)
	}
	removed, err = c.(drover.ForeignPruner).PruneForeign(ctx, 0)
	if err != nil || len(removed) != 1 || removed[0] != "20200101120000" {
		t.Fatalf("prune foreign: %v %v", removed, err)
	}

	// A bad request is an error with the host's words, not a crash.
	_, err = c.Promote(ctx, drover.PromoteRequest{Slot: "../etc"})
	if de := wantCode(t, err, drover.EINVALID); !strings.Contains(de.Where, "host h01") {
		t.Fatalf("where: %q", de.Where)
	}

	// Every step used one connection; a second Open reuses it too.
	c2 := open(t, tr, h)
	if _, err := c2.State(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Accepts.Load(); n != 1 {
		t.Fatalf("%d TCP connections, want 1 reused for every step", n)
	}
	for _, cmd := range f.srv.Commands() {
		if strings.Contains(cmd, "host ") && !strings.HasPrefix(cmd, bin+" host ") && !strings.HasPrefix(cmd, "uname -sm") && !strings.HasPrefix(cmd, "set -e") {
			t.Errorf("command %q does not run the installed binary", cmd)
		}
	}

	// A second transport (the next drover run) finds drover installed and
	// does not upload it again.
	uploads := countUploads(f.srv)
	tr2 := f.transport(f.config())
	c3 := open(t, tr2, h)
	if _, err := c3.State(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countUploads(f.srv); n != uploads || uploads != 1 {
		t.Fatalf("uploads: %d then %d, want 1 then 1", uploads, n)
	}
}

func countUploads(s *testServer) int {
	n := 0
	for _, c := range s.Commands() {
		if strings.Contains(c, `head -c `) && strings.Contains(c, `> "$tmp"`) {
			n++
		}
	}
	return n
}

func TestStageRefusesDamagedBundle(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	c := open(t, tr, h)
	r := buildRelease(t, "1.0.0")
	bad := *r
	bad.BundleSHA256 = strings.Repeat("0", 64)
	_, err := c.Stage(ctx, drover.StageRequest{Release: &bad, Data: drover.TemplateData{Host: drover.TemplateHost{Vars: map[string]any{}}}})
	if de := wantCode(t, err, drover.EINVALID); !strings.Contains(de.Error(), "sha256") {
		t.Fatalf("error: %v", de)
	}
	ents, _ := os.ReadDir(filepath.Join(h.DeployRoot, "releases"))
	if len(ents) != 0 {
		t.Fatalf("a damaged bundle left %v", ents)
	}
}

func TestUnknownHostKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	other := newServer(t, f.signer.PublicKey()) // not in known_hosts
	before, _ := os.ReadFile(f.knownHosts)
	tr := f.transport(f.config())
	_, err := tr.Open(ctxT(t), f.host("h02", other))
	de := wantCode(t, err, drover.EINVALID)
	norm := "[127.0.0.1]:" + strconv.Itoa(other.Port())
	for _, want := range []string{"host h02", norm, "is not in " + f.knownHosts, "SHA256:"} {
		if !strings.Contains(de.Error(), want) {
			t.Errorf("error %q lacks %q", de.Error(), want)
		}
	}
	for _, want := range []string{"ssh-keyscan -p " + strconv.Itoa(other.Port()), "--ssh-accept-new"} {
		if !strings.Contains(de.Hint, want) {
			t.Errorf("hint %q lacks %q", de.Hint, want)
		}
	}
	after, _ := os.ReadFile(f.knownHosts)
	if string(after) != string(before) {
		t.Fatal("known_hosts changed without trust on first use")
	}
	if n := len(other.Commands()); n != 0 {
		t.Fatalf("%d commands ran on a host whose key is unknown", n)
	}
}

func TestMismatchedHostKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	// known_hosts holds another key for the server's address: a host
	// reinstalled, or a man in the middle.
	impostor, _ := keyPair(t)
	if err := os.WriteFile(f.knownHosts, []byte("# mine\n"+lineFor(f.srv.Addr, impostor.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tofu := range []bool{false, true} {
		cfg := f.config()
		cfg.TrustOnFirstUse = tofu // never overrides a mismatch
		tr := f.transport(cfg)
		_, err := tr.Open(ctxT(t), f.host("h01", f.srv))
		de := wantCode(t, err, drover.EINVALID)
		norm := "[127.0.0.1]:" + strconv.Itoa(f.srv.Port())
		for _, want := range []string{"host h01", "HOST KEY MISMATCH", norm, f.knownHosts + ":2"} {
			if !strings.Contains(de.Error(), want) {
				t.Errorf("error %q lacks %q", de.Error(), want)
			}
		}
		if want := "ssh-keygen -R '" + norm + "' -f " + f.knownHosts; !strings.Contains(de.Hint, want) {
			t.Errorf("hint %q lacks %q", de.Hint, want)
		}
	}
	if n := len(f.srv.Commands()); n != 0 {
		t.Fatalf("%d commands ran on a host whose key does not match", n)
	}
}

func TestTrustOnFirstUseRecordsKey(t *testing.T) {
	f := newFixture(t)
	os.Remove(f.knownHosts) // even the file is created
	cfg := f.config()
	cfg.TrustOnFirstUse = true
	var notices []string
	var mu sync.Mutex
	tr := &Transport{Config: cfg, AgentSocket: "/nonexistent", Notice: func(host, msg string) {
		mu.Lock()
		notices = append(notices, host+": "+msg)
		mu.Unlock()
	}}
	defer tr.Close()
	c, err := tr.Open(ctxT(t), f.host("h01", f.srv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.State(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.knownHosts)
	if err != nil || strings.TrimSpace(string(b)) != f.srv.KnownHostsLine() {
		t.Fatalf("known_hosts %q (%v), want %q", b, err, f.srv.KnownHostsLine())
	}
	if len(notices) != 1 || !strings.Contains(notices[0], "h01: trusted on first use: recorded host key ssh-ed25519 SHA256:") {
		t.Fatalf("notices %q", notices)
	}
	// From now on it is known: strict mode accepts it.
	tr2 := f.transport(f.config())
	open(t, tr2, f.host("h01", f.srv))
}

func TestMissingKnownHostsFileIsRefused(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.KnownHosts = filepath.Join(f.dir, "nope")
	_, err := f.transport(cfg).Open(ctxT(t), f.host("h01", f.srv))
	if de := wantCode(t, err, drover.EINVALID); !strings.Contains(de.Error(), "does not exist") {
		t.Fatalf("error: %v", de)
	}
}

func TestAgentAuth(t *testing.T) {
	f := newFixture(t)
	sock := filepath.Join(f.dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	cfg := f.config()
	cfg.Identity = ""

	// The agent does not hold the key yet: the host refuses us.
	tr := &Transport{Config: cfg, AgentSocket: sock}
	_, err = tr.Open(ctxT(t), f.host("h01", f.srv))
	if de := wantCode(t, err, drover.EUNREACHABLE); !strings.Contains(de.Hint, "refused the key") {
		t.Fatalf("hint: %q", de.Hint)
	}
	tr.Close()

	raw, err := os.ReadFile(f.identity)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := parseRawKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	tr = &Transport{Config: cfg, AgentSocket: sock}
	c, err := tr.Open(ctxT(t), f.host("h01", f.srv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.State(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	tr.Close()

	// Neither an identity nor an agent: said plainly.
	_, err = (&Transport{Config: cfg, AgentSocket: ""}).Open(ctxT(t), f.host("h01", f.srv))
	if os.Getenv("SSH_AUTH_SOCK") == "" {
		if de := wantCode(t, err, drover.EINVALID); !strings.Contains(de.Error(), "no SSH key") {
			t.Fatalf("error: %v", de)
		}
	}
}

func TestReconnectAfterServerDropsConnection(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	tr := f.transport(f.config())
	c := open(t, tr, f.host("h01", f.srv))
	if _, err := c.State(ctx); err != nil {
		t.Fatal(err)
	}
	f.srv.Drop()
	<-f.srv.connDone
	// The next step connects again, on the same HostConn.
	if _, err := c.State(ctx); err != nil {
		t.Fatalf("after the drop: %v", err)
	}
	if n := f.srv.Accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestConnectionLostMidCommandIsUnreachable(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	c := open(t, tr, h)
	marker := filepath.Join(f.dir, "started")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, drover.ExecRequest{Command: "touch " + marker + "; sleep 30", Dir: ".", Timeout: time.Minute})
		errc <- err
	}()
	waitFile(t, marker)
	f.srv.Drop()
	err := <-errc
	if de := wantCode(t, err, drover.EUNREACHABLE); !strings.Contains(de.Where, "host h01") {
		t.Fatalf("where %q", de.Where)
	}
}

func TestServerDownIsUnreachable(t *testing.T) {
	f := newFixture(t)
	f.srv.Close()
	_, err := f.transport(f.config()).Open(ctxT(t), f.host("h01", f.srv))
	if de := wantCode(t, err, drover.EUNREACHABLE); !strings.Contains(de.Error(), "host h01") || !strings.Contains(de.Error(), f.srv.Addr) {
		t.Fatalf("error %v", de)
	}
}

func TestKeepalive(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	cfg := f.config()
	cfg.KeepaliveInterval = 50 * time.Millisecond
	tr := f.transport(cfg)
	c := open(t, tr, f.host("h01", f.srv))
	// An answering server keeps the connection: keepalives arrive and
	// the connection is still the first one.
	for f.srv.Keepalives.Load() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.State(ctx); err != nil || f.srv.Accepts.Load() != 1 {
		t.Fatalf("state %v, %d connections", err, f.srv.Accepts.Load())
	}
	// A server that stops answering is hung up on by the client.
	f.srv.IgnoreKeepalive.Store(true)
	select {
	case <-f.srv.connDone:
	case <-ctx.Done():
		t.Fatal("the client kept a connection whose keepalives went unanswered")
	}
	f.srv.IgnoreKeepalive.Store(false)
	if _, err := c.State(ctx); err != nil || f.srv.Accepts.Load() != 2 {
		t.Fatalf("after reconnect: %v, %d connections", err, f.srv.Accepts.Load())
	}
}

// A host that stops answering is given count intervals, not one: a busy
// host that answers one probe late keeps its connection, and a silent one
// is hung up on within interval × (count+1).
func TestKeepaliveCount(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	cfg := f.config()
	const interval, count = 100 * time.Millisecond, 4
	cfg.KeepaliveInterval, cfg.KeepaliveCount = interval, count
	tr := f.transport(cfg)
	c := open(t, tr, f.host("h01", f.srv))
	if _, err := c.State(ctx); err != nil {
		t.Fatal(err)
	}
	for f.srv.Keepalives.Load() < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	f.srv.IgnoreKeepalive.Store(true)
	silent := time.Now()
	select {
	case <-f.srv.connDone:
	case <-ctx.Done():
		t.Fatal("the client kept a connection whose keepalives went unanswered")
	}
	took := time.Since(silent)
	// The probe in flight when the server went silent may have been
	// answered already: count intervals from the next one at least.
	if took < (count-1)*interval {
		t.Errorf("hung up %s after the server went silent: before %d unanswered intervals of %s", took, count, interval)
	}
	if took > (count+1)*interval+time.Second {
		t.Errorf("hung up %s after the server went silent, bound is %s", took, (count+1)*interval)
	}
}

// A host that accepts TCP and never speaks SSH must not hold the deploy.
func TestConnectTimeout(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	}()
	cfg := f.config()
	cfg.ConnectTimeout = 200 * time.Millisecond
	h := f.host("h01", f.srv)
	h.Address = ln.Addr().String()
	_, err = f.transport(cfg).Open(ctxT(t), h)
	if de := wantCode(t, err, drover.EUNREACHABLE); !strings.Contains(de.Error(), "did not finish within") {
		t.Fatalf("error %v", de)
	}
}

// The step's context bounds a command: ETIMEOUT, and the command's
// process is gone.
func TestCommandTimeout(t *testing.T) {
	f := newFixture(t)
	tr := f.transport(f.config())
	c := open(t, tr, f.host("h01", f.srv))
	// drover installed and its serve session up first: what is timed
	// below is the command, not the upload of a race-built test binary
	// on a loaded machine.
	if _, err := c.Exec(ctxT(t), drover.ExecRequest{Command: "true", Dir: "."}); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(f.dir, "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Exec(ctx, drover.ExecRequest{Command: "sleep 60 & echo $! > " + pidFile + "; wait", Dir: ".", Timeout: time.Minute})
	wantCode(t, err, drover.ETIMEOUT)
	waitFile(t, pidFile)
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command's child %d outlived the step's deadline", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The connection survived: the next step works on it.
	if _, err := c.State(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestProxyJump(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	jump := newServer(t, f.signer.PublicKey())
	f.trust(jump)
	cfg := f.config()
	cfg.ProxyJump = jump.Addr
	tr := f.transport(cfg)
	var hosts []drover.HostConn
	var targets []*testServer
	for i := range 3 {
		s := f.srv
		if i > 0 {
			s = newServer(t, f.signer.PublicKey())
			f.trust(s)
		}
		targets = append(targets, s)
		hosts = append(hosts, open(t, tr, f.host("h0"+strconv.Itoa(i+1), s)))
	}
	for _, c := range hosts {
		if _, err := c.State(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// One connection to the jump host carries one channel per host.
	if a, fw := jump.Accepts.Load(), jump.Forwards.Load(); a != 1 || fw != 3 {
		t.Fatalf("jump host: %d connections, %d forwards; want 1 and 3", a, fw)
	}
	for _, s := range targets {
		if len(s.Commands()) == 0 {
			t.Fatalf("no command reached %s", s.Addr)
		}
	}
	if len(jump.Commands()) != 0 {
		t.Fatalf("commands ran on the jump host: %q", jump.Commands())
	}
}

// A host of another architecture is refused unless --host-binary gives a
// drover for it, and a binary for the wrong one is refused too.
func TestForeignArchitecture(t *testing.T) {
	f := newFixture(t)
	fake := filepath.Join(f.dir, "fakebin")
	os.MkdirAll(fake, 0o755)
	os.WriteFile(filepath.Join(fake, "uname"), []byte("#!/bin/sh\necho Linux aarch64\n"), 0o755)
	f.srv.Env = []string{"PATH=" + fake + ":" + os.Getenv("PATH")}
	h := f.host("h01", f.srv)

	_, err := f.transport(f.config()).Open(ctxT(t), h)
	de := wantCode(t, err, drover.EINVALID)
	if !strings.Contains(de.Error(), "host h01") || !strings.Contains(de.Error(), "linux/arm64") || !strings.Contains(de.Hint, "--host-binary") || !strings.Contains(de.Hint, "GOARCH=arm64") {
		t.Fatalf("error %v hint %q", de, de.Hint)
	}

	cfg := f.config()
	cfg.HostBinary, _ = os.Executable() // an amd64 (this machine's) binary
	_, err = f.transport(cfg).Open(ctxT(t), h)
	if de := wantCode(t, err, drover.EINVALID); !strings.Contains(de.Error(), "is built for") {
		t.Fatalf("error %v", de)
	}
	if countUploads(f.srv) != 0 {
		t.Fatal("a binary was uploaded to a host it cannot run on")
	}
}

func TestParseUname(t *testing.T) {
	for in, want := range map[string]string{"Linux x86_64": "linux/amd64", "Linux aarch64": "linux/arm64", "Darwin arm64": "darwin/arm64", "FreeBSD amd64": "freebsd/amd64", "Linux armv7l": "linux/arm"} {
		os, arch, ok := parseUname(in)
		if !ok || os+"/"+arch != want {
			t.Errorf("%q: %s/%s %v, want %s", in, os, arch, ok, want)
		}
	}
	for _, in := range []string{"", "Plan9 x86_64", "Linux mips", "Linux"} {
		if _, _, ok := parseUname(in); ok {
			t.Errorf("%q parsed", in)
		}
	}
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(p); err == nil && (len(b) > 0 || !strings.HasSuffix(p, "pid")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestValidateOverSSH: the validate operation tries a release on a host
// never deployed and leaves its deploy root absent; a failing validate
// command comes back as EFAILED with the host's output.
func TestValidateOverSSH(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	c := open(t, tr, h)
	v, ok := c.(drover.Validator)
	if !ok {
		t.Fatal("the ssh connection is not a drover.Validator")
	}
	r := buildRelease(t, "1.0.0")
	req := drover.StageRequest{Release: r, Data: drover.TemplateData{Host: drover.TemplateHost{Vars: map[string]any{}}}}
	if _, err := v.Validate(ctx, req); err != nil {
		t.Fatal(err)
	}
	req.ConfigFiles = []drover.ConfigFile{{Template: "bin/app", Dest: "app.conf", Validate: "echo refused by the service >&2; exit 1"}}
	_, err := v.Validate(ctx, req)
	if de := wantCode(t, err, drover.EFAILED); !strings.Contains(de.Error(), "refused by the service") {
		t.Fatalf("error: %v", de)
	}
	// The deploy root holds what opening the host installs (drover's
	// binary under .drover), nothing of the validated release.
	ents, _ := os.ReadDir(h.DeployRoot)
	for _, e := range ents {
		if e.Name() != ".drover" {
			t.Errorf("validate left %s in the deploy root", e.Name())
		}
	}
}

// The upload checks the binary's sha256 with openssl when the host has
// it (the CPU's SHA instructions: every host of a first deploy hashes
// drover at once), and with sha256sum when openssl answers anything but a
// sum.
func TestUploadHashesWithOpenSSLThenFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		wantCalled   bool
	}{
		{"openssl", `#!/bin/sh
touch "$(dirname "$0")/called"
s=$(sha256sum); echo "SHA2-256(stdin)= ${s%% *}"
`, true},
		{"broken openssl", `#!/bin/sh
touch "$(dirname "$0")/called"
echo "Error setting digest"; exit 1
`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			bin := f.fakeTool("openssl", tc.script)
			tr := f.transport(f.config())
			h := f.host("h01", f.srv)
			c := open(t, tr, h)
			if _, err := c.Exec(ctxT(t), drover.ExecRequest{Command: "true", Dir: "."}); err != nil {
				t.Fatalf("upload and exec: %v", err)
			}
			self, _ := os.Executable()
			sum, err := tr.sum(self)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(RemoteBinary(h.DeployRoot, sum)); err != nil {
				t.Fatalf("drover not installed: %v", err)
			}
			if _, err := os.Stat(filepath.Join(bin, "called")); (err == nil) != tc.wantCalled {
				t.Fatalf("openssl called: %v, want %v", err == nil, tc.wantCalled)
			}
		})
	}
}
