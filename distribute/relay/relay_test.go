package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
	srv, err := Serve(ctx, ln, path, sha, token, time.Minute)
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
	path, _ := Receive(context.Background(), root, bytes.NewReader(b), sha, 0, "x")
	for _, c := range []struct {
		name    string
		timeout time.Duration
		cancel  bool
	}{{"timeout", 50 * time.Millisecond, false}, {"ctx", 0, true}} {
		ctx, cancel := context.WithCancel(context.Background())
		ln, _ := Listen("127.0.0.1", 0, 0)
		srv, err := Serve(ctx, ln, path, sha, NewToken(), c.timeout)
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
