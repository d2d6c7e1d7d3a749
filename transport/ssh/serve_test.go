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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"drover"
)

// serveCommands counts the host-side commands by kind: serve sessions
// and one-shot operations.
func serveCommands(s *testServer) (serve int, oneShot []string) {
	for _, c := range s.Commands() {
		switch {
		case strings.HasPrefix(c, "uname -sm"):
			// the probe; it exec's serve when drover is there
		case strings.Contains(c, " host "+OpServe+" "):
			serve++
		case strings.Contains(c, " host "):
			oneShot = append(oneShot, c)
		}
	}
	return serve, oneShot
}

// cycle runs every operation of a deploy on c and fails the test on an
// error.
func cycle(t *testing.T, c drover.HostConn, h drover.Host, version string) {
	t.Helper()
	ctx := ctxT(t)
	h.Vars = map[string]any{"port": uint64(18001), "big": uint64(1), "neg": int64(-1)}
	r := buildRelease(t, version)
	cf := []drover.ConfigFile{{Template: "app.conf.tmpl", Dest: "app.conf", Validate: "test -s {{.Path}}"}}
	data := drover.NewTemplateData(&drover.Spec{Service: "hello"}, h, r.ID(), r.Version())
	res, err := c.Stage(ctx, drover.StageRequest{DeployID: "d1", Release: r, ConfigFiles: cf, Data: data})
	if err != nil {
		t.Fatalf("stage: %v", err)
	}
	st, err := c.Promote(ctx, drover.PromoteRequest{DeployID: "d1", Slot: res.Slot, Release: r.ID(), Version: version, ConfigHash: res.ConfigHash, At: time.Unix(1700000000, 0)})
	if err != nil || st.Version != version {
		t.Fatalf("promote: %+v %v", st, err)
	}
	if out, err := c.Exec(ctx, drover.ExecRequest{Command: "bin/app"}); err != nil || strings.TrimSpace(out.Output) != version {
		t.Fatalf("exec: %+v %v", out, err)
	}
	if cr, err := c.Check(ctx, drover.CheckSpec{Name: "app", Type: "command", Command: "bin/app | grep -q " + version, Timeout: 5 * time.Second, Interval: 50 * time.Millisecond}); err != nil || !cr.OK {
		t.Fatalf("check: %+v %v", cr, err)
	}
	if b, err := c.ReadFile(ctx, "releases/"+res.Slot+"/app.conf"); err != nil || !strings.Contains(string(b), "version = "+version) {
		t.Fatalf("read-file: %q %v", b, err)
	}
	if st, err := c.State(ctx); err != nil || st.Current != res.Slot {
		t.Fatalf("state: %+v %v", st, err)
	}
	if _, err := c.Prune(ctx, 5); err != nil {
		t.Fatalf("prune: %v", err)
	}
}

// Every operation of a host goes over ONE `drover host serve` session: no
// process launch, no new session (and no login shell) per step.
func TestServeOneSessionPerHost(t *testing.T) {
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	c := open(t, tr, h)
	// The survey's state comes with the probe: no session of its own.
	before := len(f.srv.Commands())
	if st, err := c.State(ctxT(t)); err != nil || st.Current != "" {
		t.Fatalf("state: %+v %v", st, err)
	}
	if n := len(f.srv.Commands()); n != before {
		t.Fatalf("State right after Open ran %d commands, want none (the probe read it)", n-before)
	}
	cycle(t, c, h, "1.0.0")
	// The serve session the upload became has the login's umask again,
	// not the upload's 077: releases stay readable as shipped.
	st, err := c.State(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(h.DeployRoot, "releases", st.Current)); err != nil || fi.Mode().Perm()&0o055 == 0 {
		t.Fatalf("release directory: %v %v, want readable by others", fi.Mode(), err)
	}
	cycle(t, c, h, "2.0.0")
	serve, oneShot := serveCommands(f.srv)
	if serve != 1 || len(oneShot) != 0 {
		t.Fatalf("%d serve sessions and one-shot commands %q; want 1 and none", serve, oneShot)
	}
	// The probe, and the upload, which goes on as the serve session:
	// two commands for two whole deploys.
	if n := len(f.srv.Commands()); n != 2 {
		t.Fatalf("%d commands on the host, want 2 (probe, upload+serve): %q", n, f.srv.Commands())
	}

	// The next run (a new Transport) finds drover there: its probe
	// becomes the serve session, one command for a whole deploy.
	tr2 := f.transport(f.config())
	c2 := open(t, tr2, h)
	if _, err := c2.State(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	cycle(t, c2, h, "3.0.0")
	if n := len(f.srv.Commands()); n != 3 {
		t.Fatalf("%d commands on the host, want 3 (one more for the second run): %q", n, f.srv.Commands()[2:])
	}
}

// A host binary that does not know serve (a --host-binary from an older
// drover) is driven one session per operation, and asked only once.
func TestServeFallsBackToOneShot(t *testing.T) {
	f := newFixture(t)
	f.srv.Env = []string{"DROVER_TEST_NO_SERVE=1"}
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	c := open(t, tr, h)
	cycle(t, c, h, "1.0.0")
	serve, oneShot := serveCommands(f.srv)
	if serve != 1 || len(oneShot) < 6 {
		t.Fatalf("%d serve attempts, one-shot %q; want 1 attempt then one-shot operations", serve, oneShot)
	}
	// The next run's probe finds drover there and tries serve in the
	// same session; it fails, and that run goes one-shot too.
	tr2 := f.transport(f.config())
	c2 := open(t, tr2, h)
	if _, err := c2.Exec(ctxT(t), drover.ExecRequest{Command: "bin/app"}); err != nil {
		t.Fatal(err)
	}
	if serve2, oneShot2 := serveCommands(f.srv); serve2 != 1 || len(oneShot2) != len(oneShot)+1 {
		t.Fatalf("second run: %d serve attempts, %d one-shot commands; want 1 and %d", serve2, len(oneShot2), len(oneShot)+1)
	}
}

// OneShot (the old way, kept for comparison) runs no serve session.
func TestOneShotOption(t *testing.T) {
	f := newFixture(t)
	tr := f.transport(f.config())
	tr.OneShot = true
	h := f.host("h01", f.srv)
	c := open(t, tr, h)
	for range 2 {
		if _, err := c.Exec(ctxT(t), drover.ExecRequest{Command: "true", Dir: "."}); err != nil {
			t.Fatal(err)
		}
	}
	if serve, oneShot := serveCommands(f.srv); serve != 0 || len(oneShot) != 2 {
		t.Fatalf("%d serve sessions, one-shot %q; want none and 2", serve, oneShot)
	}
}

// A request that fails before reading its body leaves the session in
// step: the body is drained and the next request is served on it.
func TestServeDrainsUnreadBody(t *testing.T) {
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	c := open(t, tr, h).(*conn)
	body := bytes.Repeat([]byte("x"), 3<<20) // more than the SSH window
	_, err := c.call(ctxT(t), OpStage, Request{Stage: &drover.StageRequest{}}, bytes.NewReader(body))
	if de := wantCode(t, err, drover.EINVALID); !strings.Contains(de.Error(), "no release") {
		t.Fatalf("error: %v", de)
	}
	cycle(t, c, h, "1.0.0")
	if serve, oneShot := serveCommands(f.srv); serve != 1 || len(oneShot) != 0 {
		t.Fatalf("%d serve sessions, one-shot %q; want the one session kept", serve, oneShot)
	}
}

// The serve loop itself: requests one after another with bodies, and EOF
// on stdin cancels the operation running (a controller gone).
func TestServeLoop(t *testing.T) {
	root := t.TempDir()
	sv := serveOnPipes(t, root)
	next := sv.next
	send := func(req Request, body []byte) {
		if err := sv.send(req, body); err != nil {
			t.Fatal(err)
		}
	}
	inW, done := sv.in, sv.done
	if l := next(); !strings.Contains(l, `"ready":true`) {
		t.Fatalf("greeting %q", l)
	}
	os.MkdirAll(filepath.Join(root, "releases", "r1"), 0o755)
	os.WriteFile(filepath.Join(root, "releases", "r1", "f"), []byte("one"), 0o644)
	send(Request{Op: OpReadFile, Path: "releases/r1/f"}, nil)
	if l := next(); !strings.Contains(l, `"data":"b25l"`) {
		t.Fatalf("read-file answer %q", l)
	}
	// A body nobody reads (stage without a release fails first) is
	// drained: the next request is understood.
	send(Request{Op: OpStage, Stage: &drover.StageRequest{}}, bytes.Repeat([]byte("{}\n"), 50000))
	if l := next(); !strings.Contains(l, "no release") {
		t.Fatalf("stage answer %q", l)
	}
	send(Request{Op: OpExec, Exec: &drover.ExecRequest{Command: "echo hi", Dir: "."}}, nil)
	if l := next(); !strings.Contains(l, `hi\n`) {
		t.Fatalf("exec answer %q", l)
	}
	// The controller goes away during a long command: it is cancelled.
	start := time.Now()
	send(Request{Op: OpExec, Exec: &drover.ExecRequest{Command: "sleep 30", Dir: ".", Timeout: time.Minute}}, nil)
	time.Sleep(200 * time.Millisecond)
	inW.Close()
	next() // its answer: cancelled
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the command ran on for %s after stdin closed", took)
	}
}

// A serve process that dies fails its step — EFAILED with what it said,
// not a hang — and the next step gets a new session.
func TestServeDiesMidStep(t *testing.T) {
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	c := open(t, tr, h)
	cycle(t, c, h, "1.0.0")
	// The command's parent is the host's serve process.
	_, err := c.Exec(ctxT(t), drover.ExecRequest{Command: "kill -KILL $PPID; sleep 5"})
	if de := wantCode(t, err, drover.EFAILED); !strings.Contains(de.Error(), "without an answer") {
		t.Fatalf("error: %v", de)
	}
	if st, err := c.State(ctxT(t)); err != nil || st.Version != "1.0.0" {
		t.Fatalf("state after the serve process died: %+v %v", st, err)
	}
	if serve, _ := serveCommands(f.srv); serve != 2 {
		t.Fatalf("%d serve sessions, want 2 (the second after the first died)", serve)
	}
	if n := f.srv.Accepts.Load(); n != 1 {
		t.Fatalf("%d connections, want the first kept", n)
	}
}

// serve reads a request's body off stdin as it comes, acking it
// (Request.Acks), even while the operation before it still runs: sshd
// then holds no backlog (see spoolBody and BodyWindow).
func TestServeSpoolsAndAcksBody(t *testing.T) {
	root := t.TempDir()
	sv := serveOnPipes(t, root)
	next, send, inW, done := sv.next, sv.send, sv.in, sv.done
	if l := next(); !strings.Contains(l, `"acks":true`) {
		t.Fatalf("greeting %q does not offer acks", l)
	}
	// The loop is busy with a command that waits for the test.
	gate := filepath.Join(root, "go")
	if err := send(Request{Op: OpExec, Exec: &drover.ExecRequest{Command: "while [ ! -e go ]; do sleep 0.02; done; echo went", Dir: ".", Timeout: time.Minute}}, nil); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 300<<10+5)
	sent := make(chan error, 1)
	go func() { sent <- send(Request{Op: OpStage, Acks: true, Stage: &drover.StageRequest{}}, body) }()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		os.WriteFile(gate, nil, 0o644)
		t.Fatal("the body was not read while the operation before it ran")
	}
	var acks []int64
	for len(acks) == 0 || acks[len(acks)-1] < int64(len(body)) {
		l := next()
		var r Response
		if !strings.HasPrefix(l, ackPrefix) || json.Unmarshal([]byte(l), &r) != nil {
			t.Fatalf("line %q before the body was acked whole (acks so far %v)", l, acks)
		}
		if len(acks) > 0 && r.Ack <= acks[len(acks)-1] {
			t.Fatalf("acks not increasing: %v then %d", acks, r.Ack)
		}
		acks = append(acks, r.Ack)
	}
	if len(acks) < 4 || acks[len(acks)-1] != int64(len(body)) {
		t.Fatalf("acks %v: want one per %d bytes, ending at %d", acks, AckEvery, len(body))
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if l := next(); !strings.Contains(l, `went`) {
		t.Fatalf("exec answer %q", l)
	}
	if l := next(); !strings.Contains(l, "no release") {
		t.Fatalf("stage answer %q", l)
	}
	// Nothing of the body is left on the host's disk.
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".drover-body-") {
			t.Fatalf("deploy root holds %s: the spooled body was left behind", e.Name())
		}
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// The controller sends a body at most BodyWindow ahead of the host's
// acks, and stops waiting when told to.
func TestCopyWindowedStaysInWindow(t *testing.T) {
	src := bytes.Repeat([]byte("y"), 3*BodyWindow+123)
	var acked atomic.Int64
	acked1 := make(chan struct{}, 1)
	pr, pw := io.Pipe()
	var written atomic.Int64
	var over atomic.Int64
	w := writerFunc(func(p []byte) (int, error) {
		if ahead := written.Add(int64(len(p))) - acked.Load(); ahead > BodyWindow {
			over.Store(ahead)
		}
		return pw.Write(p)
	})
	res := make(chan int64, 1)
	go func() {
		n, err := copyWindowed(w, bytes.NewReader(src), &acked, acked1, make(chan struct{}))
		if err != nil {
			t.Error(err)
		}
		pw.Close()
		res <- n
	}()
	// The host: reads, acks every AckEvery bytes.
	buf := make([]byte, 10<<10)
	var read, last int64
	for {
		k, err := pr.Read(buf)
		read += int64(k)
		if read-last >= AckEvery || err != nil {
			last = read
			acked.Store(read)
			select {
			case acked1 <- struct{}{}:
			default:
			}
		}
		if err != nil {
			break
		}
	}
	if n := <-res; n != int64(len(src)) || read != n {
		t.Fatalf("sent %d, read %d, want %d", n, read, len(src))
	}
	if o := over.Load(); o != 0 {
		t.Fatalf("%d bytes were in flight, more than BodyWindow (%d)", o, BodyWindow)
	}

	// No ack at all: BodyWindow bytes go out, then it waits until stop.
	var sink atomic.Int64
	stop := make(chan struct{})
	var none atomic.Int64
	got := make(chan error, 1)
	go func() {
		_, err := copyWindowed(writerFunc(func(p []byte) (int, error) { sink.Add(int64(len(p))); return len(p), nil }),
			bytes.NewReader(src), &none, make(chan struct{}), stop)
		got <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for sink.Load() < BodyWindow && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	if err := <-got; !errors.Is(err, errAcksStopped) {
		t.Fatalf("copyWindowed without acks: %v, want errAcksStopped", err)
	}
	if n := sink.Load(); n != BodyWindow {
		t.Fatalf("sent %d bytes without an ack, want exactly BodyWindow (%d)", n, BodyWindow)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// servePipes is a serve loop on pipes, as `drover host serve` runs under
// sshd: the test writes requests (and bodies) to in and reads answers a
// line at a time.
type servePipes struct {
	t     *testing.T
	in    *io.PipeWriter
	lines chan string
	done  chan error
}

func serveOnPipes(t *testing.T, root string) *servePipes {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	sv := &servePipes{t: t, in: inW, lines: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		sv.done <- Serve(context.Background(), OpServe, inR, outW, ServeOptions{Root: root})
		outW.Close()
	}()
	go func() {
		// No line-length limit: an answer may carry a whole file.
		r := bufio.NewReader(outR)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				close(sv.lines)
				return
			}
			sv.lines <- strings.TrimSuffix(l, "\n")
		}
	}()
	return sv
}

// next is the next answer line; the test fails when serve ended or said
// nothing for 20 s.
func (sv *servePipes) next() string {
	sv.t.Helper()
	select {
	case l, ok := <-sv.lines:
		if !ok {
			sv.t.Fatal("serve ended")
		}
		return l
	case <-time.After(20 * time.Second):
		sv.t.Fatal("no answer from serve")
	}
	return ""
}

// send writes a request and its body.
func (sv *servePipes) send(req Request, body []byte) error {
	req.Body = int64(len(body))
	line, err := encodeRequest(req)
	if err != nil {
		sv.t.Fatal(err)
	}
	_, err = sv.in.Write(append(line, body...))
	return err
}
