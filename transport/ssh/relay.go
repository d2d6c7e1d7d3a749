package ssh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"drover"
	"drover/distribute/relay"
	"drover/hostops"
)

// This file is relay distribution over SSH (drover.Fetcher): fetch and
// stage-fetched are ordinary operations; relay-serve is a long-lived
// `drover host relay-serve` in a session of its own, whose HTTP server
// listens on the host's own address and lives as long as that session
// (and never longer than its timeout): closing stdin, the connection
// dying or the controller exiting all stop it.

var _ drover.Fetcher = (*conn)(nil)

// Fetch puts the bundle into the host's cache: streamed over this
// connection when req.From is "", else fetched by the host from another
// host's relay.
func (c *conn) Fetch(ctx context.Context, req drover.FetchRequest) error {
	if req.Release == nil {
		return drover.Errorf(drover.EINVALID, "fetch: no release in the request").At(c.where())
	}
	var body io.Reader
	if req.From == "" {
		f, err := os.Open(req.Release.BundlePath)
		if err != nil {
			return drover.Errorf(drover.EINVALID, "fetch: bundle %s: %v", req.Release.BundlePath, err).At(c.where())
		}
		defer f.Close()
		body = f
	}
	_, err := c.call(ctx, OpFetch, Request{Fetch: &req}, body)
	return err
}

// StageFetched stages the bundle the host fetched.
func (c *conn) StageFetched(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if req.Release == nil {
		return drover.StageResult{}, drover.Errorf(drover.EINVALID, "stage: no release in the request").At(c.where())
	}
	r, err := c.call(ctx, OpStageFetched, Request{Stage: &req}, nil)
	if err != nil || r.Stage == nil {
		return drover.StageResult{}, orMissing(err, c, OpStageFetched)
	}
	return *r.Stage, nil
}

// RelayStartTimeout bounds waiting for relay-serve to say it listens.
const RelayStartTimeout = 30 * time.Second

// Relay starts `drover host relay-serve` in a session of its own and
// returns once it listens. The server binds to the host part of the
// host's address: the address other hosts reach it by.
func (c *conn) Relay(ctx context.Context, req drover.RelayRequest) (drover.RelayServer, error) {
	if req.Release == nil {
		return nil, drover.Errorf(drover.EINVALID, "relay: no release in the request").At(c.where())
	}
	cl, err := c.t.ready(ctx, c.s, true)
	if err != nil {
		return nil, err
	}
	line, err := encodeRequest(Request{Host: c.s.host.Name, Relay: &req, Listen: listenHost(c.s.host.Address)})
	if err != nil {
		return nil, drover.Errorf(drover.EINTERNAL, "relay: %v", err).At(c.where())
	}
	sess, err := cl.NewSession()
	if err != nil {
		return nil, asHostErr(&notStartedError{err}, c.where()+" step "+OpRelayServe)
	}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	if err := errors.Join(err1, err2); err != nil {
		sess.Close()
		return nil, asHostErr(&notStartedError{err}, c.where()+" step "+OpRelayServe)
	}
	var errb tailWriter
	errb.max = 4 << 10
	sess.Stderr = &errb
	command := drover.ShellQuote(c.s.bin) + " host " + OpRelayServe + " --root " + drover.ShellQuote(c.s.host.DeployRoot)
	if err := sess.Start(command); err != nil {
		sess.Close()
		return nil, asHostErr(&notStartedError{err}, c.where()+" step "+OpRelayServe)
	}
	r := &sshRelay{sess: sess, stdin: stdin, done: make(chan struct{}), stopped: make(chan struct{})}
	first := make(chan string, 1)
	// The session's one reader: the first line, then whatever follows
	// until the host process ends; then the session's exit.
	go func() {
		defer close(r.done)
		// The first line is bounded: a host that never ends it must
		// not make the controller hold an unbounded line.
		br := bufio.NewReaderSize(stdout, MaxRelayLine)
		l, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			l = nil
			r.overflow = true
		}
		first <- string(l)
		io.Copy(io.Discard, br)
		sess.Wait()
	}()
	// The server dies with the caller's ctx (the deploy).
	go func() {
		select {
		case <-ctx.Done():
			r.closeStdin()
		case <-r.done:
		}
		close(r.stopped)
	}()
	if _, err := stdin.Write(line); err != nil {
		r.kill()
		return nil, drover.Errorf(drover.EUNREACHABLE, "relay: send request: %v", err).At(c.where())
	}
	t := time.NewTimer(RelayStartTimeout)
	defer t.Stop()
	var l string
	select {
	case l = <-first:
	case <-ctx.Done():
		r.kill()
		return nil, drover.Errorf(drover.ETIMEOUT, "relay: did not start: %v", ctx.Err()).At(c.where())
	case <-t.C:
		r.kill()
		return nil, drover.Errorf(drover.ETIMEOUT, "relay: did not start within %s", RelayStartTimeout).At(c.where())
	}
	if r.overflow {
		r.kill()
		return nil, asHostErr(&floodError{what: "a relay-serve line", limit: MaxRelayLine}, c.where()+" step "+OpRelayServe)
	}
	resp, perr := parseResponse([]byte(l))
	if perr != nil {
		r.kill()
		return nil, drover.Errorf(drover.EFAILED, "drover host %s: %v: %s", OpRelayServe, perr, strings.TrimSpace(errb.String())).At(c.where())
	}
	if resp.Error != nil {
		r.kill()
		e := resp.Error.err()
		e.Where = strings.TrimSpace(c.where() + " " + e.Where)
		return nil, e
	}
	if resp.RelayURL == "" {
		r.kill()
		return nil, drover.Errorf(drover.EFAILED, "drover host %s answered without a URL", OpRelayServe).At(c.where())
	}
	u, err := relayURL(resp.RelayURL, c.s.host.Address, req)
	if err != nil {
		r.kill()
		return nil, drover.Errorf(drover.EFAILED, "drover host %s: %v", OpRelayServe, err).At(c.where()).
			WithHint("the host does not run the drover it was given, or is compromised; its children fetch from further up")
	}
	r.url = u
	return r, nil
}

// relayURL is the URL children fetch from, built from the host's address
// in drover.yaml and the port the host reported — never the host's word
// for where: a compromised host would otherwise point its children at any
// URL (an internal service, with their token). A reported address other
// than the host's own, a port outside distribution.port_range, or another
// path is refused. Neither the reported text nor the token is echoed.
func relayURL(reported, address string, req drover.RelayRequest) (string, error) {
	u, err := url.Parse(reported)
	if err != nil || u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		u.Path != "/bundle/"+req.Release.BundleSHA256 {
		return "", fmt.Errorf("reported a relay URL that is not http://HOST:PORT/bundle/<the bundle's sha256>")
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return "", fmt.Errorf("reported a relay URL without a valid port")
	}
	if req.PortMin != 0 || req.PortMax != 0 {
		if port < req.PortMin || port > req.PortMax {
			return "", fmt.Errorf("reported relay port %d, outside distribution.port_range %d-%d", port, req.PortMin, req.PortMax)
		}
	}
	own := listenHost(address)
	if ip := net.ParseIP(own); ip != nil {
		got := net.ParseIP(u.Hostname())
		if got == nil || !got.Equal(ip) {
			return "", fmt.Errorf("reported a relay on an address other than its own (%s)", own)
		}
	}
	return "http://" + net.JoinHostPort(own, strconv.Itoa(port)) + u.Path, nil
}

// listenHost is the host part of a host's address in drover.yaml.
func listenHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
}

type sshRelay struct {
	url      string
	overflow bool // the first line was too long; read before first is sent
	sess     *gossh.Session
	stdin    io.WriteCloser
	once     sync.Once
	done     chan struct{} // the session ended
	stopped  chan struct{} // and the ctx watcher returned
}

func (r *sshRelay) URL() string { return r.url }

func (r *sshRelay) closeStdin() { r.once.Do(func() { r.stdin.Close() }) }

// Close ends stdin, which stops the host's server, and waits for the
// session to end; a host that does not stop within 10s has its session
// closed under it.
func (r *sshRelay) Close() error {
	r.closeStdin()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
		r.sess.Signal(gossh.SIGTERM)
		r.sess.Close()
	}
	<-r.stopped
	return nil
}

// kill closes the session at once (a relay that never started).
func (r *sshRelay) kill() {
	r.closeStdin()
	r.sess.Close()
	<-r.stopped
}

// Host side.

// doRelay performs fetch and stage-fetched on the host.
func (o ServeOptions) doRelay(ctx context.Context, op string, req Request, body io.Reader, h *hostops.Host) Response {
	switch op {
	case OpFetch:
		f := req.Fetch
		if f == nil || f.Release == nil {
			return fail(drover.Errorf(drover.EINVALID, "fetch: no release in the request"))
		}
		rel := f.Release
		var err error
		if f.From == "" {
			if body == nil {
				return fail(drover.Errorf(drover.EINVALID, "fetch: no bundle follows the request"))
			}
			_, err = relay.Receive(ctx, o.Root, body, rel.BundleSHA256, rel.BundleSize, "the controller")
		} else {
			_, err = relay.Fetch(ctx, o.Root, f.From, f.Token, rel.BundleSHA256, rel.BundleSize)
		}
		return Response{Error: toWire(err)}
	case OpStageFetched:
		if req.Stage == nil || req.Stage.Release == nil {
			return fail(drover.Errorf(drover.EINVALID, "stage: no release in the request"))
		}
		p, err := relay.Verified(o.Root, req.Stage.Release.BundleSHA256, req.Stage.Release.BundleSize)
		if err != nil {
			return fail(err)
		}
		l, err := h.Lock(ctx, hostops.Holder{DeployID: req.Stage.DeployID, Step: "stage"})
		if err != nil {
			return fail(err)
		}
		defer l.Unlock()
		res, err := h.StageFile(ctx, p, relay.Checked(*req.Stage))
		return Response{Stage: &res, Error: toWire(err)}
	}
	return fail(drover.Errorf(drover.EINVALID, "drover host: unknown operation %q", op))
}

// serveRelay is `drover host relay-serve`: it serves the bundle of the
// request — as this host receives it, then from its cache — until stdin
// ends or the request's timeout passes. Its first
// line says where (or why not); its last line says it stopped.
func serveRelay(ctx context.Context, stdin io.Reader, stdout io.Writer, o ServeOptions) error {
	if err := o.checkRoot(); err != nil {
		return writeResponse(stdout, fail(err))
	}
	in := bufio.NewReaderSize(stdin, 64<<10)
	line, err := readLine(in)
	if err != nil {
		return writeResponse(stdout, fail(err))
	}
	req, err := decodeRequest(line)
	if err != nil {
		return writeResponse(stdout, fail(err))
	}
	rr := req.Relay
	if rr == nil || rr.Release == nil {
		return writeResponse(stdout, fail(drover.Errorf(drover.EINVALID, "relay-serve: no release in the request")))
	}
	if rr.Timeout <= 0 {
		return writeResponse(stdout, fail(drover.Errorf(drover.EINVALID, "relay-serve: no timeout in the request")))
	}
	ln, err := relay.Listen(req.Listen, rr.PortMin, rr.PortMax)
	if err != nil {
		return writeResponse(stdout, fail(err))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The host need not hold the bundle yet: the relay passes it on as
	// this host's fetch writes it (cut-through, relay.Serve).
	srv, err := relay.Serve(ctx, ln, o.Root, rr.Release.BundleSHA256, rr.Release.BundleSize, rr.Token, rr.Timeout)
	if err != nil {
		return writeResponse(stdout, fail(err))
	}
	// EOF on stdin: the controller closed the relay, or is gone.
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		io.Copy(io.Discard, in)
		cancel()
	}()
	werr := writeResponse(stdout, Response{RelayURL: srv.URL()})
	if werr != nil {
		srv.Close()
	}
	<-srv.Done()
	if werr == nil {
		werr = writeResponse(stdout, Response{})
	}
	// Stopped by its timeout while stdin is still open: the reader ends
	// when stdin is closed, or with this process.
	if c, ok := stdin.(io.Closer); ok {
		c.Close()
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-eof:
	case <-t.C:
	}
	return werr
}
