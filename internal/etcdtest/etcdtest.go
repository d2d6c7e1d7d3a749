// Package etcdtest runs a real single-node etcd for tests: Debian's
// etcd-server (scripts/deps.sh installs it) as a child process listening
// on free loopback ports, its data in a test's temporary directory, stopped
// when the test ends. A missing binary fails the test naming the package:
// tests of the etcd store never skip.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Package is the Debian package that provides the etcd binary.
const Package = "etcd-server"

// Server is a running etcd.
type Server struct {
	// Endpoint is its client URL, http://127.0.0.1:PORT.
	Endpoint string
	// Dir holds its data directory and log.
	Dir string

	health  string // the plain-http URL serving /health
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logf    *os.File
}

// Binary returns the path of the etcd executable, or an error naming the
// Debian package to install.
func Binary() (string, error) {
	if p := os.Getenv("DROVER_ETCD"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/etcd", "/usr/local/bin/etcd"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("etcdtest: the etcd binary is missing: install the Debian package %q (scripts/deps.sh does)", Package)
}

// Start starts an etcd for t and stops it when t ends. It fails t when
// etcd is missing or does not become healthy.
func Start(t testing.TB) *Server {
	t.Helper()
	// Ports are picked free, then bound by etcd: another process can take
	// one between the two, so a failed start is tried again.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := StartIn(context.Background(), t.TempDir())
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		lastErr = err
		if strings.Contains(err.Error(), "binary is missing") {
			break
		}
	}
	t.Fatal(lastErr)
	return nil
}

// StartIn starts an etcd with its data and log in dir and returns once it
// answers /health (bounded by ctx and 30 s). The caller calls Stop.
func StartIn(ctx context.Context, dir string) (*Server, error) {
	return startIn(ctx, dir, nil)
}

// TLS is a server certificate for an etcd that serves clients over TLS
// and requires a client certificate signed by CA.
type TLS struct {
	CA, Cert, Key string // PEM files
}

// StartTLS starts an etcd for t serving https with tc and requiring client
// certificates; it stops when t ends. Endpoint is https://127.0.0.1:PORT.
func StartTLS(t testing.TB, tc TLS) *Server {
	t.Helper()
	s, err := startIn(context.Background(), t.TempDir(), &tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func startIn(ctx context.Context, dir string, tc *TLS) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if tc != nil {
		scheme = "https"
	}
	client := fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	// /health on a plain-http metrics listener, whatever the client
	// listener speaks.
	metrics := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	s := &Server{Endpoint: client, Dir: dir, exited: make(chan struct{}), health: metrics}
	s.logf, err = os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, fmt.Errorf("etcdtest: %w", err)
	}
	// Not CommandContext: the server outlives ctx; Stop ends it.
	s.cmd = exec.Command(bin,
		"--name", "drover-test",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "drover-test="+peer,
		"--initial-cluster-state", "new",
		"--listen-metrics-urls", metrics,
		"--log-level", "warn",
		"--logger", "zap",
	)
	if tc != nil {
		s.cmd.Args = append(s.cmd.Args, "--cert-file", tc.Cert, "--key-file", tc.Key, "--trusted-ca-file", tc.CA, "--client-cert-auth")
	}
	s.cmd.Stdout, s.cmd.Stderr = s.logf, s.logf
	// Own process group: a test interrupted mid-way does not leave etcd
	// holding the ports of the next run's servers.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.logf.Close()
		return nil, fmt.Errorf("etcdtest: start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.waitHealthy(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitHealthy(ctx context.Context) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.health+"/health", nil)
		resp, err := c.Do(req)
		if err == nil {
			body := make([]byte, 256)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body[:n]), `"true"`) {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("etcdtest: etcd exited before it was healthy (%v): %s", s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("etcdtest: etcd at %s not healthy: %w: %s", s.Endpoint, ctx.Err(), s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "etcd.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop kills etcd and waits for it. Safe to call more than once.
func (s *Server) Stop() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	s.logf.Close()
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("etcdtest: free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	if len(out) != n {
		return nil, errors.New("etcdtest: no free ports")
	}
	return out, nil
}
