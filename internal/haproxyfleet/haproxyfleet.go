// Package haproxyfleet runs a real HAProxy in front of a set of servers on
// this machine, for end-to-end tests of rotation: Start writes haproxy.cfg
// (a frontend on a free 127.0.0.1 port, one backend with a server per
// host, HTTP health checks every Options.CheckInterval, and the runtime
// API on a unix socket with level admin), starts `haproxy -f CFG -db` in
// the foreground as a child of the test, and Stop ends it.
//
// HAProxy is Debian's package (scripts/deps.sh installs it). Start fails
// naming it when /usr/sbin/haproxy is absent: a test of load balancing
// without a load balancer must not pass by skipping.
package haproxyfleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"drover/rotation"
)

// Binary is where Debian's haproxy package installs HAProxy.
const Binary = "/usr/sbin/haproxy"

// Defaults for Options.
const (
	DefaultBackend       = "web"
	DefaultCheckInterval = 100 * time.Millisecond
	DefaultHealthPath    = "/health"
)

// Server is one backend server: a host's service.
type Server struct {
	Name string
	// Addr is host:port.
	Addr string
}

// Options describes the proxy to start.
type Options struct {
	// Dir holds haproxy.cfg and the admin socket; keep it short, a unix
	// socket path is limited to 107 bytes.
	Dir     string
	Servers []Server
	// Backend names the backend; "" means DefaultBackend.
	Backend string
	// CheckInterval is the health checks' inter, fastinter and downinter.
	CheckInterval time.Duration
	// CheckTimeout is `timeout check`: how long a health check's answer
	// may take. 0 leaves HAProxy's default, which is inter — with a 100ms
	// inter, a healthy service slow to answer on a loaded machine fails a
	// check and shows "UP 1/2" to a test asserting it UP.
	CheckTimeout time.Duration
	// Rise and Fall are how many checks change a server's state; 0
	// means 2.
	Rise, Fall int
	// HealthPath is what `option httpchk GET` asks for.
	HealthPath string
}

// Proxy is a running HAProxy.
type Proxy struct {
	// Frontend is the 127.0.0.1:port clients connect to.
	Frontend string
	// Socket is the runtime API's unix socket (level admin).
	Socket  string
	Backend string
	Config  string

	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error // the process's exit, once done is closed
	once   sync.Once
}

// Check returns an error naming the package to install when HAProxy is
// not installed.
func Check() error {
	if _, err := os.Stat(Binary); err != nil {
		return fmt.Errorf("haproxyfleet: HAProxy is not installed (%s: %v): install the Debian package haproxy, e.g. with scripts/deps.sh", Binary, err)
	}
	return nil
}

// Start writes the config and starts HAProxy, and returns once its runtime
// API answers. The caller must call Stop.
func Start(ctx context.Context, o Options) (*Proxy, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if o.Dir == "" || len(o.Servers) == 0 {
		return nil, errors.New("haproxyfleet: Options.Dir and Options.Servers are required")
	}
	if o.Backend == "" {
		o.Backend = DefaultBackend
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.Rise <= 0 {
		o.Rise = 2
	}
	if o.Fall <= 0 {
		o.Fall = 2
	}
	if o.HealthPath == "" {
		o.HealthPath = DefaultHealthPath
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	p := &Proxy{Socket: filepath.Join(dir, "admin.sock"), Backend: o.Backend, Config: filepath.Join(dir, "haproxy.cfg"), done: make(chan struct{}), stderr: &lockedBuffer{}}
	if len(p.Socket) > 100 {
		return nil, fmt.Errorf("haproxyfleet: socket path %s is too long for a unix socket; use a shorter Options.Dir", p.Socket)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.Frontend = fmt.Sprintf("127.0.0.1:%d", port)
	if err := os.WriteFile(p.Config, []byte(config(o, p)), 0o644); err != nil {
		return nil, fmt.Errorf("haproxyfleet: %w", err)
	}

	// Validate first: a config error is reported as such, not as an
	// exit of the proxy.
	if out, err := exec.CommandContext(ctx, Binary, "-c", "-f", p.Config).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxyfleet: haproxy -c rejects %s: %v\n%s", p.Config, err, out)
	}
	p.cmd = exec.Command(Binary, "-f", p.Config, "-db")
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("haproxyfleet: start %s: %w", Binary, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()

	rt := p.Runtime()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := rt.Exec(ctx, "show info")
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("haproxyfleet: haproxy exited at start: %v\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, fmt.Errorf("haproxyfleet: the runtime API at %s did not answer within 10s: %v\n%s", p.Socket, err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// config renders haproxy.cfg. No retries and no `option redispatch`: a
// request sent to a server that is restarting fails, so a test that counts
// failures proves the server was out of rotation rather than that HAProxy
// papered over the restart (with its default of 3 retries, a restart of
// the sample service is fast enough to go unnoticed).
func config(o Options, p *Proxy) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	ms := o.CheckInterval.Milliseconds()
	w("# Written by drover's haproxyfleet kit for a test.")
	w("global")
	w("    stats socket %s mode 600 level admin", p.Socket)
	w("    stats timeout 30s")
	w("    maxconn 2000")
	w("defaults")
	w("    mode http")
	w("    timeout connect 2s")
	w("    timeout client 30s")
	w("    timeout server 30s")
	w("    retries 0")
	if o.CheckTimeout > 0 {
		w("    timeout check %dms", o.CheckTimeout.Milliseconds())
	}
	w("frontend fe")
	w("    bind %s", p.Frontend)
	w("    default_backend %s", o.Backend)
	w("backend %s", o.Backend)
	w("    balance roundrobin")
	w("    option httpchk GET %s", o.HealthPath)
	w("    default-server inter %dms fastinter %dms downinter %dms rise %d fall %d", ms, ms, ms, o.Rise, o.Fall)
	for _, s := range o.Servers {
		w("    server %s %s check", s.Name, s.Addr)
	}
	return b.String()
}

// Runtime returns a client of the proxy's runtime API.
func (p *Proxy) Runtime() *rotation.Runtime {
	return &rotation.Runtime{Addr: p.Socket}
}

// Servers returns the backend's servers with their status and admin state.
func (p *Proxy) Servers(ctx context.Context) ([]rotation.ServerStat, error) {
	return p.Runtime().Servers(ctx, p.Backend)
}

// WaitAllUp waits until every server is ready and UP.
func (p *Proxy) WaitAllUp(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		srvs, err := p.Servers(ctx)
		if err == nil {
			var notUp []string
			for _, s := range srvs {
				if !s.Up() || s.Admin != rotation.StateReady {
					notUp = append(notUp, fmt.Sprintf("%s %s/%s", s.Server, s.Status, s.Admin))
				}
			}
			if len(notUp) == 0 {
				return nil
			}
			err = fmt.Errorf("not UP and ready: %s", strings.Join(notUp, ", "))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxyfleet: after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Log returns what HAProxy printed.
func (p *Proxy) Log() string { return p.stderr.String() }

// Stop ends HAProxy (SIGTERM: a hard stop) and waits for it, killing it
// after 5s. Safe to call more than once.
func (p *Proxy) Stop() {
	p.once.Do(func() {
		if p.cmd == nil || p.cmd.Process == nil {
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("haproxyfleet: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
