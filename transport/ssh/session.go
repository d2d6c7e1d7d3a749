package ssh

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// maxIdleServe bounds the idle `drover host serve` sessions kept per
// connection. A host normally has one step at a time; a second session
// exists only while two steps overlap (a survey and a hook, say).
const maxIdleServe = 2

// serveSession is one `drover host serve` on a connection: many
// operations, one at a time, over one SSH session and one process on the
// host. It is owned by one caller at a time (taken from its client's idle
// list, put back after a clean answer); close stops it and waits for its
// goroutines.
type serveSession struct {
	cl    *client
	sess  *gossh.Session
	stdin io.WriteCloser
	// lines carries stdout line by line; closed when stdout ends.
	lines  chan []byte
	stderr *syncTail
	// done is closed when the command ended; werr is how (Wait's error).
	done      chan struct{}
	werr      error
	quit      chan struct{} // closed by close: the reader stops sending
	wg        sync.WaitGroup
	closeOnce sync.Once
	// greeted is set once serve greeted: lines may then be responses
	// (MaxResponse) instead of preamble (MaxPreamble).
	greeted atomic.Bool
	// acks: the greeting offered Response.Ack lines; bodies are then
	// sent at most BodyWindow ahead of them (see BodyWindow).
	acks bool
	// overflow is why the reader stopped early: the host sent more than
	// the controller holds. Written before lines is closed.
	overflow *floodError
}

// serveExitedError: the serve command ended without answering. code is
// its exit status (-1 when none came), stderr the tail of what it said.
type serveExitedError struct {
	code   int
	stderr string
	ready  bool // it had greeted: it speaks serve and then died
}

func (e *serveExitedError) Error() string {
	return fmt.Sprintf("drover host serve exited %d without an answer: %s", e.code, e.stderr)
}

// startServe starts command (`<bin> host serve --root ROOT`) on cl and
// waits for its greeting. Errors: *notStartedError (nothing ran),
// *timeoutError, *lostError, *serveExitedError (no greeting: the binary
// does not speak serve, or cannot run). When pre is not nil, what the
// command printed before the greeting is kept in it: the probe is a
// script that ends by exec'ing serve when drover is there (see probe).
// stdin, when not nil, is sent first (the binary, for upload): the
// command must read exactly that much before serve starts.
func startServe(ctx context.Context, cl *client, command string, pre *bytes.Buffer, stdin io.Reader) (*serveSession, error) {
	if !cl.alive() {
		return nil, &notStartedError{errors.New("connection closed")}
	}
	sess, err := cl.NewSession()
	if err != nil {
		return nil, &notStartedError{err}
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, &notStartedError{err}
	}
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, &notStartedError{err}
	}
	ss := &serveSession{cl: cl, sess: sess, stdin: w, lines: make(chan []byte, 1),
		stderr: &syncTail{tailWriter: tailWriter{max: 4 << 10}},
		done:   make(chan struct{}), quit: make(chan struct{})}
	sess.Stderr = ss.stderr
	if err := sess.Start(command); err != nil {
		sess.Close()
		return nil, &notStartedError{err}
	}
	ss.wg.Add(2)
	go ss.read(stdout)
	go func() {
		defer ss.wg.Done()
		ss.werr = sess.Wait()
		close(ss.done)
	}()
	// The copy of stdin ends before this returns: at the greeting (the
	// command read it all), or when the session is closed under it.
	copied := make(chan struct{})
	if stdin != nil {
		go func() {
			defer close(copied)
			io.Copy(w, stdin)
		}()
	} else {
		close(copied)
	}
	// preamble counts what came before the greeting: a login script's
	// banner, the probe's output, or a compromised host's flood, which
	// the controller would otherwise hold without bound.
	preamble := 0
	for {
		select {
		case l, ok := <-ss.lines:
			if !ok {
				if ss.overflow != nil {
					ss.kill()
					<-copied
					return nil, ss.overflow
				}
				err := ss.ended(ctx, false)
				<-copied
				return nil, err
			}
			var r Response
			if json.Unmarshal(l, &r) == nil && r.Ready && r.V == ProtocolVersion {
				ss.greeted.Store(true)
				ss.acks = r.Acks
				<-copied
				return ss, nil
			}
			preamble += len(l)
			if preamble > MaxPreamble {
				ss.kill()
				<-copied
				return nil, &floodError{what: "output before drover's greeting (login scripts, the probe)", limit: MaxPreamble}
			}
			// Anything a login script printed before the greeting is
			// not ours, unless asked for.
			if pre != nil {
				pre.Write(l)
			}
		case <-ctx.Done():
			ss.kill()
			<-copied
			return nil, &timeoutError{ctx.Err()}
		}
	}
}

// read sends stdout's lines to ss.lines until stdout ends, a line is
// longer than MaxPreamble before the greeting or MaxResponse after it
// (ss.overflow says which), or ss is closed.
func (ss *serveSession) read(stdout io.Reader) {
	defer ss.wg.Done()
	defer close(ss.lines)
	in := bufio.NewReaderSize(stdout, 64<<10)
	for {
		var line []byte
		for {
			chunk, err := in.ReadSlice('\n')
			line = append(line, chunk...)
			// Read at each chunk: a response starts only after the
			// greeting was taken (the request is sent after it).
			max, what := MaxPreamble, "a line before drover's greeting"
			if ss.greeted.Load() {
				max, what = MaxResponse, "a response line"
			}
			if len(line) > max {
				ss.overflow = &floodError{what: what, limit: max}
				return
			}
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			return
		}
		select {
		case ss.lines <- line:
		case <-ss.quit:
			return
		}
	}
}

// do sends one request line, then body (size bytes; nil: none), and
// returns the response line. Errors: *notStartedError (the session was
// gone before the request went out: nothing ran), *timeoutError (ctx
// ended; the session is killed), *lostError, *serveExitedError, or a
// *bodyError reading body; after any error the session is closed and
// must not be used again.
//
// note receives the Response.Note lines that come before the answer.
func (ss *serveSession) do(ctx context.Context, line []byte, body io.Reader, size int64, note func(string)) ([]byte, error) {
	// With acks, the body goes at most BodyWindow ahead of what the host
	// said it read; acked and acked1 carry that from the loop below to
	// the writer, stop frees a writer waiting for an ack that will not
	// come (the loop stopped reading lines).
	windowed := ss.acks && body != nil
	var acked atomic.Int64
	acked1 := make(chan struct{}, 1)
	stop := make(chan struct{})
	stopWriter := sync.OnceFunc(func() { close(stop) })
	defer stopWriter()
	wdone := make(chan error, 1)
	go func() {
		_, err := ss.stdin.Write(line)
		if err != nil {
			// The session was gone before the request went out.
			err = &notStartedError{err}
		} else if body != nil {
			var n int64
			src := &bodyReader{r: io.LimitReader(body, size)}
			if windowed {
				n, err = copyWindowed(ss.stdin, src, &acked, acked1, stop)
			} else {
				n, err = io.Copy(ss.stdin, src)
			}
			if err == nil && n != size {
				err = &bodyError{fmt.Errorf("%d of %d bytes", n, size)}
			}
		}
		wdone <- err
	}()
	werrc := wdone
	// answer is a response that came before the whole body was sent: the
	// host failed early and drains the rest (acking it, when windowed).
	var answer []byte
	for {
		select {
		case err := <-werrc:
			werrc = nil
			if answer != nil {
				if err != nil {
					ss.close()
				}
				return answer, nil
			}
			if err != nil {
				// The stream is out of step now: this session is done.
				var be *bodyError
				if errors.As(err, &be) {
					ss.kill()
					return nil, be
				}
				var nse *notStartedError
				if errors.As(err, &nse) {
					ss.close()
					return nil, nse
				}
				// The session ended under us; what it said tells why.
				continue
			}
		case l, ok := <-ss.lines:
			if !ok {
				stopWriter()
			}
			if !ok && ss.overflow != nil {
				ss.kill()
				if werrc != nil {
					<-werrc
				}
				return nil, ss.overflow
			}
			if !ok && answer != nil {
				// The host ended after answering, while the rest of the
				// body went out: the answer stands, the session does not.
				if werrc != nil {
					<-werrc
				}
				ss.close()
				return answer, nil
			}
			if !ok {
				err := ss.ended(ctx, true)
				if werrc != nil {
					var nse *notStartedError
					if werr := <-werrc; errors.As(werr, &nse) && ctx.Err() == nil {
						return nil, nse
					}
				}
				return nil, err
			}
			if bytes.HasPrefix(l, []byte(ackPrefix)) {
				var r Response
				if json.Unmarshal(l, &r) == nil && r.Ack > acked.Load() {
					acked.Store(r.Ack)
					select {
					case acked1 <- struct{}{}:
					default:
					}
				}
				continue
			}
			if bytes.HasPrefix(l, []byte(notePrefix)) {
				var r Response
				if json.Unmarshal(l, &r) == nil && note != nil {
					note(r.Note)
				}
				continue
			}
			if answer != nil {
				// A second answer to one request: the stream is out of
				// step.
				stopWriter()
				ss.kill()
				if werrc != nil {
					<-werrc
				}
				return nil, &serveExitedError{code: -1, stderr: "two answers to one request", ready: true}
			}
			if werrc != nil {
				answer = l
				continue
			}
			return l, nil
		case <-ctx.Done():
			stopWriter()
			ss.kill()
			if werrc != nil {
				<-werrc
			}
			return nil, &timeoutError{ctx.Err()}
		}
	}
}

// errAcksStopped: the writer gave up waiting for the host's ack.
var errAcksStopped = errors.New("no ack from the host")

// copyWindowed copies src to w, never more than BodyWindow bytes ahead of
// acked (what the host said it read; acked1 is signalled when it grows),
// until src ends or stop is closed.
func copyWindowed(w io.Writer, src io.Reader, acked *atomic.Int64, acked1 <-chan struct{}, stop <-chan struct{}) (int64, error) {
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		for sent-acked.Load() >= BodyWindow {
			select {
			case <-acked1:
			case <-stop:
				return sent, errAcksStopped
			}
		}
		k, rerr := src.Read(buf[:min(int64(len(buf)), BodyWindow-(sent-acked.Load()))])
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return sent, werr
			}
			sent += int64(k)
		}
		if rerr == io.EOF {
			return sent, nil
		}
		if rerr != nil {
			return sent, rerr
		}
	}
}

// ended is why a session's stdout ended: ctx, the connection, or the
// command exited. It waits (a little) for the exit status, which comes
// after stdout's end, and closes the session.
func (ss *serveSession) ended(ctx context.Context, ready bool) error {
	t := time.NewTimer(5 * time.Second)
	select {
	case <-ss.done:
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	ss.close()
	if ctx.Err() != nil {
		return &timeoutError{ctx.Err()}
	}
	var ee *gossh.ExitError
	if errors.As(ss.werr, &ee) {
		return &serveExitedError{code: ee.ExitStatus(), stderr: ss.stderr.String(), ready: ready}
	}
	if ss.werr == nil {
		return &serveExitedError{code: 0, stderr: ss.stderr.String(), ready: ready}
	}
	if !ss.cl.probe() {
		return &lostError{ss.werr}
	}
	return &serveExitedError{code: -1, stderr: ss.stderr.String(), ready: ready}
}

// kill ends the command: TERM, not KILL (see session), then close.
func (ss *serveSession) kill() {
	ss.sess.Signal(gossh.SIGTERM)
	ss.close()
}

// close closes the session and waits for its goroutines. The host's
// serve sees EOF on stdin and ends.
func (ss *serveSession) close() {
	ss.closeOnce.Do(func() {
		close(ss.quit)
		ss.sess.Close()
	})
	ss.wg.Wait()
}

func (ss *serveSession) alive() bool {
	select {
	case <-ss.done:
		return false
	default:
		return ss.cl.alive()
	}
}

// bodyError: reading the local body failed (not the connection).
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read the body to send: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// bodyReader marks its errors as the body's, not the connection's.
type bodyReader struct{ r io.Reader }

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// takeIdle returns an idle serve session of cl, or nil.
func (cl *client) takeIdle() *serveSession {
	var dead []*serveSession
	defer func() {
		for _, ss := range dead {
			ss.close()
		}
	}()
	cl.smu.Lock()
	defer cl.smu.Unlock()
	for len(cl.idle) > 0 {
		ss := cl.idle[len(cl.idle)-1]
		cl.idle = cl.idle[:len(cl.idle)-1]
		if ss.alive() {
			return ss
		}
		dead = append(dead, ss)
	}
	return nil
}

// putIdle keeps ss for the next operation, or closes it when cl is
// closed or has enough idle sessions.
func (cl *client) putIdle(ss *serveSession) {
	cl.smu.Lock()
	if !cl.sclosed && len(cl.idle) < maxIdleServe && ss.alive() {
		cl.idle = append(cl.idle, ss)
		ss = nil
	}
	cl.smu.Unlock()
	if ss != nil {
		ss.close()
	}
}

// closeIdle closes every idle session; no session is kept after it.
func (cl *client) closeIdle() {
	cl.smu.Lock()
	idle := cl.idle
	cl.idle, cl.sclosed = nil, true
	cl.smu.Unlock()
	for _, ss := range idle {
		ss.close()
	}
}

// syncTail is a tailWriter safe for the session's copying goroutine and
// a reader.
type syncTail struct {
	mu sync.Mutex
	tailWriter
}

func (w *syncTail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tailWriter.Write(p)
}

func (w *syncTail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tailWriter.String()
}
