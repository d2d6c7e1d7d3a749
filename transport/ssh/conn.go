package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"drover"
	"drover/hostops"
)

// MaxResponse bounds a response line (read-file returns a config file):
// a host that sends more is not speaking the protocol.
const MaxResponse = 64 << 20

// conn is a drover.HostConn: a handle on the host's one connection in its
// Transport. Every operation is one session running `drover host OP`.
// Closing it closes nothing: the connection belongs to the Transport,
// which reuses it for the next Open of the host and closes it in Close.
type conn struct {
	t *Transport
	s *hostSlot
}

var _ drover.HostConn = (*conn)(nil)

func (c *conn) where() string { return "host " + c.s.host.Name }

// call runs one operation on the host: over the host's `drover host
// serve` session (started on first use, kept for the next operation),
// or, when the host's binary does not speak serve or body's size cannot
// be known, as a one-shot `drover host OP` session of its own. body, when
// not nil, follows the request (the bundle, for stage).
func (c *conn) call(ctx context.Context, op string, req Request, body io.Reader) (*Response, error) {
	req.Host = c.s.host.Name
	req.Op = op
	if dl, ok := ctx.Deadline(); ok {
		req.Timeout = time.Until(dl)
		if req.Timeout <= 0 {
			return nil, drover.Errorf(drover.ETIMEOUT, "%s: no time left", op).At(c.where())
		}
	}
	c.t.unfresh(c.s)
	size := int64(-1)
	if body != nil {
		size = bodySize(body)
	}
	if !c.t.OneShot && !c.s.oneShot.Load() && (body == nil || size >= 0) {
		resp, err, served := c.callServe(ctx, op, req, body, size)
		if served {
			return resp, err
		}
	}
	return c.callOnce(ctx, op, req, body)
}

// bodySize is how many bytes are left to read in body, -1 when that
// cannot be told (then the operation runs one-shot, body up to EOF).
func bodySize(body io.Reader) int64 {
	switch b := body.(type) {
	case interface{ Len() int }: // bytes.Reader, strings.Reader, bytes.Buffer
		return int64(b.Len())
	case *os.File:
		fi, err := b.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := b.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return fi.Size() - off
	}
	return -1
}

// callServe runs op over a serve session. served is false when the host's
// binary does not speak serve (nothing ran): the caller runs it one-shot.
func (c *conn) callServe(ctx context.Context, op string, req Request, body io.Reader, size int64) (resp *Response, err error, served bool) {
	if body != nil {
		req.Body = size
	} else {
		req.Body = 0
	}
	req.Notes = true
	// Acks are used only with a host whose greeting offered them (an
	// older one ignores the field): see serveSession.do.
	req.Acks = body != nil
	line, err := encodeRequest(req)
	if err != nil {
		return nil, drover.Errorf(drover.EINTERNAL, "%s: %v", op, err).At(c.where()), true
	}
	if len(line) > MaxRequestLine {
		return nil, drover.Errorf(drover.EINVALID, "%s: request of %d bytes is longer than %d", op, len(line), MaxRequestLine).At(c.where()), true
	}
	// A connection found dead before the command started (or a kept
	// session found gone before the request went out) is replaced once:
	// nothing ran, so trying again is safe.
	for attempt := 0; ; attempt++ {
		ss, cl, err := c.t.serveSession(ctx, c.s)
		if err != nil && cl == nil {
			// Connecting failed: already said as a drover error.
			return nil, err, true
		}
		if errors.Is(err, errNoServe) {
			return nil, nil, false
		}
		// Read after serveSession: ready set it, under the slot's lock.
		command := drover.ShellQuote(c.s.bin) + " host " + OpServe + " --root " + drover.ShellQuote(c.s.host.DeployRoot)
		if err != nil {
			var nse *notStartedError
			var sxe *serveExitedError
			switch {
			case errors.As(err, &nse) && attempt == 0:
				c.t.drop(c.s, cl)
				continue
			case errors.As(err, &sxe):
				if sxe.code == 126 || sxe.code == 127 {
					// The binary vanished or cannot run: forget it, so
					// the next step installs it again.
					c.t.forget(c.s)
					return nil, drover.Errorf(drover.EFAILED, "drover host %s exited %d without an answer: %s", op, sxe.code, firstNonEmpty(strings.TrimSpace(sxe.stderr), "no output")).At(c.where()).
						WithHint("run it by hand on the host to see why: " + command), true
				}
				// It does not speak serve (an older --host-binary):
				// one session per operation for this host from now on.
				c.t.noServe(c.s)
				return nil, nil, false
			}
			return nil, asHostErr(err, c.where()+" step "+op), true
		}
		out, err := ss.do(ctx, line, body, size, func(msg string) { c.t.notice(c.s.host.Name, msg) })
		var nse *notStartedError
		if errors.As(err, &nse) && attempt == 0 {
			if !cl.alive() {
				c.t.drop(c.s, cl)
			}
			continue
		}
		if err != nil {
			var sxe *serveExitedError
			if errors.As(err, &sxe) {
				if sxe.code == 126 || sxe.code == 127 {
					c.t.forget(c.s)
				}
				return nil, drover.Errorf(drover.EFAILED, "drover host %s: the host's drover exited %d without an answer: %s", op, sxe.code, firstNonEmpty(strings.TrimSpace(sxe.stderr), "no output")).At(c.where()).
					WithHint("run it by hand on the host to see why: " + command), true
			}
			var be *bodyError
			if errors.As(err, &be) {
				return nil, drover.Errorf(drover.EINVALID, "%s: %v", op, be).At(c.where()), true
			}
			return nil, asHostErr(err, c.where()+" step "+op), true
		}
		resp, perr := parseResponse(out)
		if perr != nil {
			ss.close()
			return nil, drover.Errorf(drover.EFAILED, "drover host %s: %v", op, perr).At(c.where()), true
		}
		cl.putIdle(ss)
		return resp, hostError(resp, c.where()), true
	}
}

// hostError is the error a response carries, placed at the host.
func hostError(resp *Response, where string) error {
	if resp.Error == nil {
		return nil
	}
	e := resp.Error.err()
	if e.Where == "" {
		e.Where = where
	} else {
		e.Where = where + " " + e.Where
	}
	return e
}

// callOnce runs one operation as a session of its own running `drover
// host OP`. body, when not nil, follows the request on stdin and stdin
// is closed after it; otherwise stdin stays open until the response
// arrives, which is how the host knows the controller is still there
// (see Serve).
func (c *conn) callOnce(ctx context.Context, op string, req Request, body io.Reader) (*Response, error) {
	req.Op, req.Body = "", 0
	line, err := encodeRequest(req)
	if err != nil {
		return nil, drover.Errorf(drover.EINTERNAL, "%s: %v", op, err).At(c.where())
	}
	var stdin io.Reader = bytes.NewReader(line)
	if body != nil {
		stdin = io.MultiReader(stdin, body)
	}
	// A connection found dead before the command started is replaced
	// once: nothing ran, so trying again on a new connection is safe.
	for attempt := 0; ; attempt++ {
		cl, err := c.t.ready(ctx, c.s, true)
		if err != nil {
			return nil, err
		}
		command := drover.ShellQuote(c.s.bin) + " host " + op + " --root " + drover.ShellQuote(c.s.host.DeployRoot)
		out := &limitWriter{max: MaxResponse}
		var errb tailWriter
		errb.max = 4 << 10
		code, err := session(ctx, cl, command, stdin, out, &errb, body != nil)
		var nse *notStartedError
		if errors.As(err, &nse) && attempt == 0 {
			c.t.drop(c.s, cl)
			continue
		}
		if err != nil {
			return nil, asHostErr(err, c.where()+" step "+op)
		}
		resp, perr := parseResponse(out.buf.Bytes())
		if perr != nil {
			msg := strings.TrimSpace(errb.String())
			if code == 126 || code == 127 {
				// The binary vanished or cannot run: forget it, so
				// the next step installs it again.
				c.t.forget(c.s)
			}
			return nil, drover.Errorf(drover.EFAILED, "drover host %s exited %d without an answer: %s", op, code, firstNonEmpty(msg, perr.Error())).At(c.where()).
				WithHint("run it by hand on the host to see why: " + command)
		}
		if resp.Error != nil {
			return resp, hostError(resp, c.where())
		}
		return resp, nil
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func parseResponse(b []byte) (*Response, error) {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		// Anything a login script printed before the answer is not ours.
		b = b[i+1:]
	}
	if len(b) == 0 {
		return nil, errors.New("no response on stdout")
	}
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bad response: %v", err)
	}
	if r.V != ProtocolVersion {
		return nil, fmt.Errorf("response of protocol version %d, want %d", r.V, ProtocolVersion)
	}
	clipResponse(&r) // bounds.go
	return &r, nil
}

// State reads state.json with cat rather than drover: a survey (every
// deploy, plan and status begins with one) then writes nothing to the
// host, not even drover itself, so a deploy refused after it leaves the
// fleet exactly as it was.
func (c *conn) State(ctx context.Context) (drover.HostState, error) {
	var st drover.HostState
	file := path.Join(c.s.host.DeployRoot, drover.StateFile)
	if f := c.t.takeFresh(c.s); f != nil {
		return c.stateFrom(file, *f)
	}
	if !c.t.OneShot && !c.s.oneShot.Load() && c.t.installed(c.s) {
		// drover is there anyway: ask the serve session, no new one.
		r, err := c.call(ctx, OpState, Request{}, nil)
		if err != nil || r.State == nil {
			return st, orMissing(err, c, OpState)
		}
		return *r.State, nil
	}
	var out string
	var err error
	for attempt := 0; ; attempt++ {
		var cl *client
		cl, err = c.t.ready(ctx, c.s, false)
		if err != nil {
			return st, err
		}
		out, err = c.t.run(ctx, cl, c.s.host.Name, stateScript(c.s.host.DeployRoot), nil)
		var nse *notStartedError
		if errors.As(err, &nse) && attempt == 0 {
			// See call: nothing ran, a new connection may.
			c.t.drop(c.s, cl)
			continue
		}
		break
	}
	if err != nil {
		var de *drover.Error
		if errors.As(err, &de) && de.Code == drover.EFAILED {
			return st, drover.Errorf(drover.EFAILED, "read %s: %s", file, de.Message).At(c.where())
		}
		return st, err
	}
	return c.stateFrom(file, out)
}

// stateFrom reads stateScript's output: state.json with what is live
// overlaid (live.go).
func (c *conn) stateFrom(file, out string) (drover.HostState, error) {
	state, live := splitLive(out)
	st, err := c.parseState(file, state)
	if err != nil {
		return st, err
	}
	return hostops.OverlayLive(st, live), nil
}

func (c *conn) parseState(file, out string) (drover.HostState, error) {
	var st drover.HostState
	if strings.TrimSpace(out) == "" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, drover.Errorf(drover.EFAILED, "%s is corrupt: %v", clip(file, MaxHostText), clip(err.Error(), MaxHostText)).At(c.where()).
			WithHint("compare it with `ls -l current releases/` and fix or remove it by hand")
	}
	clipState(&st) // bounds.go
	return st, nil
}

// Stage streams the bundle file after the request; the host checks its
// sha256 and size as it unpacks (hostops.Stage).
func (c *conn) Stage(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if req.Release == nil {
		return drover.StageResult{}, drover.Errorf(drover.EINVALID, "stage: no release in the request").At(c.where())
	}
	f, err := os.Open(req.Release.BundlePath)
	if err != nil {
		return drover.StageResult{}, drover.Errorf(drover.EINVALID, "stage: bundle %s: %v", req.Release.BundlePath, err).At(c.where())
	}
	defer f.Close()
	r, err := c.call(ctx, OpStage, Request{Stage: &req}, f)
	if err != nil || r.Stage == nil {
		return drover.StageResult{}, orMissing(err, c, OpStage)
	}
	return *r.Stage, nil
}

var _ drover.Validator = (*conn)(nil)

// Validate streams the bundle file after the request, as Stage does; the
// host tries it in a scratch directory and removes it (hostops.Validate).
func (c *conn) Validate(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if req.Release == nil {
		return drover.StageResult{}, drover.Errorf(drover.EINVALID, "validate: no release in the request").At(c.where())
	}
	f, err := os.Open(req.Release.BundlePath)
	if err != nil {
		return drover.StageResult{}, drover.Errorf(drover.EINVALID, "validate: bundle %s: %v", req.Release.BundlePath, err).At(c.where())
	}
	defer f.Close()
	r, err := c.call(ctx, OpValidate, Request{Stage: &req}, f)
	if err != nil || r.Stage == nil {
		return drover.StageResult{}, orMissing(err, c, OpValidate)
	}
	return *r.Stage, nil
}

func (c *conn) Promote(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error) {
	r, err := c.call(ctx, OpPromote, Request{Promote: &req}, nil)
	if err != nil || r.State == nil {
		return drover.HostState{}, orMissing(err, c, OpPromote)
	}
	return *r.State, nil
}

func (c *conn) Restore(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
	r, err := c.call(ctx, OpRestore, Request{Restore: &req}, nil)
	if err != nil || r.State == nil {
		return drover.HostState{}, orMissing(err, c, OpRestore)
	}
	return *r.State, nil
}

// Exec runs req.Command with `sh -c` on the host in the deploy root +
// req.Dir ("" is the current release), with DROVER_ROOT, DROVER_HOST and
// DROVER_BIN set. The host enforces req.Timeout (ETIMEOUT, process group
// killed); the session is bounded by ctx.
func (c *conn) Exec(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error) {
	r, err := c.call(ctx, OpExec, Request{Exec: &req}, nil)
	if r != nil && r.Exec != nil {
		return *r.Exec, err
	}
	return drover.ExecResult{}, orMissing(err, c, OpExec)
}

// Check runs the check ON the host (package check there): 127.0.0.1 in a
// check means the target, as it does in the config's words.
func (c *conn) Check(ctx context.Context, spec drover.CheckSpec) (drover.CheckResult, error) {
	r, err := c.call(ctx, OpCheck, Request{Check: &spec}, nil)
	if err != nil || r.Check == nil {
		return drover.CheckResult{Name: spec.Name}, orMissing(err, c, OpCheck)
	}
	return *r.Check, nil
}

func (c *conn) ReadFile(ctx context.Context, path string) ([]byte, error) {
	r, err := c.call(ctx, OpReadFile, Request{Path: path}, nil)
	if err != nil {
		return nil, err
	}
	if r.Data == nil {
		return []byte{}, nil
	}
	return r.Data, nil
}

func (c *conn) Prune(ctx context.Context, keep int, protect ...string) ([]string, error) {
	r, err := c.call(ctx, OpPrune, Request{Keep: keep, Protect: protect}, nil)
	if err != nil {
		return nil, err
	}
	return r.Removed, nil
}

// PruneForeign is Prune that also removes foreign releases
// (drover.ForeignPruner).
func (c *conn) PruneForeign(ctx context.Context, keep int, protect ...string) ([]string, error) {
	r, err := c.call(ctx, OpPrune, Request{Keep: keep, Protect: protect, Foreign: true}, nil)
	if err != nil {
		return nil, err
	}
	return r.Removed, nil
}

// Close releases the handle; the connection stays with the Transport.
func (c *conn) Close() error { return nil }

func orMissing(err error, c *conn, op string) error {
	if err != nil {
		return err
	}
	return drover.Errorf(drover.EINTERNAL, "drover host %s answered without a result", op).At(c.where())
}

// notStartedError: the session could not even be opened; nothing ran on
// the host.
type notStartedError struct{ err error }

func (e *notStartedError) Error() string { return "open session: " + e.err.Error() }
func (e *notStartedError) Unwrap() error { return e.err }

// lostError: the connection went away while the command ran.
type lostError struct{ err error }

func (e *lostError) Error() string { return "connection lost: " + e.err.Error() }
func (e *lostError) Unwrap() error { return e.err }

// timeoutError: ctx ended before the command did.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string { return "did not finish in time: " + e.err.Error() }
func (e *timeoutError) Unwrap() error { return e.err }

// asHostErr turns session errors into drover errors at where.
func asHostErr(err error, where string) error {
	var ns *notStartedError
	var lost *lostError
	var to *timeoutError
	var fl *floodError
	switch {
	case errors.As(err, &to):
		return drover.Errorf(drover.ETIMEOUT, "%v", to).At(where)
	case errors.As(err, &fl):
		return drover.Errorf(drover.EFAILED, "%v", fl).At(where).
			WithHint("look at what the host's login scripts print, and at the host itself: a drover host answers in short lines")
	case errors.As(err, &ns), errors.As(err, &lost):
		// Err keeps the cause, so callers can tell "nothing ran".
		return &drover.Error{Code: drover.EUNREACHABLE, Where: where, Err: err,
			Hint: "the SSH connection to the host was lost; check that the host is up"}
	}
	var de *drover.Error
	if errors.As(err, &de) {
		return err
	}
	return drover.Errorf(drover.EINTERNAL, "%v", err).At(where)
}

func asError(err error, target **drover.Error) bool { return errors.As(err, target) }

// session runs command in a new session on cl, copying stdin (nil: none)
// to it, and returns the exit code. closeStdin closes stdin after stdin
// is copied; otherwise it is closed only when the command has finished.
// When ctx ends first, the session is signalled and closed and the error
// is a *timeoutError. Every goroutine it starts has ended when it returns.
func session(ctx context.Context, cl *client, command string, stdin io.Reader, stdout, stderr io.Writer, closeStdin bool) (int, error) {
	if !cl.alive() {
		return -1, &notStartedError{errors.New("connection closed")}
	}
	sess, err := cl.NewSession()
	if err != nil {
		return -1, &notStartedError{err}
	}
	defer sess.Close()
	sess.Stdout, sess.Stderr = stdout, stderr
	w, err := sess.StdinPipe()
	if err != nil {
		return -1, &notStartedError{err}
	}
	if err := sess.Start(command); err != nil {
		return -1, &notStartedError{err}
	}
	// Only this goroutine closes stdin (closing it twice races inside
	// x/crypto/ssh): after the copy, or when finished says so.
	finished := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if stdin != nil {
			io.Copy(w, stdin)
		}
		if !closeStdin {
			<-finished
		}
		w.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		// TERM, not KILL: `drover host` cancels its work on TERM (and on
		// stdin's EOF when the session closes) and kills its hook's
		// process group; a KILL would orphan that group on the host.
		sess.Signal(gossh.SIGTERM)
		close(finished)
		sess.Close()
		<-done
		wg.Wait()
		return -1, &timeoutError{ctx.Err()}
	}
	// Closing the session unblocks a copy the host stopped reading (it
	// failed early).
	close(finished)
	sess.Close()
	wg.Wait()
	if werr == nil {
		return 0, nil
	}
	var ee *gossh.ExitError
	if errors.As(werr, &ee) {
		// A command killed by a signal has status 128+signal.
		return ee.ExitStatus(), nil
	}
	if ctx.Err() != nil {
		return -1, &timeoutError{ctx.Err()}
	}
	if !cl.probe() {
		return -1, &lostError{werr}
	}
	return -1, drover.Errorf(drover.EFAILED, "the remote command ended without an exit status: %v", werr)
}

// probe reports whether the connection still answers, closing it when it
// does not: after a session ended abnormally, this tells a lost host
// (EUNREACHABLE) from a command that died on a live one.
func (cl *client) probe() bool {
	if !cl.alive() {
		return false
	}
	reply := make(chan error, 1)
	go func() {
		_, _, err := cl.SendRequest("keepalive@openssh.com", true, nil)
		reply <- err
	}()
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case err := <-reply:
		if err != nil {
			cl.Client.Close()
			return false
		}
		return true
	case <-t.C:
		cl.Client.Close()
		<-reply
		return false
	}
}

// limitWriter fails writes past max.
type limitWriter struct {
	max int
	buf bytes.Buffer
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, fmt.Errorf("response larger than %d bytes", w.max)
	}
	return w.buf.Write(p)
}
