package ssh

// An in-process SSH server on 127.0.0.1:0 for the unit tests: its own host
// key, one authorized client key, exec requests run with `sh -c` on this
// machine (so the upload script and the uploaded binary — this test
// binary, see TestMain — really run), direct-tcpip for jump host tests.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"drover"
	"drover/check"
)

// TestMain makes this test binary double as the host binary: the
// transport uploads it (it is os.Executable) and runs it as
// `<binary> host OP --root DIR`.
func TestMain(m *testing.M) {
	if len(os.Args) >= 5 && os.Args[1] == "host" && os.Args[3] == "--root" {
		if os.Args[2] == OpServe && os.Getenv("DROVER_TEST_NO_SERVE") != "" {
			// A drover from before serve: cobra refuses the argument.
			fmt.Fprintln(os.Stderr, `Error: host takes one operation, got "serve"`)
			os.Exit(1)
		}
		if mode := os.Getenv(hostileEnv); mode != "" {
			os.Exit(hostile(mode, os.Args[2])) // hostile_test.go
		}
		self, _ := os.Executable()
		// As drover's main does: SIGTERM cancels the operation.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		err := Serve(ctx, os.Args[2], os.Stdin, os.Stdout, ServeOptions{
			Root: os.Args[4], Self: self,
			RunCheck: func(ctx context.Context, c drover.CheckSpec, exec func(context.Context, string) (drover.ExecResult, error)) drover.CheckResult {
				return check.Run(ctx, c, check.ExecFunc(exec))
			},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type testServer struct {
	t       *testing.T
	ln      net.Listener
	Addr    string
	HostKey gossh.Signer
	config  *gossh.ServerConfig

	// Env is added to every command's environment.
	Env []string
	// IgnoreKeepalive: global requests are never answered.
	IgnoreKeepalive atomic.Bool

	Accepts    atomic.Int32
	Keepalives atomic.Int32
	Forwards   atomic.Int32

	mu       sync.Mutex
	conns    []net.Conn
	commands []string
	wg       sync.WaitGroup
	closed   chan struct{}
	// connDone is signalled each time a connection ends.
	connDone chan struct{}
}

// keyPair makes an ed25519 key: the signer, and the private key in
// OpenSSH format for an identity file.
func keyPair(t *testing.T) (gossh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, pem.EncodeToMemory(block)
}

// newServer starts a server accepting the client key.
func newServer(t *testing.T, client gossh.PublicKey) *testServer {
	t.Helper()
	hk, _ := keyPair(t)
	s := &testServer{t: t, HostKey: hk, closed: make(chan struct{}), connDone: make(chan struct{}, 100)}
	s.config = &gossh.ServerConfig{
		PublicKeyCallback: func(c gossh.ConnMetadata, k gossh.PublicKey) (*gossh.Permissions, error) {
			if string(k.Marshal()) == string(client.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	s.config.AddHostKey(hk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// KnownHostsLine is this server's line for a known_hosts file.
func (s *testServer) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr}, s.HostKey.PublicKey())
}

func (s *testServer) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Drop closes every open connection, as a host that went away would.
func (s *testServer) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *testServer) Close() {
	select {
	case <-s.closed:
		return
	default:
	}
	close(s.closed)
	s.ln.Close()
	s.Drop()
	s.wg.Wait()
}

func (s *testServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.Accepts.Add(1)
		s.mu.Lock()
		s.conns = append(s.conns, nc)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(nc)
			s.connDone <- struct{}{}
		}()
	}
}

func (s *testServer) serveConn(nc net.Conn) {
	defer nc.Close()
	sc, chans, reqs, err := gossh.NewServerConn(nc, s.config)
	if err != nil {
		return
	}
	defer sc.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range reqs {
			s.Keepalives.Add(1)
			if s.IgnoreKeepalive.Load() {
				continue
			}
			if r.WantReply {
				r.Reply(false, nil) // what OpenSSH answers
			}
		}
	}()
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			ch, creqs, err := nch.Accept()
			if err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.session(ch, creqs)
			}()
		case "direct-tcpip":
			var p struct {
				Host     string
				Port     uint32
				OrigHost string
				OrigPort uint32
			}
			if err := gossh.Unmarshal(nch.ExtraData(), &p); err != nil {
				nch.Reject(gossh.ConnectionFailed, err.Error())
				continue
			}
			target, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
			if err != nil {
				nch.Reject(gossh.ConnectionFailed, err.Error())
				continue
			}
			ch, creqs, err := nch.Accept()
			if err != nil {
				target.Close()
				continue
			}
			s.Forwards.Add(1)
			go gossh.DiscardRequests(creqs)
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(ch, target); ch.CloseWrite() }()
			go func() { defer wg.Done(); io.Copy(target, ch); target.Close() }()
		default:
			nch.Reject(gossh.UnknownChannelType, "no")
		}
	}
}

// session serves one exec request with `sh -c`, its own process group,
// killed when the client closes the channel or sends a signal.
func (s *testServer) session(ch gossh.Channel, reqs <-chan *gossh.Request) {
	defer ch.Close()
	var cmd *exec.Cmd
	started := make(chan struct{})
	go func() {
		for r := range reqs {
			switch r.Type {
			case "exec":
				var p struct{ Command string }
				if err := gossh.Unmarshal(r.Payload, &p); err != nil || cmd != nil {
					r.Reply(false, nil)
					continue
				}
				s.mu.Lock()
				s.commands = append(s.commands, p.Command)
				s.mu.Unlock()
				cmd = exec.Command("sh", "-c", p.Command)
				cmd.Env = append(os.Environ(), s.Env...)
				cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				// Like sshd, the exit status is sent when the command
				// exits, whether or not the client closed stdin: an
				// exec.Cmd with Stdin = ch would wait for that EOF.
				stdin, err := cmd.StdinPipe()
				if err != nil {
					r.Reply(false, nil)
					continue
				}
				if err := cmd.Start(); err != nil {
					r.Reply(false, nil)
					continue
				}
				go func() { io.Copy(stdin, ch); stdin.Close() }()
				r.Reply(true, nil)
				close(started)
			case "signal":
				// Like sshd: the named signal goes to the command.
				var p struct{ Signal string }
				gossh.Unmarshal(r.Payload, &p)
				sig := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT}[p.Signal]
				if cmd != nil && cmd.Process != nil && sig != 0 {
					cmd.Process.Signal(sig)
				}
			default:
				if r.WantReply {
					r.Reply(false, nil)
				}
			}
		}
		// The channel is gone. Like sshd, the command is not killed: its
		// stdin reaches EOF, which `drover host` takes as the controller
		// having gone away.
	}()
	select {
	case <-started:
	case <-s.closed:
		return
	}
	err := cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if code < 0 {
			code = 128 + 9
		}
	}
	ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{uint32(code)}))
}

// fixture is a server, a client key and a known_hosts file that trusts
// the server.
type fixture struct {
	t          *testing.T
	srv        *testServer
	signer     gossh.Signer
	identity   string
	knownHosts string
	dir        string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	signer, pemKey := keyPair(t)
	f := &fixture{t: t, signer: signer, dir: dir,
		identity:   filepath.Join(dir, "id_ed25519"),
		knownHosts: filepath.Join(dir, "known_hosts"),
	}
	if err := os.WriteFile(f.identity, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	f.srv = newServer(t, signer.PublicKey())
	f.trust(f.srv)
	return f
}

// fakeTool puts an executable script named name first on the PATH of the
// test server's commands and returns its directory (where a script can
// leave a mark for the test to find).
func (f *fixture) fakeTool(name, script string) string {
	f.t.Helper()
	bin := f.t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
		f.t.Fatal(err)
	}
	f.srv.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
	return bin
}

func (f *fixture) trust(s *testServer) {
	fh, err := os.OpenFile(f.knownHosts, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		f.t.Fatal(err)
	}
	fmt.Fprintln(fh, s.KnownHostsLine())
	fh.Close()
}

func (f *fixture) config() Config {
	return Config{Identity: f.identity, KnownHosts: f.knownHosts, Port: 22, ConnectTimeout: 5e9, KeepaliveInterval: 5e9}
}

// transport returns a Transport for cfg, closed at the end of the test.
func (f *fixture) transport(cfg Config) *Transport {
	tr := &Transport{Config: cfg, AgentSocket: "/nonexistent-agent", Notice: func(host, msg string) { f.t.Logf("notice %s: %s", host, msg) }}
	f.t.Cleanup(func() { tr.Close() })
	return tr
}

func (f *fixture) host(name string, s *testServer) drover.Host {
	return drover.Host{Name: name, Address: s.Addr, DeployRoot: filepath.Join(f.dir, name, "srv", "hello"), Vars: map[string]any{"port": uint64(18001)}}
}

func lineFor(addr string, key gossh.PublicKey) string { return knownhosts.Line([]string{addr}, key) }

func parseRawKey(pemBytes []byte) (any, error) { return gossh.ParseRawPrivateKey(pemBytes) }
