package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"drover"
)

// Transport reaches hosts over SSH. The zero value is not usable: set
// Config (defaults fill what is zero). Safe for concurrent use; Close it
// when the command ends.
type Transport struct {
	Config Config
	// Self is the drover binary uploaded to hosts whose OS and
	// architecture are this machine's; "" means os.Executable().
	Self string
	// Notice receives what an operator must be told: a host key recorded
	// on first use. nil writes to stderr.
	Notice func(host, message string)
	// AgentSocket is the ssh-agent socket; "" means $SSH_AUTH_SOCK.
	AgentSocket string
	// Dial opens a TCP connection; nil means a net.Dialer. Tests count
	// connections with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OneShot runs every operation as a session of its own (`drover host
	// OP`) instead of over one `drover host serve` per connection: what
	// drover did before serve, kept for hosts whose binary lacks it (used
	// automatically then) and for comparison in tests and benchmarks.
	OneShot bool
	// zstdLoopback compresses drover's upload to hosts on loopback too
	// (see overWire): for tests, whose hosts all are.
	zstdLoopback bool

	initOnce sync.Once
	sem      chan struct{} // bounds hosts connecting at once
	keys     *knownHosts

	mu     sync.Mutex
	hosts  map[string]*hostSlot // by host name
	jump   *hostSlot
	closed bool
	bins   map[string]*hostBinary // by local path, each worked out once
	// warming hashes the binaries for hosts while the first connections
	// are made (see warmBinaries); Close waits for it.
	warmOnce sync.Once
	warming  sync.WaitGroup

	agentConn net.Conn
	agent     agent.ExtendedAgent
}

var _ drover.Transport = (*Transport)(nil)

func (t *Transport) init() {
	t.initOnce.Do(func() {
		n := t.Config.ConnectParallelism
		if n <= 0 {
			n = DefaultConnectParallelism
		}
		t.sem = make(chan struct{}, n)
		t.hosts = map[string]*hostSlot{}
		t.bins = map[string]*hostBinary{}
		t.keys = &knownHosts{path: t.Config.KnownHosts, tofu: t.Config.TrustOnFirstUse, notice: t.notice}
	})
}

func (t *Transport) notice(host, msg string) {
	if t.Notice != nil {
		t.Notice(host, msg)
		return
	}
	fmt.Fprintf(os.Stderr, "drover: host %s: %s\n", host, msg)
}

// hostSlot is the one connection of a host: the live client, or none, and
// what was learnt about the host (where drover is installed on it).
type hostSlot struct {
	host drover.Host
	// lock serializes connecting (a channel so that waiting honors ctx).
	lock chan struct{}
	cl   *client
	// What probe learnt: uname is what the host said it is, local the
	// binary for it here (sha256 sum), bin where it lives on the host,
	// installed whether it is there. bin is "" until probed.
	uname, local, sum, bin string
	installed              bool
	// zstd: the host has zstd, so drover is sent to it compressed.
	zstd bool
	// fresh is state.json as the probe read it (nil: not read since the
	// last operation), so the survey's State right after Open costs no
	// session of its own. Any operation clears it.
	fresh *string
	// oneShot: the host's binary does not speak serve.
	oneShot atomic.Bool
}

// unfresh forgets the state the probe read: an operation may change it.
func (t *Transport) unfresh(s *hostSlot) {
	s.lock <- struct{}{}
	s.fresh = nil
	<-s.lock
}

// takeFresh returns the state the probe read, once.
func (t *Transport) takeFresh(s *hostSlot) *string {
	s.lock <- struct{}{}
	f := s.fresh
	s.fresh = nil
	<-s.lock
	return f
}

// installed reports whether drover is known to be on the host.
func (t *Transport) installed(s *hostSlot) bool {
	s.lock <- struct{}{}
	ok := s.installed && s.bin != "" && s.cl != nil && s.cl.alive()
	<-s.lock
	return ok
}

// noServe makes every later operation on s one-shot.
func (t *Transport) noServe(s *hostSlot) { s.oneShot.Store(true) }

// serveSession returns an idle serve session of s's connection or starts
// one, connecting and installing drover first when needed. cl is nil when
// the error came from connecting (it is then a *drover.Error).
func (t *Transport) serveSession(ctx context.Context, s *hostSlot) (*serveSession, *client, error) {
	cl, err := t.ready(ctx, s, true)
	if err != nil {
		return nil, nil, err
	}
	if s.oneShot.Load() {
		// Learnt while installing it: the binary does not serve.
		return nil, cl, errNoServe
	}
	if ss := cl.takeIdle(); ss != nil {
		return ss, cl, nil
	}
	command := drover.ShellQuote(s.bin) + " host " + OpServe + " --root " + drover.ShellQuote(s.host.DeployRoot)
	ss, err := startServe(ctx, cl, command, nil, nil)
	return ss, cl, err
}

// Open returns the host's connection, connecting (and installing drover
// on the host) if there is none. Errors: EUNREACHABLE when the host
// cannot be reached or refuses our key; EINVALID when its host key is
// unknown or does not match known_hosts, or it needs a --host-binary.
func (t *Transport) Open(ctx context.Context, h drover.Host) (drover.HostConn, error) {
	t.init()
	where := "host " + h.Name
	if h.DeployRoot == "" {
		return nil, drover.Errorf(drover.EINVALID, "no deploy root").At(where)
	}
	s, err := t.slot(h)
	if err != nil {
		return nil, err
	}
	c := &conn{t: t, s: s}
	if _, err := t.ready(ctx, s, false); err != nil {
		return nil, err
	}
	return c, nil
}

func (t *Transport) slot(h drover.Host) (*hostSlot, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, drover.Errorf(drover.EINTERNAL, "transport ssh is closed").At("host " + h.Name)
	}
	s, ok := t.hosts[h.Name]
	if !ok {
		s = &hostSlot{host: h, lock: make(chan struct{}, 1)}
		t.hosts[h.Name] = s
	}
	return s, nil
}

// Close closes every connection and waits for their goroutines.
func (t *Transport) Close() error {
	t.init()
	t.mu.Lock()
	t.closed = true
	var cls []*client
	for _, s := range t.hosts {
		if s.cl != nil {
			cls = append(cls, s.cl)
		}
	}
	if t.jump != nil && t.jump.cl != nil {
		cls = append(cls, t.jump.cl)
	}
	if t.agentConn != nil {
		t.agentConn.Close()
		t.agentConn, t.agent = nil, nil
	}
	t.mu.Unlock()
	for _, c := range cls {
		c.Close()
	}
	t.warming.Wait()
	return nil
}

// warmBinaries starts working out the binaries hosts may get (their
// sha256 names them on the host), once per Transport, as the first
// connection is made: every probe needs the sums, and computed on the
// first probe's demand they were 20-50 ms that every host waited for
// after its handshake, instead of time spent beside the handshakes.
func (t *Transport) warmBinaries() {
	t.warmOnce.Do(func() {
		paths, err := t.candidates()
		if err != nil {
			return // the probe reports it
		}
		t.warming.Add(1)
		go func() {
			defer t.warming.Done()
			for _, p := range paths {
				t.binary(p)
			}
		}()
	})
}

// ready returns a live client for s, connecting when needed, with the
// host probed (see probe) and, when install is set, drover installed on
// it. Reading state.json needs no drover, so a survey, `drover status` and
// a deploy refused before staging leave nothing on the hosts.
func (t *Transport) ready(ctx context.Context, s *hostSlot, install bool) (*client, error) {
	where := "host " + s.host.Name
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, drover.Errorf(drover.ETIMEOUT, "waiting to connect: %v", ctx.Err()).At(where)
	}
	defer func() { <-s.lock }()
	if s.cl != nil && s.cl.alive() && s.bin != "" && (s.installed || !install) {
		return s.cl, nil
	}
	cl := s.cl
	if cl == nil || !cl.alive() {
		if cl != nil {
			cl.Close()
		}
		if s.bin == "" {
			t.warmBinaries()
		}
		var err error
		cl, err = t.connect(ctx, s.host.Name, s.host.Address)
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		closed := t.closed
		if !closed {
			s.cl = cl
		}
		t.mu.Unlock()
		if closed {
			cl.Close()
			return nil, drover.Errorf(drover.EINTERNAL, "transport ssh is closed").At(where)
		}
	}
	if s.bin == "" {
		if err := t.probe(ctx, s, cl); err != nil {
			return nil, err
		}
	}
	if install && !s.installed {
		ss, err := t.upload(ctx, cl, s, !s.oneShot.Load())
		if errors.Is(err, errNoServe) {
			t.noServe(s)
			err = nil
		}
		if err != nil {
			return nil, err
		}
		s.installed = true
		if ss != nil {
			cl.putIdle(ss)
		}
	}
	return cl, nil
}

// forget drops what is known about where drover is on the host, so the
// next operation checks and installs it again.
func (t *Transport) forget(s *hostSlot) {
	s.lock <- struct{}{}
	s.installed, s.fresh = false, nil
	<-s.lock
}

// drop closes cl and, if it is still the host's connection, forgets it,
// so the next operation connects again instead of finding it not yet
// noticed as dead.
func (t *Transport) drop(s *hostSlot, cl *client) {
	s.lock <- struct{}{}
	t.mu.Lock()
	if s.cl == cl {
		s.cl, s.fresh = nil, nil
	}
	t.mu.Unlock()
	<-s.lock
	cl.Close()
}

// connect dials addr (through the jump host when configured), verifies its
// host key and authenticates, bounded by ConnectTimeout and
// ConnectParallelism.
func (t *Transport) connect(ctx context.Context, name, address string) (*client, error) {
	where := "host " + name
	addr := t.addr(address)
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, drover.Errorf(drover.ETIMEOUT, "waiting for a connection slot (ssh.connect_parallelism): %v", ctx.Err()).At(where)
	}
	defer func() { <-t.sem }()

	timeout := t.Config.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	nc, err := t.dialTCP(cctx, name, addr)
	if err != nil {
		return nil, err
	}
	cfg, err := t.clientConfig(name, addr)
	if err != nil {
		nc.Close()
		return nil, err
	}
	// The handshake honors the deadline too: a host that accepts TCP and
	// then says nothing (a hung sshd, a firewall eating packets) must not
	// hold the deploy for the kernel's TCP timeout.
	stop := context.AfterFunc(cctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, cfg)
	stopped := stop()
	if err != nil {
		nc.Close()
		return nil, t.handshakeError(cctx, name, addr, err)
	}
	if !stopped {
		// The deadline fired just as the handshake finished.
		sc.Close()
		return nil, drover.Errorf(drover.EUNREACHABLE, "%s: SSH handshake did not finish within %s", addr, timeout).At(where)
	}
	nc.SetDeadline(time.Time{})
	return newClient(gossh.NewClient(sc, chans, reqs), t.keepalive()), nil
}

// dialTCP opens the TCP connection to addr, through the jump host's
// connection when ssh.proxy_jump is set.
func (t *Transport) dialTCP(ctx context.Context, name, addr string) (net.Conn, error) {
	where := "host " + name
	if t.Config.ProxyJump != "" {
		j, err := t.jumpClient(ctx)
		if err != nil {
			return nil, &drover.Error{Code: drover.ErrorCode(err), Where: where, Message: "via jump host " + t.Config.ProxyJump, Err: err, Hint: drover.ErrorHint(err)}
		}
		nc, err := j.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, drover.Errorf(drover.EUNREACHABLE, "connect to %s via jump host %s: %v", addr, t.Config.ProxyJump, err).At(where).
				WithHint("check that the jump host can reach the host (ssh -J " + t.Config.ProxyJump + " " + addr + ")")
		}
		return nc, nil
	}
	dial := t.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, drover.Errorf(drover.EUNREACHABLE, "connect to %s: no answer within the connect timeout", addr).At(where).
				WithHint("check the host is up and port " + portOf(addr) + " is open; ssh.connect_timeout sets how long to wait")
		}
		return nil, drover.Errorf(drover.EUNREACHABLE, "connect to %s: %v", addr, unwrapOp(err)).At(where).
			WithHint("check the host is up and sshd listens on port " + portOf(addr))
	}
	return nc, nil
}

// jumpClient returns the connection to the jump host, shared by every
// host, reconnecting when it was lost.
func (t *Transport) jumpClient(ctx context.Context) (*gossh.Client, error) {
	t.mu.Lock()
	if t.jump == nil {
		t.jump = &hostSlot{host: drover.Host{Name: "jump " + t.Config.ProxyJump, Address: t.Config.ProxyJump}, lock: make(chan struct{}, 1)}
	}
	s := t.jump
	t.mu.Unlock()
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, drover.Errorf(drover.ETIMEOUT, "waiting for the jump host: %v", ctx.Err())
	}
	defer func() { <-s.lock }()
	if s.cl != nil && s.cl.alive() {
		return s.cl.Client, nil
	}
	if s.cl != nil {
		s.cl.Close()
	}
	// The jump host is dialled directly (no jump through itself); it is
	// verified against known_hosts like every host.
	dial := t.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	addr := t.addr(t.Config.ProxyJump)
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, drover.Errorf(drover.EUNREACHABLE, "connect to jump host %s: %v", addr, unwrapOp(err))
	}
	cfg, err := t.clientConfig(s.host.Name, addr)
	if err != nil {
		nc.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, cfg)
	stop()
	if err != nil {
		nc.Close()
		return nil, t.handshakeError(ctx, s.host.Name, addr, err)
	}
	nc.SetDeadline(time.Time{})
	cl := newClient(gossh.NewClient(sc, chans, reqs), t.keepalive())
	t.mu.Lock()
	closed := t.closed
	if !closed {
		s.cl = cl
	}
	t.mu.Unlock()
	if closed {
		cl.Close()
		return nil, drover.Errorf(drover.EINTERNAL, "transport ssh is closed")
	}
	return cl.Client, nil
}

// handshakeError classifies a failed handshake: our host key verdict
// (already a *drover.Error) passes through; a refused login, a timeout
// and a dropped connection make the host unreachable.
func (t *Transport) handshakeError(ctx context.Context, name, addr string, err error) error {
	where := "host " + name
	var de *drover.Error
	if errors.As(err, &de) {
		if de.Where == "" {
			return de.At(where)
		}
		return de
	}
	if ctx.Err() != nil {
		return drover.Errorf(drover.EUNREACHABLE, "%s: SSH handshake did not finish within the connect timeout", addr).At(where).
			WithHint("the host accepted the TCP connection but sshd did not answer; ssh.connect_timeout sets how long to wait")
	}
	msg := err.Error()
	if errors.Is(err, io.EOF) {
		msg = "the server closed the connection during the handshake"
	}
	e := drover.Errorf(drover.EUNREACHABLE, "%s: %s", addr, msg).At(where)
	if containsAny(msg, "unable to authenticate", "no supported methods remain") {
		return e.WithHint(fmt.Sprintf("the host refused the key: check ssh.user (%s) and that ssh.identity or a key in ssh-agent is in its authorized_keys", t.user()))
	}
	return e
}

// addr returns host:port for an address written host or host:port.
func (t *Transport) addr(address string) string {
	if _, _, err := net.SplitHostPort(address); err == nil {
		return address
	}
	port := t.Config.Port
	if port <= 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(address, strconv.Itoa(port))
}

func (t *Transport) user() string {
	if t.Config.User != "" {
		return t.Config.User
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "22"
	}
	return p
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// keepalivePolicy is how a connection is probed: every interval, closed
// after count intervals in a row without an answer.
type keepalivePolicy struct {
	interval time.Duration
	count    int
}

// keepalive is the configured policy, defaults filled in.
func (t *Transport) keepalive() keepalivePolicy {
	k := keepalivePolicy{interval: t.Config.KeepaliveInterval, count: t.Config.KeepaliveCount}
	if k.interval <= 0 {
		k.interval = DefaultKeepaliveInterval
	}
	if k.count <= 0 {
		k.count = DefaultKeepaliveCount
	}
	return k
}

// client is one SSH connection and the goroutines it owns: one waits for
// the connection to end, one sends keepalives. Close stops both and
// waits for them.
type client struct {
	*gossh.Client
	dead      chan struct{} // closed when the connection ended
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup

	// idle holds `drover host serve` sessions waiting for the next
	// operation (see serveSession); sclosed: keep no more.
	smu     sync.Mutex
	idle    []*serveSession
	sclosed bool
}

func newClient(c *gossh.Client, keepalive keepalivePolicy) *client {
	cl := &client{Client: c, dead: make(chan struct{}), done: make(chan struct{})}
	cl.wg.Add(2)
	go func() {
		defer cl.wg.Done()
		c.Wait()
		close(cl.dead)
	}()
	go cl.keepalive(keepalive)
	return cl
}

// keepalive sends keepalive@openssh.com every interval, busy or idle, and
// closes the connection once a probe has gone unanswered for count
// intervals (as OpenSSH's ServerAliveInterval and ServerAliveCountMax): a
// host that died or was cut off without a FIN (power loss, a partition, a
// frozen machine) would otherwise leave the step running on it blocked
// until the kernel gives up on the TCP connection, many minutes later.
// The closed connection ends that step EUNREACHABLE. A host that stops
// answering is found within interval × (count+1): the first unanswered
// probe leaves at most an interval after it went silent, and is given up
// on count intervals later. OpenSSH answers the request with a failure
// message, which proves the connection alive just as well.
func (cl *client) keepalive(k keepalivePolicy) {
	defer cl.wg.Done()
	tick := time.NewTicker(k.interval)
	defer tick.Stop()
	var reply chan error // the probe in flight; nil when none
	missed := 0
	hangUp := func() {
		cl.Client.Close()
		// Close ends SendRequest: its goroutine is ours to wait for.
		if reply != nil {
			<-reply
		}
	}
	for {
		select {
		case <-cl.done:
			hangUp()
			return
		case <-cl.dead:
			hangUp()
			return
		case err := <-reply:
			reply, missed = nil, 0
			if err != nil {
				hangUp()
				return
			}
		case <-tick.C:
			if reply != nil {
				// Still unanswered: one more probe would wait in the
				// same queue behind it.
				if missed++; missed >= k.count {
					hangUp()
					return
				}
				continue
			}
			reply = make(chan error, 1)
			go func(reply chan<- error) {
				_, _, err := cl.SendRequest("keepalive@openssh.com", true, nil)
				reply <- err
			}(reply)
		}
	}
}

func (cl *client) alive() bool {
	select {
	case <-cl.dead:
		return false
	default:
		return true
	}
}

// Close closes the connection and waits for the client's goroutines.
func (cl *client) Close() error {
	cl.closeOnce.Do(func() {
		close(cl.done)
		cl.Client.Close()
		cl.closeIdle()
	})
	cl.wg.Wait()
	return nil
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
