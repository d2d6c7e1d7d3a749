// Package etcdtest runs a real etcd for tests, one node or a cluster: Debian's
// etcd-server (scripts/deps.sh installs it) as a child process listening
// on free loopback ports, its data in a test's temporary directory, stopped
// when the test ends. A missing binary fails the test naming the package:
// tests of the etcd store never skip.
package etcdtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover/internal/freeport"
)

// Package is the Debian package that provides the etcd binary.
const Package = "etcd-server"

// Server is a running etcd.
type Server struct {
	// Endpoint is its client URL, http://127.0.0.1:PORT.
	Endpoint string
	// Dir holds its data directory and log.
	Dir string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logf    *os.File
	health  string // the plain-http URL serving /health
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
	metrics := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	s, err := startMember(dir, "drover-test", client, peer, metrics, "drover-test="+peer, tc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.waitHealthy(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// startMember starts one etcd member without waiting for it.
// Its /health is served on metrics, a plain-http listener, whatever the
// client listener speaks.
func startMember(dir, name, client, peer, metrics, cluster string, tc *TLS) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{Endpoint: client, Dir: dir, exited: make(chan struct{}), health: metrics}
	s.logf, err = os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, fmt.Errorf("etcdtest: %w", err)
	}
	// Not CommandContext: the server outlives ctx; Stop ends it.
	s.cmd = exec.Command(bin,
		"--name", name,
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", cluster,
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
	return s, nil
}

// Cluster is a running etcd cluster of several members on loopback.
type Cluster struct {
	Members []*Server
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.Endpoint)
	}
	return out
}

// StartCluster starts an n-member etcd cluster for t (3 tolerates one
// member down) and stops it when t ends. It returns once every member
// answers /health, which etcd only does once a leader is elected.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := startCluster(t.TempDir(), n)
		if err == nil {
			t.Cleanup(c.Stop)
			return c
		}
		lastErr = err
		if strings.Contains(err.Error(), "binary is missing") {
			break
		}
	}
	t.Fatal(lastErr)
	return nil
}

func startCluster(dir string, n int) (*Cluster, error) {
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	var peers []string
	for i := 0; i < n; i++ {
		peers = append(peers, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[3*i+1]))
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		mdir := filepath.Join(dir, fmt.Sprintf("m%d", i))
		if err := os.MkdirAll(mdir, 0o755); err != nil {
			c.Stop()
			return nil, err
		}
		m, err := startMember(mdir, fmt.Sprintf("m%d", i), fmt.Sprintf("http://127.0.0.1:%d", ports[3*i]),
			fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+1]), fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+2]),
			strings.Join(peers, ","), nil)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Members = append(c.Members, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range c.Members {
		if err := m.waitHealthy(ctx); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// Leader returns the index of the member that leads now, asking each
// live member's /v3/maintenance/status until one answers.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	for i, m := range c.Members {
		if !m.Running() {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.Endpoint+"/v3/maintenance/status", strings.NewReader("{}"))
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || st.Leader == "" {
			continue
		}
		if st.Header.MemberID == st.Leader {
			return i, nil
		}
		// Ask the member that says it leads.
		for j, o := range c.Members {
			if j == i || !o.Running() {
				continue
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.Endpoint+"/v3/maintenance/status", strings.NewReader("{}"))
			resp, err := hc.Do(req)
			if err != nil {
				continue
			}
			var ost struct {
				Header struct {
					MemberID string `json:"member_id"`
				} `json:"header"`
			}
			json.NewDecoder(resp.Body).Decode(&ost)
			resp.Body.Close()
			if ost.Header.MemberID == st.Leader {
				return j, nil
			}
		}
	}
	return -1, errors.New("etcdtest: no member reports a leader")
}

// Stop stops every member.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		m.Stop()
	}
}

// Running reports whether the member's process is still there.
func (s *Server) Running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Kill ends the member at once (SIGKILL), as a crashed machine would.
func (s *Server) Kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
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
	out, err := freeport.Take(n)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: %w", err)
	}
	return out, nil
}
