package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
)

func bundle(t *testing.T, n int) ([]byte, string) {
	t.Helper()
	b := bytes.Repeat([]byte("drover-bundle!"), n)
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:])
}

func entries(t *testing.T, root string) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(root, Dir))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestReceive_VerifiesBeforeKeeping(t *testing.T) {
	ctx := context.Background()
	b, sha := bundle(t, 1000)
	root := t.TempDir()

	bad := append([]byte(nil), b...)
	bad[500] ^= 1
	_, err := Receive(ctx, root, bytes.NewReader(bad), sha, int64(len(b)), "h01")
	if drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "bundle from h01 has sha256") {
		t.Fatalf("damaged bundle: %v", err)
	}
	if got := entries(t, root); len(got) != 0 {
		t.Fatalf("a damaged bundle left %v in the cache", got)
	}
	_, err = Receive(ctx, root, bytes.NewReader(append(b, 'x')), sha, int64(len(b)), "h01")
	if drover.ErrorCode(err) != drover.EINVALID {
		t.Fatalf("too long: %v", err)
	}

	p, err := Receive(ctx, root, bytes.NewReader(b), sha, int64(len(b)), "h01")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, b) || p != Path(root, sha) {
		t.Fatalf("cached %s differs", p)
	}
	// Cached intact: kept without reading the stream.
	if _, err := Receive(ctx, root, failingReader{}, sha, int64(len(b)), "h01"); err != nil {
		t.Fatalf("cached bundle not reused: %v", err)
	}
	// Cached but damaged since: removed and received again.
	os.WriteFile(p, bad, 0o600)
	if _, err := Receive(ctx, root, bytes.NewReader(b), sha, int64(len(b)), "h01"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, b) {
		t.Fatal("a damaged cached bundle was kept")
	}
	if _, err := Receive(ctx, root, bytes.NewReader(b), "../../etc/passwd", 0, "h01"); drover.ErrorCode(err) != drover.EINVALID {
		t.Fatalf("bad sha name: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { panic("read") }

func TestServeFetch(t *testing.T) {
	ctx := context.Background()
	b, sha := bundle(t, 50000)
	src := t.TempDir()
	path, err := Receive(ctx, src, bytes.NewReader(b), sha, int64(len(b)), "controller")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	token := NewToken()
	srv, err := Serve(ctx, ln, src, sha, int64(len(b)), token, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// Wrong token: refused, and the error does not carry either token.
	dst := t.TempDir()
	wrong := NewToken()
	_, err = Fetch(ctx, dst, srv.URL(), wrong, sha, int64(len(b)))
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), token) {
		t.Fatalf("wrong token: %v", err)
	}
	if got := entries(t, dst); len(got) != 0 {
		t.Fatalf("refused fetch left %v", got)
	}
	resp, err := http.Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %s", resp.Status)
	}

	// The key itself is no token: only a child's is.
	if _, err := Fetch(ctx, dst, srv.URL(), token, sha, int64(len(b))); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("the relay key taken as a token: %v", err)
	}
	h02 := ChildToken(token, "h02")
	p, err := Fetch(ctx, dst, srv.URL(), h02, sha, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, b) {
		t.Fatal("fetched bundle differs")
	}
	// Single use: h02's token, seen once on the wire, fetches no more.
	if _, err := Fetch(ctx, t.TempDir(), srv.URL(), h02, sha, int64(len(b))); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a child token used twice: %v", err)
	}
	// A forged token — another child's name under h02's MAC — is refused.
	_, mac, _ := strings.Cut(ChildToken(token, "h06"), ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte("h07#0000000000000000")) + "." + mac
	if _, err := Fetch(ctx, t.TempDir(), srv.URL(), forged, sha, int64(len(b))); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a forged token: %v", err)
	}
	// Another key's token for the same child is refused.
	if _, err := Fetch(ctx, t.TempDir(), srv.URL(), ChildToken(NewToken(), "h04"), sha, int64(len(b))); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("another relay's token: %v", err)
	}

	// The source's copy is damaged: the fetch is refused, nothing kept.
	bad := append([]byte(nil), b...)
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(path, bad, 0o600)
	dst2 := t.TempDir()
	_, err = Fetch(ctx, dst2, srv.URL(), ChildToken(token, "h03"), sha, int64(len(b)))
	if drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "has sha256") {
		t.Fatalf("damaged source: %v", err)
	}
	if got := entries(t, dst2); len(got) != 0 {
		t.Fatalf("damaged fetch left %v", got)
	}

	// Closed: nothing listens any more.
	srv.Close()
	if _, err := Fetch(ctx, t.TempDir(), srv.URL(), ChildToken(token, "h05"), sha, int64(len(b))); drover.ErrorCode(err) != drover.EUNREACHABLE {
		t.Fatalf("after Close: %v", err)
	}
}

// TestServe_Stops: a relay stops when its context ends or its timeout
// passes, without anyone closing it.
func TestServe_Stops(t *testing.T) {
	b, sha := bundle(t, 10)
	root := t.TempDir()
	Receive(context.Background(), root, bytes.NewReader(b), sha, 0, "x")
	for _, c := range []struct {
		name    string
		timeout time.Duration
		cancel  bool
	}{{"timeout", 50 * time.Millisecond, false}, {"ctx", 0, true}} {
		ctx, cancel := context.WithCancel(context.Background())
		ln, _ := Listen("127.0.0.1", 0, 0)
		srv, err := Serve(ctx, ln, root, sha, int64(len(b)), NewToken(), c.timeout)
		if err != nil {
			t.Fatal(err)
		}
		if c.cancel {
			cancel()
		}
		select {
		case <-srv.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: relay still running", c.name)
		}
		cancel()
	}
}

func TestListen_PortRange(t *testing.T) {
	a, err := Listen("127.0.0.1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	port := a.Addr().(*net.TCPAddr).Port
	if _, err := Listen("127.0.0.1", port, port); err == nil || !strings.Contains(err.Error(), "no free port") {
		t.Fatalf("taken port: %v", err)
	}
}

// relayOf serves root's bundle sha (size bytes) on loopback.
func relayOf(t *testing.T, root, sha string, size int) (*Server, string) {
	t.Helper()
	ln, err := Listen("127.0.0.1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	key := NewToken()
	srv, err := Serve(context.Background(), ln, root, sha, int64(size), key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, key
}

// partSize is how much of bundle sha a receive under root has written so
// far (-1: none in progress).
func partSize(root, sha string) int64 {
	fi, err := os.Stat(PartPath(root, sha))
	if err != nil {
		return -1
	}
	return fi.Size()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fetched struct {
	path string
	err  error
}

// TestServe_CutThrough: a relay passes the bundle on as its host receives
// it. The relay is up before its host has any of it; the child has the
// first half of the bundle while its parent is still waiting for the
// second (store and forward would give it nothing until the parent had
// it all), and both end with the verified bundle.
func TestServe_CutThrough(t *testing.T) {
	ctx := context.Background()
	b, sha := bundle(t, 200000) // 2.8 MB
	parent, child := t.TempDir(), t.TempDir()
	srv, key := relayOf(t, parent, sha, len(b))

	pr, pw := io.Pipe()
	recv := make(chan fetched, 1)
	go func() {
		p, err := Receive(ctx, parent, pr, sha, int64(len(b)), "the controller")
		recv <- fetched{p, err}
	}()
	got := make(chan fetched, 1)
	go func() {
		p, err := Fetch(ctx, child, srv.URL(), ChildToken(key, "h02"), sha, int64(len(b)))
		got <- fetched{p, err}
	}()
	half := len(b) / 2
	if _, err := pw.Write(b[:half]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the child to receive the first half while its parent waits for the rest", func() bool {
		return partSize(child, sha) >= int64(half)
	})
	select {
	case r := <-recv:
		t.Fatalf("the parent's receive ended early: %v", r.err)
	case r := <-got:
		t.Fatalf("the child's fetch ended early: %v", r.err)
	default:
	}
	pw.Write(b[half:])
	pw.Close()
	if r := <-recv; r.err != nil {
		t.Fatalf("parent: %v", r.err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("child: %v", r.err)
	}
	if data, _ := os.ReadFile(r.path); !bytes.Equal(data, b) || r.path != Path(child, sha) {
		t.Fatal("the child's bundle differs")
	}
	if partSize(parent, sha) != -1 || partSize(child, sha) != -1 {
		t.Fatalf("published partial files left behind: %v %v", entries(t, parent), entries(t, child))
	}
	// A later child is served from the verified cache.
	if _, err := Fetch(ctx, t.TempDir(), srv.URL(), ChildToken(key, "h03"), sha, int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// TestServe_SourceFails: the parent's own receive fails mid-stream (its
// source died; or what it got does not verify). The child, part-way
// through the same bytes, is cut short or sees the wrong sha256: it
// refuses the bundle and keeps nothing, so it can fetch from elsewhere.
func TestServe_SourceFails(t *testing.T) {
	ctx := context.Background()
	b, sha := bundle(t, 200000)
	half := len(b) / 2
	for _, c := range []struct {
		name string
		feed func(w *io.PipeWriter)
	}{
		{"source died", func(w *io.PipeWriter) { w.CloseWithError(errors.New("connection reset")) }},
		{"corrupt bytes", func(w *io.PipeWriter) {
			bad := append([]byte(nil), b[half:]...)
			bad[len(bad)/2] ^= 0xff
			w.Write(bad)
			w.Close()
		}},
		{"too short", func(w *io.PipeWriter) { w.Write(b[half : len(b)-1]); w.Close() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			parent, child := t.TempDir(), t.TempDir()
			srv, key := relayOf(t, parent, sha, len(b))
			pr, pw := io.Pipe()
			recv := make(chan error, 1)
			go func() {
				_, err := Receive(ctx, parent, pr, sha, int64(len(b)), "the controller")
				recv <- err
			}()
			got := make(chan error, 1)
			go func() {
				_, err := Fetch(ctx, child, srv.URL(), ChildToken(key, "h02"), sha, int64(len(b)))
				got <- err
			}()
			pw.Write(b[:half])
			waitFor(t, "the child to receive the first half", func() bool { return partSize(child, sha) >= int64(half) })
			c.feed(pw)
			if err := <-recv; err == nil {
				t.Fatal("the parent kept a bad bundle")
			}
			select {
			case err := <-got:
				if err == nil {
					t.Fatal("the child kept a bundle its parent could not verify")
				}
				if code := drover.ErrorCode(err); code != drover.EFAILED && code != drover.EINVALID {
					t.Fatalf("child: %v (%s)", err, code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the child still waits for a parent whose receive failed")
			}
			if e := entries(t, child); len(e) != 0 {
				t.Fatalf("the child kept %v", e)
			}
			if e := entries(t, parent); len(e) != 0 {
				t.Fatalf("the parent kept %v", e)
			}
		})
	}
}

// TestServe_SourceRetried: the parent's first receive dies part-way and
// a second one (from another source) replaces it; a child that has not
// been cut off yet goes on with the new file from where it was. Either
// way the child ends with the verified bundle or refuses it — never a
// mix it keeps.
func TestServe_SourceRetried(t *testing.T) {
	ctx := context.Background()
	b, sha := bundle(t, 200000)
	parent, child := t.TempDir(), t.TempDir()
	srv, key := relayOf(t, parent, sha, len(b))
	got := make(chan fetched, 1)
	go func() {
		p, err := Fetch(ctx, child, srv.URL(), ChildToken(key, "h02"), sha, int64(len(b)))
		got <- fetched{p, err}
	}()
	// A stale partial file from a receive that died before this deploy.
	os.MkdirAll(filepath.Join(parent, Dir), 0o700)
	os.WriteFile(PartPath(parent, sha), b[:1000], 0o600)
	waitFor(t, "the child to read the stale part", func() bool { return partSize(child, sha) >= 1000 })
	if _, err := Receive(ctx, parent, bytes.NewReader(b), sha, int64(len(b)), "h01"); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("child: %v", r.err)
	}
	if data, _ := os.ReadFile(r.path); !bytes.Equal(data, b) {
		t.Fatal("the child's bundle differs")
	}
}

// TestServe_Stalled: a relay whose host never receives the bundle cuts
// its child off after StallTimeout instead of holding it.
func TestServe_Stalled(t *testing.T) {
	defer func(d time.Duration) { StallTimeout = d }(StallTimeout)
	StallTimeout = 200 * time.Millisecond
	b, sha := bundle(t, 1000)
	srv, key := relayOf(t, t.TempDir(), sha, len(b))
	child := t.TempDir()
	start := time.Now()
	_, err := Fetch(context.Background(), child, srv.URL(), ChildToken(key, "h02"), sha, int64(len(b)))
	if drover.ErrorCode(err) != drover.EFAILED {
		t.Fatalf("stalled relay: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cut off after %s", d)
	}
	if e := entries(t, child); len(e) != 0 {
		t.Fatalf("the child kept %v", e)
	}
}

// TestFollow_ReceiveFinishesAtTheEnd: the relay read to the end of what
// had been written just as the receive wrote the rest and renamed the
// file into the cache. The end it read was not the bundle's: it reads on
// and sends the whole bundle, instead of cutting the child's transfer
// short ("cached bundle is shorter", seen once in make test as the
// child's "unexpected EOF").
func TestFollow_ReceiveFinishesAtTheEnd(t *testing.T) {
	b, sha := bundle(t, 20000)
	root := t.TempDir()
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".tmp-1")
	half := len(b) / 2
	if err := os.WriteFile(tmp, b[:half], 0o600); err != nil {
		t.Fatal(err)
	}
	published := publish(tmp, PartPath(root, sha))
	if published == nil {
		t.Fatal("not published")
	}
	finished := false
	followAtEnd = func() {
		if finished {
			return
		}
		finished = true
		// What Receive does once the last bytes are in: rename the
		// whole file into the cache, then take the published name away.
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		f.Write(b[half:])
		f.Close()
		if err := os.Rename(tmp, Path(root, sha)); err != nil {
			t.Error(err)
		}
		unpublish(PartPath(root, sha), published)
	}
	defer func() { followAtEnd = nil }()
	var out bytes.Buffer
	if err := follow(context.Background(), root, sha, int64(len(b)), time.Minute, &out); err != nil {
		t.Fatalf("follow: %v", err)
	}
	if !finished {
		t.Fatal("follow never reached the end of the partial file")
	}
	if !bytes.Equal(out.Bytes(), b) {
		t.Fatalf("sent %d bytes, not the bundle's %d", out.Len(), len(b))
	}
}
