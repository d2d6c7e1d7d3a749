// Package relay is the host side of relay distribution (see package
// distribute): a bundle cache under the deploy root, receiving a bundle
// into it — from this machine's stream or another host's relay — with its
// sha256 and size verified before it is kept, and a short-lived HTTP server
// that hands the cached bundle to hosts presenting a one-time token.
//
// Tokens. The controller gives a relay a key (RelayRequest.Token) and
// never hands that key to anyone else; each fetch by a child gets
// ChildToken(key, child) — the child's name with a nonce, and an HMAC of
// them under the key — and the relay takes each token once. The relay is plain HTTP: a token seen on the
// wire, or kept by a compromised child, would otherwise fetch the bundle
// (configuration and all) again for as long as the relay runs.
//
// A bundle is kept only when it is exactly the one built: written to a
// temporary file, hashed on the way, renamed into the cache when the hash
// and size match, removed otherwise. Staging from the cache checks the
// hash once more while unpacking (hostops.Stage), so a cached file
// damaged after it was fetched is caught before anything is staged.
package relay

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"drover"
)

// Dir is the bundle cache, relative to the deploy root.
const Dir = ".drover/bundles"

// checkSHA refuses anything but 64 lowercase hex digits: the name comes
// from a request and becomes a file name.
func checkSHA(sha string) error {
	if len(sha) != 64 {
		return drover.Errorf(drover.EINVALID, "bundle sha256 %q is not 64 hex digits", sha)
	}
	for _, c := range sha {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return drover.Errorf(drover.EINVALID, "bundle sha256 %q is not 64 lowercase hex digits", sha)
		}
	}
	return nil
}

// Path is where the bundle with sha256 sha is cached under root.
func Path(root, sha string) string { return filepath.Join(root, Dir, sha+".tar.gz") }

// Cached returns the path of the cached bundle sha; ENOTFOUND when it is
// not there.
func Cached(root, sha string) (string, error) {
	if err := checkSHA(sha); err != nil {
		return "", err
	}
	p := Path(root, sha)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", drover.Errorf(drover.ENOTFOUND, "bundle %s.. is not in the host's cache %s", sha[:12], Dir)
	}
	if err != nil {
		return "", drover.Errorf(drover.EFAILED, "bundle cache: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return "", drover.Errorf(drover.EFAILED, "bundle cache: %s is not a regular file", p)
	}
	return p, nil
}

// Receive reads a bundle from r into the cache under root. It is kept
// only if its sha256 is sha and, when size > 0, it is size bytes; a
// mismatch is EINVALID naming from (where it came from) and leaves
// nothing behind. A bundle already cached is kept and r is not read.
//
// While it is being written the file is also published as PartPath, so
// that this host's relay (Serve) passes the bytes on to the hosts below
// it as they arrive instead of after the whole bundle: the tree then
// costs about one transfer time, not one per level. Publishing them
// unverified is safe because every host checks the sha256 of what it
// received itself before keeping it; a receive that fails removes the
// published name, and the relay then cuts its children's transfers
// short, so they refuse what they got and fetch from further up.
func Receive(ctx context.Context, root string, r io.Reader, sha string, size int64, from string) (string, error) {
	if err := checkSHA(sha); err != nil {
		return "", err
	}
	if p, ok := verified(root, sha, size); ok {
		return p, nil
	}
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", drover.Errorf(drover.EFAILED, "bundle cache: %v", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", drover.Errorf(drover.EFAILED, "bundle cache: %v", err)
	}
	tmp := f.Name()
	part := PartPath(root, sha)
	published := publish(tmp, part)
	keep := false
	defer func() {
		if !keep {
			f.Close()
			unpublish(part, published)
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	in := io.Reader(&ctxReader{ctx: ctx, r: r})
	if size > 0 {
		// One byte more than expected is enough to tell it is too long.
		in = io.LimitReader(in, size+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(f, h), in, make([]byte, 256<<10))
	if err != nil {
		if ctx.Err() != nil {
			return "", drover.Errorf(drover.ETIMEOUT, "receive bundle from %s: %v", from, ctx.Err())
		}
		return "", drover.Errorf(drover.EFAILED, "receive bundle from %s: %v", from, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return "", drover.Errorf(drover.EINVALID, "bundle from %s has sha256 %s, expected %s; not kept", from, got[:16]+"..", sha[:16]+"..").
			WithHint("the bundle was damaged or replaced on the way or at its source; it is fetched again from another source")
	}
	if size > 0 && n != size {
		return "", drover.Errorf(drover.EINVALID, "bundle from %s is %d bytes, expected %d; not kept", from, n, size)
	}
	if err := f.Close(); err != nil {
		return "", drover.Errorf(drover.EFAILED, "bundle cache: %v", err)
	}
	dst := Path(root, sha)
	if err := os.Rename(tmp, dst); err != nil {
		return "", drover.Errorf(drover.EFAILED, "bundle cache: %v", err)
	}
	keep = true
	// The relay finds the verified bundle under dst from now on (the same
	// file: a transfer in progress goes on reading it).
	unpublish(part, published)
	clean(dir, sha)
	return dst, nil
}

// PartPath is where a bundle being received is published for the relay.
func PartPath(root, sha string) string { return filepath.Join(root, Dir, ".part-"+sha) }

// publish links the file being written at tmp as part, replacing any
// earlier one atomically (a receive that died, or the one a retry
// replaces: a relay reading it moves over to this one). It returns the
// file's identity, to take the name back only while it is still ours;
// nil when it could not be published (then the relay simply waits for the
// verified bundle).
func publish(tmp, part string) os.FileInfo {
	link := tmp + "-part"
	if err := os.Link(tmp, link); err != nil {
		return nil
	}
	if err := os.Rename(link, part); err != nil {
		os.Remove(link)
		return nil
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return nil
	}
	return fi
}

// unpublish removes part if it still names the file published.
func unpublish(part string, published os.FileInfo) {
	if published == nil {
		return
	}
	if fi, err := os.Stat(part); err == nil && os.SameFile(fi, published) {
		os.Remove(part)
	}
}

// verified reports whether the cache holds bundle sha intact (a fetch
// retried, a deploy resumed); a cached file that no longer matches is
// removed, to be fetched again.
func verified(root, sha string, size int64) (string, bool) {
	p, err := Cached(root, sha)
	if err != nil {
		return "", false
	}
	f, err := os.Open(p)
	if err != nil {
		return "", false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err == nil && hex.EncodeToString(h.Sum(nil)) == sha && (size <= 0 || n == size) {
		return p, true
	}
	os.Remove(p)
	return "", false
}

// Verified returns the path of the cached bundle sha after checking its
// sha256 and size (when size > 0) again, just before it is unpacked. A
// copy damaged since it was received is removed and, like a missing one,
// is ENOTFOUND: fetch it again.
func Verified(root, sha string, size int64) (string, error) {
	if err := checkSHA(sha); err != nil {
		return "", err
	}
	if _, err := Cached(root, sha); err != nil {
		return "", err
	}
	p, ok := verified(root, sha, size)
	if !ok {
		return "", drover.Errorf(drover.ENOTFOUND, "cached bundle %s.. no longer matches its sha256; removed", sha[:12]).
			WithHint("the host's disk damaged it after it was fetched; it is fetched again")
	}
	return p, nil
}

// Checked is req with its release's bundle checksum cleared, for staging
// a bundle Verified has just checked: hostops would otherwise hash it a
// second time while unpacking, which on a large bundle is a good part of
// a relayed host's work. The manifest's release ID is still checked.
func Checked(req drover.StageRequest) drover.StageRequest {
	if req.Release == nil {
		return req
	}
	rel := *req.Release
	rel.BundleSHA256, rel.BundleSize = "", 0
	req.Release = &rel
	return req
}

// clean removes the cache's other bundles — one release is distributed
// at a time, and the previous one is on disk unpacked — and temporary
// (and published, PartPath) files left by receives that died more than an
// hour ago.
func clean(dir, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == keep+".tar.gz":
		case strings.HasSuffix(name, ".tar.gz"):
			os.Remove(filepath.Join(dir, name))
		case strings.HasPrefix(name, ".tmp-"), strings.HasPrefix(name, ".part-"):
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(dir, name))
			}
		}
	}
}

// FetchTimeouts bound a fetch's connection and first byte; the body is
// bounded by the caller's ctx.
const (
	DialTimeout   = 10 * time.Second
	HeaderTimeout = 30 * time.Second
)

// Fetch gets the bundle sha from the relay at url, presenting token, and
// Receives it into the cache under root.
func Fetch(ctx context.Context, root, url, token, sha string, size int64) (string, error) {
	if err := checkSHA(sha); err != nil {
		return "", err
	}
	if p, ok := verified(root, sha, size); ok {
		return p, nil
	}
	if !strings.HasPrefix(url, "http://") {
		return "", drover.Errorf(drover.EINVALID, "relay URL %q is not http://", url)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", drover.Errorf(drover.EINVALID, "relay URL %q: %v", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	tr := &http.Transport{
		Proxy:                 nil, // a relay is a peer; never through a proxy
		DialContext:           (&net.Dialer{Timeout: DialTimeout}).DialContext,
		ResponseHeaderTimeout: HeaderTimeout,
		DisableCompression:    true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("relays do not redirect")
	}}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", drover.Errorf(drover.ETIMEOUT, "fetch bundle from relay %s: %v", req.URL.Host, ctx.Err())
		}
		// The error names the URL, never the header.
		return "", drover.Errorf(drover.EUNREACHABLE, "fetch bundle from relay %s: %v", req.URL.Host, stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", drover.Errorf(drover.EFAILED, "fetch bundle from relay %s: %s", req.URL.Host, resp.Status)
	}
	return Receive(ctx, root, resp.Body, sha, size, "relay "+req.URL.Host)
}

func stripURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap()
	}
	return err
}

// NewToken is a relay key: 32 random bytes, hex. A relay is given the key;
// fetching hosts get ChildToken(key, name).
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ChildToken is a fresh token for child to present to a relay serving
// with key: the child's name with a random nonce, and the HMAC-SHA256 of
// both under the key. The relay takes each token once; a child fetching
// again (its copy was damaged since) is given a new one.
func ChildToken(key, child string) string {
	nonce := make([]byte, 8)
	rand.Read(nonce)
	id := child + "#" + hex.EncodeToString(nonce)
	return base64.RawURLEncoding.EncodeToString([]byte(id)) + "." + childMAC(key, id)
}

func childMAC(key, child string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(child))
	return hex.EncodeToString(m.Sum(nil))
}

// tokens checks child tokens against a relay's key and remembers which
// children have used theirs.
type tokens struct {
	key  string
	mu   sync.Mutex
	used map[string]bool
}

// take reports whether the Authorization header carries a child token of
// this key not used before, and marks it used. The key itself is not a
// token.
func (t *tokens) take(header string) bool {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return false
	}
	enc, mac, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	name, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(name) == 0 {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(mac), []byte(childMAC(t.key, string(name)))) != 1 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.used[string(name)] {
		return false
	}
	t.used[string(name)] = true
	return true
}

// Listen listens on host at a port in [portMin, portMax], or any free
// port when both are 0.
func Listen(host string, portMin, portMax int) (net.Listener, error) {
	if portMin == 0 && portMax == 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, drover.Errorf(drover.EFAILED, "relay: listen on %s: %v", host, err)
		}
		return ln, nil
	}
	var last error
	for p := portMin; p <= portMax; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, nil
		}
		last = err
	}
	return nil, drover.Errorf(drover.EFAILED, "relay: no free port on %s in %d-%d: %v", host, portMin, portMax, last).
		WithHint("widen distribution.port_range, or leave it out to let each host pick a free port")
}

// Server serves one bundle.
type Server struct {
	url  string
	srv  *http.Server
	done chan struct{}
	stop chan struct{}
	once sync.Once
}

// Serve serves the bundle with sha256 sha and size bytes under root on
// ln at /bundle/<sha> to requests carrying "Authorization: Bearer
// <ChildToken(key, child)>", once per child, until Close, ctx ends or
// timeout passes (0: no timeout).
//
// It need not hold the bundle yet: it serves what this host's Receive
// has written so far and follows it as it grows (cut-through), or the
// verified bundle once it is cached. The bytes are not trusted on the
// way — each child checks the sha256 itself — but a transfer is cut short
// when this host's receive fails or stalls for StallTimeout, so children
// find out and fetch from elsewhere. size must be the bundle's: it is
// announced as Content-Length and never exceeded.
func Serve(ctx context.Context, ln net.Listener, root, sha string, size int64, key string, timeout time.Duration) (*Server, error) {
	if err := checkSHA(sha); err != nil {
		ln.Close()
		return nil, err
	}
	if size <= 0 {
		ln.Close()
		return nil, drover.Errorf(drover.EINVALID, "relay: the bundle's size is unknown")
	}
	if len(key) < 32 {
		ln.Close()
		return nil, drover.Errorf(drover.EINVALID, "relay: key too short")
	}
	s := &Server{
		url:  "http://" + ln.Addr().String() + "/bundle/" + sha,
		done: make(chan struct{}),
		stop: make(chan struct{}),
	}
	tk := &tokens{key: key, used: map[string]bool{}}
	stall := StallTimeout
	mux := http.NewServeMux()
	mux.HandleFunc("/bundle/"+sha, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if !tk.take(r.Header.Get("Authorization")) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		// Headers go out at once: the child's header timeout must not
		// run while this host waits for its own source.
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		if err := follow(r.Context(), root, sha, size, stall, w); err != nil {
			// Fewer bytes than announced, and the connection closed:
			// the child sees a short transfer and refuses it.
			panic(http.ErrAbortHandler)
		}
	})
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          nil,
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.srv.Serve(ln)
	}()
	go func() {
		defer close(s.done)
		var expire <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			expire = t.C
		}
		select {
		case <-ctx.Done():
		case <-expire:
		case <-s.stop:
		}
		s.srv.Close()
		<-served
	}()
	return s, nil
}

// StallTimeout bounds how long a relay waits for this host's receive to
// start or to write more before it cuts a child's transfer short (read
// when Serve starts).
var StallTimeout = time.Minute

// followAtEnd, when set (tests), runs each time follow reads to the end
// of what has been written, before it looks at what became of the file.
var followAtEnd func()

// follow copies size bytes of bundle sha to w: from the verified bundle
// when it is cached, else from the file Receive is writing (PartPath),
// waiting for it to grow. It moves to whichever file now holds the
// bundle when the one it reads is replaced (a receive retried, or
// finished), and fails when the receive failed (neither name is there)
// or nothing new arrived for stall.
func follow(ctx context.Context, root, sha string, size int64, stall time.Duration, w io.Writer) error {
	fl, _ := w.(http.Flusher)
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	final, part := Path(root, sha), PartPath(root, sha)
	// open switches to whichever file holds the bundle now, the verified
	// one first; it reports whether there was one.
	open := func() bool {
		for _, p := range []string{final, part} {
			g, err := os.Open(p)
			if err != nil {
				continue
			}
			if f != nil {
				f.Close()
			}
			f = g
			return true
		}
		return false
	}
	// same reports whether path still names the file being read.
	same := func(path string) (exists, same bool) {
		fi, err := os.Stat(path)
		if err != nil {
			return false, false
		}
		cur, err := f.Stat()
		return true, err == nil && os.SameFile(fi, cur)
	}
	buf := make([]byte, 256<<10)
	var off int64
	// endOfFinal: a read of the verified bundle itself found its end.
	var endOfFinal bool
	wait := time.Millisecond
	last := time.Now()
	for off < size {
		if f == nil && !open() {
			// Its receive has not started yet.
		} else if f != nil {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return werr
				}
				off += int64(n)
				wait, last = time.Millisecond, time.Now()
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			// At the end of what has been written: finished, replaced,
			// failed, or still coming.
			if followAtEnd != nil {
				followAtEnd()
			}
			if ok, cur := same(final); ok {
				if cur && endOfFinal {
					return fmt.Errorf("cached bundle is shorter than %d bytes", size)
				}
				// The file read is the verified bundle now, or another
				// file is. Read again before calling it short: the
				// read that found the end may have come just before the
				// rest was written and the file renamed into the cache
				// (Receive renames only a whole bundle).
				endOfFinal = cur
				if !cur {
					open()
				}
				continue
			}
			if ok, cur := same(part); ok && !cur {
				open()
				continue
			} else if !ok {
				// Gone: failed, unless it was renamed into the cache
				// just now.
				if _, err := os.Stat(final); err != nil {
					return errors.New("this host's receive failed")
				}
				open()
				continue
			}
		}
		if fl != nil {
			fl.Flush()
		}
		if time.Since(last) > stall {
			return errors.New("this host's receive stalled")
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
	return nil
}

// URL is where the bundle is served.
func (s *Server) URL() string { return s.url }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server, cutting transfers in progress, and waits.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// String hides the token if a Server is ever printed.
func (s *Server) String() string { return fmt.Sprintf("relay %s", s.url) }
