package ssh

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"drover"
	"drover/hostops"
)

// MaxRequestLine bounds the request line: a request is a few kilobytes of
// JSON; anything longer is not drover talking.
const MaxRequestLine = 16 << 20

// ServeOptions configure the host side of the protocol.
type ServeOptions struct {
	// Root is the deploy root on this host.
	Root string
	// Self is this binary's path, given to commands as DROVER_BIN so a
	// release can run `drover sample-service` without drover on PATH.
	Self string
	// RunCheck runs one check here (package check's Run); exec runs a
	// command in the current release directory.
	RunCheck func(ctx context.Context, c drover.CheckSpec, exec func(ctx context.Context, command string) (drover.ExecResult, error)) drover.CheckResult
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// note sends a Response.Note line (serve mode, a request that set
	// Notes).
	note func(msg string)
}

// Serve runs one `drover host OP` on the target: it reads the Request line
// from stdin (for stage, the bundle follows), performs op with package
// hostops under o.Root and writes the Response line to stdout. It returns
// an error only when no response could be written.
//
// Every operation but stage watches stdin after the request: the
// controller keeps it open while it waits, and it closes (EOF) when the
// controller gave up or the connection died. The operation's context is
// then cancelled, so a hook's process group is killed instead of running
// on for a controller that is gone.
//
// With op OpServe it answers the greeting and then serves requests one
// after another on the same stdin and stdout, each naming its operation,
// a stage's bundle framed by Request.Body, until stdin ends (see OpServe).
func Serve(ctx context.Context, op string, stdin io.Reader, stdout io.Writer, o ServeOptions) error {
	if f, ok := stdin.(*os.File); ok {
		widenPipe(f)
	}
	if op == OpServe {
		return serveLoop(ctx, stdin, stdout, o)
	}
	if op == OpRelayServe {
		return serveRelay(ctx, stdin, stdout, o)
	}
	resp := serveOne(ctx, op, stdin, o)
	return writeResponse(stdout, resp)
}

// writeResponse writes resp as one line.
func writeResponse(w io.Writer, resp Response) error {
	resp.V = ProtocolVersion
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(Response{V: ProtocolVersion, Error: toWire(drover.Errorf(drover.EINTERNAL, "encode response: %v", err))})
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func fail(err error) Response { return Response{Error: toWire(err)} }

func (o ServeOptions) checkRoot() error {
	if o.Root == "" || !filepath.IsAbs(o.Root) {
		return drover.Errorf(drover.EINVALID, "drover host: --root %q must be an absolute path", o.Root)
	}
	return nil
}

// serveOne is a one-shot `drover host OP`: one request, for stage the
// bundle up to EOF.
func serveOne(ctx context.Context, op string, stdin io.Reader, o ServeOptions) Response {
	if err := o.checkRoot(); err != nil {
		return fail(err)
	}
	in := bufio.NewReaderSize(stdin, 64<<10)
	line, err := readLine(in)
	if err != nil {
		return fail(err)
	}
	req, err := decodeRequest(line)
	if err != nil {
		return fail(err)
	}
	if op != OpStage && op != OpValidate && !(op == OpFetch && req.Fetch != nil && req.Fetch.From == "") {
		// See Serve: EOF on stdin means the controller is gone. (A
		// stage, or a fetch from this machine, has the bundle there.)
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			io.Copy(io.Discard, in)
			cancel()
		}()
	}
	return o.do(ctx, op, req, in)
}

// serveLoop is `drover host serve`: the greeting, then one request after
// another until stdin ends. One goroutine alone reads stdin: it hands each
// request (and a pipe carrying its body) to the loop, then reads on, so
// that EOF while an operation runs cancels it. A body the operation did
// not read to the end (it failed early) is drained, keeping the stream in
// step for the next request.
func serveLoop(ctx context.Context, stdin io.Reader, stdout io.Writer, o ServeOptions) error {
	if err := o.checkRoot(); err != nil {
		return writeResponse(stdout, fail(err))
	}
	if err := writeResponse(stdout, Response{Ready: true, Acks: true}); err != nil {
		return err
	}
	// Answers and notes come from the loop, acks from the reader: one
	// line at a time.
	var outMu sync.Mutex
	out := bufio.NewWriter(stdout)
	write := func(resp Response) error {
		outMu.Lock()
		defer outMu.Unlock()
		if err := writeResponse(out, resp); err != nil {
			return err
		}
		return out.Flush()
	}
	type incoming struct {
		req  Request
		err  error
		body *io.PipeReader
		// spooled holds the whole body when it was read off stdin
		// before the operation began (spoolBody); body is nil then.
		spooled io.ReadCloser
		// spoolErr is why the body could not be held on the host
		// (spoolBody's werr): the request is answered with it, and
		// the host serves on.
		spoolErr error
	}
	reqs := make(chan incoming)
	// Deferred in this order, they run as: close stdin (which unblocks
	// the reader when the loop ends for another reason, a signal),
	// cancel, and only then wait for the reader.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c, ok := stdin.(io.Closer); ok {
		defer c.Close()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(reqs)
		// The controller gone (EOF), or it spoke garbage: stop serving.
		defer cancel()
		in := bufio.NewReaderSize(stdin, 64<<10)
		for {
			line, err := readLine(in)
			if err != nil {
				return
			}
			req, err := decodeRequest(line)
			var pr *io.PipeReader
			var pw *io.PipeWriter
			var spooled io.ReadCloser
			var spoolErr error
			var body io.Reader = in
			if err == nil && req.Acks {
				body = &ackReader{r: in, total: req.Body, ack: func(n int64) { write(Response{Ack: n}) }}
			}
			if err == nil && req.Body > 0 {
				var ok bool
				if spooled, ok, spoolErr = spoolBody(body, req.Body, o.Root); !ok {
					return
				}
				if spooled == nil && spoolErr == nil {
					pr, pw = io.Pipe()
				}
			}
			select {
			case reqs <- incoming{req: req, err: err, body: pr, spooled: spooled, spoolErr: spoolErr}:
			case <-ctx.Done():
				if spooled != nil {
					spooled.Close()
				}
				return
			}
			if err != nil {
				// Where the next request starts is unknown.
				return
			}
			if pw != nil && !copyBody(pw, body, req.Body) {
				return
			}
		}
	}()
	for {
		var in incoming
		var ok bool
		select {
		case in, ok = <-reqs:
		case <-ctx.Done():
			return nil
		}
		if !ok {
			return nil
		}
		var resp Response
		switch {
		case in.err != nil:
			resp = fail(in.err)
		case in.spoolErr != nil:
			resp = fail(drover.Errorf(drover.EFAILED, "cannot hold the %d-byte %s body on the host: %v", in.req.Body, in.req.Op, in.spoolErr).
				WithHint("free disk space under " + o.Root + " (the body is written there before it is unpacked), then run the deploy again"))
		default:
			var body io.Reader
			if in.body != nil {
				body = in.body
			}
			if in.spooled != nil {
				body = in.spooled
			}
			oo := o
			if in.req.Notes {
				oo.note = func(msg string) { write(Response{Note: msg}) }
			}
			resp = oo.do(ctx, in.req.Op, in.req, body)
			if in.body != nil {
				// Whatever the operation left unread is drained.
				in.body.CloseWithError(errBodyDone)
			}
			if in.spooled != nil {
				in.spooled.Close()
			}
		}
		if err := write(resp); err != nil {
			return err
		}
		if in.err != nil {
			return nil
		}
	}
}

var errBodyDone = errors.New("the operation is over")

// ackReader calls ack with the bytes read so far every AckEvery bytes
// and at the body's end (Request.Acks).
type ackReader struct {
	r               io.Reader
	n, acked, total int64
	ack             func(int64)
}

func (a *ackReader) Read(p []byte) (int, error) {
	if len(p) > AckEvery {
		// One read may not pass an ack by: the controller waits for it.
		p = p[:AckEvery]
	}
	k, err := a.r.Read(p)
	a.n += int64(k)
	if k > 0 && (a.n-a.acked >= AckEvery || a.n >= a.total) {
		a.acked = a.n
		a.ack(a.n)
	}
	return k, err
}

// spoolBody reads the n bytes of a request's body off in — into memory
// when n is at most memSpoolMax, else into a temporary file, unlinked at
// once (nothing is left behind, whatever happens next) — and returns it
// positioned at its start. The operation then reads the spool, not the
// connection.
//
// Why not stream it into the operation: sshd holds whatever the operation
// has not read yet in its channel buffer (up to its 2 MB window), and
// OpenSSH grows that buffer 256 bytes at a time, copying it whole each
// time (sshbuf_allocate → recallocarray) and zeroing the old copy. A host
// that unpacks while it receives — hashing, gunzipping, writing and
// fsyncing file by file, on cores shared with other hosts — falls behind
// the network, and sshd then spent more CPU copying its own buffer than
// everything else the stage did: ~6 CPU-seconds of sshd to stage 8 MB to
// 20 hosts on loopback (bench/README.md). Reading the body off as fast as
// it comes keeps that buffer near empty. It also means the bundle is whole
// on the host before any of it is unpacked.
//
// The file is made in dir (the deploy root: the disk the release goes to)
// when dir is a directory, else in the system's temp directory. When no
// file can be made (a read-only deploy root and temp directory), it
// returns nil and true: the caller streams the body as before. ok is false
// when in ended inside the body (the controller is gone).
//
// A disk that fills while the body is written (werr set, f nil): the rest is
// read and dropped, so the stream stays in step and the host goes on
// serving, and the caller answers the request with the disk's own error.
// Handing the operation a short body would fail it too, on its size check,
// but as "bundle is N bytes, want M": an operator at a full host would be
// sent looking for a network fault.
func spoolBody(in io.Reader, n int64, dir string) (body io.ReadCloser, ok bool, werr error) {
	if n <= memSpoolMax {
		buf := make([]byte, n)
		if _, err := io.ReadFull(in, buf); err != nil {
			return nil, false, nil
		}
		return io.NopCloser(bytes.NewReader(buf)), true, nil
	}
	f, ok, werr := spoolFile(in, n, dir)
	if f == nil {
		return nil, ok, werr // an untyped nil: the caller tests body == nil
	}
	return f, ok, werr
}

// memSpoolMax is the largest body spooled in memory. A file spool costs
// the host a write of the whole body into the page cache and a read back,
// with the file's blocks allocated and freed: for the 8 MB bundle of
// bench/sshdeploy 6.0 ms against 2.9 ms in memory (BenchmarkSpoolBody),
// paid by every host at once, on the cores the stage is waiting for.
// Larger bodies go to a file, so a host's serve never holds more than
// this of one. A variable for the tests of the file spool.
var memSpoolMax int64 = 32 << 20

// spoolFile is spoolBody's file spool.
func spoolFile(in io.Reader, n int64, dir string) (f *os.File, ok bool, werr error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, ".drover-body-")
	if err != nil {
		return nil, true, nil
	}
	os.Remove(f.Name())
	ok, werr = readBody(f, in, n, 256<<10)
	if werr != nil || !ok {
		f.Close()
		return nil, ok, werr
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, true, err
	}
	return f, true, nil
}

// copyBody copies n bytes of in to pw, then closes pw. When the reader of
// pw goes away first, the rest is read and dropped. It reports whether
// the n bytes were there: false means stdin ended inside the body.
func copyBody(pw *io.PipeWriter, in io.Reader, n int64) bool {
	if ok, _ := readBody(pw, in, n, 64<<10); !ok {
		pw.CloseWithError(io.ErrUnexpectedEOF)
		return false
	}
	pw.Close()
	return true
}

// readBody reads exactly n bytes of in, a bufSize at a time, and writes
// them to w until a write fails; after that the rest is read and dropped,
// so that the stream stays in step and the next request is understood.
// ok reports whether the n bytes were there (false: in ended inside the
// body); werr is the write that failed, nil when all n were written.
func readBody(w io.Writer, in io.Reader, n int64, bufSize int) (ok bool, werr error) {
	buf := make([]byte, bufSize)
	for n > 0 {
		k, err := in.Read(buf[:min(int64(len(buf)), n)])
		n -= int64(k)
		if k > 0 && werr == nil {
			if _, err := w.Write(buf[:k]); err != nil {
				werr = err
			}
		}
		if err != nil && n > 0 {
			return false, werr
		}
	}
	return true, werr
}

// do performs one operation. body is what follows the request: the
// bundle for stage.
func (o ServeOptions) do(ctx context.Context, op string, req Request, body io.Reader) Response {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	// Reads create nothing: `drover status` and `drover plan` must leave
	// a host that was never deployed as they found it (no deploy root, no
	// releases directory).
	if op != OpState && op != OpReadFile && op != OpCheck && op != OpValidate {
		if err := os.MkdirAll(o.Root, 0o755); err != nil {
			return fail(drover.Errorf(drover.EFAILED, "create deploy root %s: %v", o.Root, err))
		}
	}
	h := &hostops.Host{Root: o.Root, Now: o.Now,
		// Validate commands see what hooks see (the release's scripts
		// may need DROVER_BIN to find drover).
		RunValidate: func(ctx context.Context, dir, command string) (drover.ExecResult, error) {
			return hostops.RunShell(ctx, dir, command, o.env(req.Host), 0)
		},
		Notify: o.note,
	}
	var r Response
	switch op {
	case OpState:
		st, err := h.State(ctx)
		r.State, r.Error = &st, toWire(err)
	case OpStage:
		if req.Stage == nil || req.Stage.Release == nil {
			return fail(drover.Errorf(drover.EINVALID, "stage: no release in the request"))
		}
		if body == nil {
			return fail(drover.Errorf(drover.EINVALID, "stage: no bundle follows the request"))
		}
		l, err := h.Lock(ctx, hostops.Holder{DeployID: req.Stage.DeployID, Step: "stage"})
		if err != nil {
			return fail(err)
		}
		defer l.Unlock()
		res, err := h.Stage(ctx, body, *req.Stage)
		r.Stage, r.Error = &res, toWire(err)
	case OpValidate:
		// No lock: nothing under the deploy root is touched.
		if req.Stage == nil || req.Stage.Release == nil {
			return fail(drover.Errorf(drover.EINVALID, "validate: no release in the request"))
		}
		if body == nil {
			return fail(drover.Errorf(drover.EINVALID, "validate: no bundle follows the request"))
		}
		res, err := h.Validate(ctx, body, *req.Stage)
		r.Stage, r.Error = &res, toWire(err)
	case OpPromote:
		if req.Promote == nil {
			return fail(drover.Errorf(drover.EINVALID, "promote: empty request"))
		}
		l, err := h.Lock(ctx, hostops.Holder{DeployID: req.Promote.DeployID, Step: "promote"})
		if err != nil {
			return fail(err)
		}
		defer l.Unlock()
		st, err := h.Promote(ctx, *req.Promote)
		r.State, r.Error = &st, toWire(err)
	case OpRestore:
		if req.Restore == nil {
			return fail(drover.Errorf(drover.EINVALID, "restore: empty request"))
		}
		l, err := h.Lock(ctx, hostops.Holder{DeployID: req.Restore.DeployID, Step: "restore"})
		if err != nil {
			return fail(err)
		}
		defer l.Unlock()
		st, err := h.Restore(ctx, *req.Restore)
		r.State, r.Error = &st, toWire(err)
	case OpExec:
		if req.Exec == nil {
			return fail(drover.Errorf(drover.EINVALID, "exec: empty request"))
		}
		l, err := h.Lock(ctx, hostops.HookHolder(req.Exec.Env))
		if err != nil {
			return fail(err)
		}
		defer l.Unlock()
		res, err := o.exec(ctx, req.Host, *req.Exec, l)
		r.Exec, r.Error = &res, toWire(err)
	case OpCheck:
		if req.Check == nil {
			return fail(drover.Errorf(drover.EINVALID, "check: empty request"))
		}
		if o.RunCheck == nil {
			return fail(drover.Errorf(drover.EINTERNAL, "drover host check: this binary has no checker"))
		}
		timeout := req.Check.Timeout
		if timeout <= 0 {
			timeout = drover.DefaultCheckTimeout
		}
		exec := func(ctx context.Context, command string) (drover.ExecResult, error) {
			return o.exec(ctx, req.Host, drover.ExecRequest{Command: command, Timeout: timeout}, nil)
		}
		res := o.RunCheck(ctx, *req.Check, exec)
		r.Check = &res
	case OpReadFile:
		b, err := h.ReadFile(ctx, req.Path)
		r.Data, r.Error = b, toWire(err)
	case OpPrune:
		l, err := h.Lock(ctx, hostops.Holder{Step: "prune"})
		if err != nil {
			return fail(err)
		}
		defer l.Unlock()
		prune := h.Prune
		if req.Foreign {
			prune = h.PruneForeign
		}
		removed, err := prune(ctx, req.Keep, req.Protect...)
		r.Removed, r.Error = removed, toWire(err)
	case OpFetch, OpStageFetched:
		return o.doRelay(ctx, op, req, body, h)
	default:
		return fail(drover.Errorf(drover.EINVALID, "drover host: unknown operation %q", op))
	}
	return r
}

// exec runs a command like transport/local does: `sh -c` in the deploy
// root + Dir ("" is the current release), with DROVER_ROOT, DROVER_HOST
// and DROVER_BIN (this binary) in its environment. With l (a hook) it
// runs under the host lock, which its shell inherits: a session dropped
// while it runs — this process killed with it — leaves the host locked
// until the hook is over (hostops/lock.go).
func (o ServeOptions) exec(ctx context.Context, host string, req drover.ExecRequest, l *hostops.HostLock) (drover.ExecResult, error) {
	dir := filepath.Join(o.Root, hostops.CurrentLink)
	if req.Dir != "" {
		if !filepath.IsLocal(req.Dir) {
			return drover.ExecResult{}, drover.Errorf(drover.EINVALID, "exec: dir %q must be relative to the deploy root", req.Dir)
		}
		dir = filepath.Join(o.Root, req.Dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return drover.ExecResult{}, drover.Errorf(drover.EFAILED, "exec: directory %s does not exist", dir)
	}
	if l != nil {
		return l.RunShell(ctx, dir, req.Command, o.env(host, req.Env...), req.Timeout)
	}
	return hostops.RunShell(ctx, dir, req.Command, o.env(host, req.Env...), req.Timeout)
}

// env is the environment of commands run on the host: ours, extra, and
// drover's variables last so a request cannot override them.
func (o ServeOptions) env(host string, extra ...string) []string {
	env := append(append(os.Environ(), extra...), "DROVER_ROOT="+o.Root, "DROVER_HOST="+host)
	if o.Self != "" {
		env = append(env, "DROVER_BIN="+o.Self)
	}
	return env
}

// readLine reads the request line, refusing one longer than
// MaxRequestLine.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxRequestLine {
			return nil, drover.Errorf(drover.EINVALID, "drover host: request line longer than %d bytes", MaxRequestLine)
		}
		if err == nil {
			return line, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return line, nil
		}
		return nil, drover.Errorf(drover.EINVALID, "drover host: no request on stdin: %v", err)
	}
}
