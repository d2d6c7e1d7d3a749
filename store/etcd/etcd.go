// Package etcd is drover's distributed drover.Store: locks, journal,
// history and approvals kept in etcd (go.etcd.io/etcd/client/v3), so that
// several operators and several `drover server` replicas on different
// machines share one record and one lock per service.
//
// The model is store/sqlite's, kept in keys under a prefix (default
// /drover). With K the lock key path-escaped (so "hello/staging" is one
// segment, hello%2Fstaging) and N a deploy's start time (20-digit Unix
// nanoseconds) and ID:
//
//	P/locks/K            the live lock: holder JSON, bound to the holder's lease
//	P/holders/K          the holder, kept until a clean Release
//	P/deploys/ID         "K/N": where the deploy's record lives
//	P/history/K/N        the deploy record (JSON), rewritten once by Finish
//	P/unfinished/K/N     the record again while the deploy has not finished
//	P/journal/K/ID/R     one journal entry; R is unique, order is etcd's
//	                     create revision (one total order across writers)
//	P/approvals/ID/R     one approval request or decision
//	P/takeovers/ID       who took the lock over from deploy ID's process,
//	                     for that process to say to whom it lost it
//
// Durability. Every write is an etcd transaction, which returns once a
// quorum of members has it in its log: Append is durable when it returns,
// which is what crash recovery needs. The checks the contract asks for —
// no Begin of an existing ID, no Append or decision after Finish — are
// compares in the same transaction, so no reader-then-writer race exists
// between processes.
//
// Locks are leases. Lock grants a lease of LeaseTTL, creates P/locks/K
// bound to it only when absent, and keeps the lease alive from this process
// (concurrency.Session). When the holder dies, nothing refreshes the lease:
// etcd deletes the lock key when it expires, at most LeaseTTL later. The
// holder's second key, P/holders/K, outlives it, so the next Lock sees a
// free lock with a recorded holder: the holder died mid-deploy, and Lock
// reports it (TakenOver) for the caller to recover its deploy, which
// Unfinished lists. Release deletes both keys and revokes the lease.
//
// A live holder that loses etcd, or is paused, for longer than LeaseTTL
// loses its lock too: another process may take it over and recover the
// deploy. Fencing keeps the first from writing over it: Begin, Append and
// Finish of a deploy under a lock this Store holds compare, in the same
// transaction, that the lock key is still bound to this lock's lease, and
// fail with drover.ErrLockLost naming who took it (P/takeovers/ID records
// the taker for an old holder that wakes after it released). The held lock
// says so too, without asking etcd: it is a drover.LosableLock whose Held
// turns false once its own deadline (last acknowledged refresh + TTL −
// margin, on the monotonic clock) passes, and whose Lost channel closes.
//
// Opening touches nothing: the client connects on first use. Every call
// is bounded by RequestTimeout even when the caller's context has no
// deadline (the runner journals on contexts that outlive Ctrl-C), so a
// lost etcd is an EUNREACHABLE error naming the endpoints, never a hang.
package etcd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"drover"
)

var (
	_ drover.Store         = (*Store)(nil)
	_ drover.HistoryReader = (*Store)(nil)
	_ drover.Approvals     = (*Store)(nil)
)

// Defaults.
const (
	DefaultPrefix         = "/drover"
	DefaultLeaseTTL       = 10 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
)

// Options say which etcd to use and how.
type Options struct {
	// Endpoints are the members' client URLs (http(s)://host:port).
	Endpoints []string
	// Prefix is where drover's keys live; DefaultPrefix when "".
	Prefix string
	// CA, Cert and Key are PEM files for TLS: CA alone verifies the
	// server; Cert and Key together authenticate drover to it.
	CA, Cert, Key string
	// Username and Password authenticate to etcd's RBAC; "" for none.
	Username, Password string
	// AllowInsecure accepts plain-http endpoints off loopback. Without
	// it Open refuses them: anyone on the path would read the journal,
	// forge approvals and take locks.
	AllowInsecure bool
	// LeaseTTL is how long a dead holder keeps a lock (and a dead leader
	// its leadership); DefaultLeaseTTL when 0. etcd rounds it up to whole
	// seconds and to its own minimum (2 s by default).
	LeaseTTL time.Duration
	// DialTimeout bounds connecting; DefaultDialTimeout when 0.
	DialTimeout time.Duration
	// RequestTimeout bounds every call; DefaultRequestTimeout when 0.
	RequestTimeout time.Duration
}

// Store is a drover.Store, drover.HistoryReader and drover.Approvals in
// etcd.
type Store struct {
	// Now returns the current time; it stamps records and entries that
	// leave their time unset. Tests replace it.
	Now func() time.Time

	c         *clientv3.Client
	prefix    string
	endpoints string
	ttl       time.Duration
	timeout   time.Duration

	mu   sync.Mutex
	refs map[string]ref // deploy ID -> where its record lives; never changes
	// held are the locks this Store holds, by escaped lock key: writes of
	// their deploys are fenced on them (lock.go).
	held map[string]*lock
}

// Open returns the store for o. It checks o and reads the TLS files but
// does not connect: the first call does.
func Open(o Options) (*Store, error) {
	if len(o.Endpoints) == 0 {
		return nil, drover.Errorf(drover.EINVALID, "store: etcd: no endpoints given").
			WithHint("list the etcd members' client URLs in store.etcd.endpoints, e.g. [http://127.0.0.1:2379]")
	}
	prefix, err := cleanPrefix(o.Prefix)
	if err != nil {
		return nil, err
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if !o.AllowInsecure {
		for _, ep := range o.Endpoints {
			if insecureRemote(ep, o.CA != "" || o.Cert != "") {
				return nil, drover.Errorf(drover.EINVALID, "store: etcd endpoint %s is plain http to a host other than this machine", ep).
					WithHint("use https:// with store.etcd.tls, or allow_insecure: true on a network you trust")
			}
		}
	}
	tc, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.DialTimeout,
		TLS:         tc,
		Username:    o.Username,
		Password:    o.Password,
		// The client's own log (retries, reconnects) would interleave
		// with drover's output; failures come back as errors instead.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, &drover.Error{Code: drover.EINVALID, Message: "store: etcd client for " + strings.Join(o.Endpoints, ","), Err: err,
			Hint: "check store.etcd.endpoints: each is a URL like http://127.0.0.1:2379"}
	}
	return &Store{
		Now: time.Now, c: c, prefix: prefix, endpoints: strings.Join(o.Endpoints, ","),
		ttl: o.LeaseTTL, timeout: o.RequestTimeout, refs: map[string]ref{}, held: map[string]*lock{},
	}, nil
}

// insecureRemote reports whether ep is reached in plain text (http://, or
// host:port without TLS) on an address other than loopback.
func insecureRemote(ep string, tls bool) bool {
	hostport := ep
	if scheme, rest, ok := strings.Cut(ep, "://"); ok {
		if scheme != "http" {
			return false
		}
		hostport, _, _ = strings.Cut(rest, "/")
	} else if tls {
		return false
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return host != "localhost" && (ip == nil || !ip.IsLoopback())
}

// cleanPrefix returns p without a trailing slash, refusing one that is
// not an absolute key path.
func cleanPrefix(p string) (string, error) {
	if p == "" {
		return DefaultPrefix, nil
	}
	q := strings.TrimRight(p, "/")
	if !strings.HasPrefix(p, "/") || q == "" || strings.Contains(q, "//") {
		return "", drover.Errorf(drover.EINVALID, "store: etcd prefix %q is not a key path like /drover", p).
			WithHint("start the prefix with / and give it at least one segment, e.g. /drover or /teams/web/drover")
	}
	return q, nil
}

func tlsConfig(o Options) (*tls.Config, error) {
	if o.CA == "" && o.Cert == "" && o.Key == "" {
		return nil, nil
	}
	bad := func(msg string, err error) error {
		return &drover.Error{Code: drover.EINVALID, Message: "store: etcd tls: " + msg, Err: err,
			Hint: "store.etcd.tls takes ca (PEM of the CA that signed etcd's certificate), and cert with key for client authentication"}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CA != "" {
		pem, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, bad("read ca", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, bad(o.CA+" holds no PEM certificate", nil)
		}
		tc.RootCAs = pool
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, bad("cert and key go together", nil)
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, bad("load cert and key", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Client returns the etcd client, for callers that share the connection
// (leader election).
func (s *Store) Client() *clientv3.Client { return s.c }

// Prefix returns the key prefix the store uses.
func (s *Store) Prefix() string { return s.prefix }

// LeaseTTL returns the lease TTL of locks and elections.
func (s *Store) LeaseTTL() time.Duration { return s.ttl }

// Close closes the client. Locks still held lose their lease keepalive
// and expire within LeaseTTL; Release them first.
func (s *Store) Close() error {
	if err := s.c.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return &drover.Error{Code: drover.EINTERNAL, Message: "store: close etcd client", Err: err}
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// ttlSeconds is the lease TTL in whole seconds, rounded up.
func (s *Store) ttlSeconds() int64 {
	n := int64((s.ttl + time.Second - 1) / time.Second)
	if n < 1 {
		n = 1
	}
	return n
}

// call runs fn with ctx bounded by the request timeout and turns its
// error into drover's vocabulary.
func (s *Store) call(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := fn(cctx)
	if err == nil {
		return nil
	}
	var de *drover.Error
	if errors.As(err, &de) {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded {
		return &drover.Error{Code: drover.EUNREACHABLE, Message: fmt.Sprintf("store: etcd at %s did not answer (%s) within %s", s.endpoints, what, s.timeout), Err: err,
			Hint: "check that etcd is running and reachable from here, and store.etcd.endpoints in drover.yaml"}
	}
	return &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: " + what, Err: err}
}

// Keys.

// esc makes a lock key one path segment.
func esc(key string) string { return url.PathEscape(key) }

func (s *Store) lockKey(key string) string   { return s.prefix + "/locks/" + esc(key) }
func (s *Store) holderKey(key string) string { return s.prefix + "/holders/" + esc(key) }
func (s *Store) deployKey(id string) string  { return s.prefix + "/deploys/" + id }
func (s *Store) historyDir(key string) string {
	return s.prefix + "/history/" + esc(key) + "/"
}
func (s *Store) unfinishedDir(key string) string {
	return s.prefix + "/unfinished/" + esc(key) + "/"
}
func (s *Store) journalDir(key string) string {
	return s.prefix + "/journal/" + esc(key) + "/"
}
func (s *Store) approvalsDir(id string) string { return s.prefix + "/approvals/" + id + "/" }

// takeoverKey records who took the lock over from deploy id's process.
func (s *Store) takeoverKey(id string) string { return s.prefix + "/takeovers/" + id }

// ref is where a deploy's record lives: its escaped lock key and its name
// (start time and ID) under history/ and unfinished/.
type ref struct {
	k, name, id string
}

func (r ref) String() string { return r.k + "/" + r.name }

func parseRef(id, v string) (ref, bool) {
	k, name, ok := strings.Cut(v, "/")
	return ref{k: k, name: name, id: id}, ok && k != "" && name != ""
}

func (s *Store) historyKey(r ref) string    { return s.prefix + "/history/" + r.k + "/" + r.name }
func (s *Store) unfinishedKey(r ref) string { return s.prefix + "/unfinished/" + r.k + "/" + r.name }
func (s *Store) entriesDir(r ref) string    { return s.prefix + "/journal/" + r.k + "/" + r.id + "/" }

// recordName orders records by start time, then ID, as text.
func recordName(started time.Time, id string) string {
	return timeKey(started) + "-" + id
}

func timeKey(t time.Time) string {
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	return fmt.Sprintf("%020d", ns)
}

// unique returns a key suffix no other writer picks: the time, for people
// reading keys with etcdctl, and 64 random bits.
func (s *Store) unique() string {
	var b [8]byte
	rand.Read(b[:])
	return timeKey(s.now()) + "-" + hex.EncodeToString(b[:])
}

// lookup returns where deploy id's record lives; ENOTFOUND when it was
// never begun.
func (s *Store) lookup(ctx context.Context, id string) (ref, error) {
	if err := checkID(id); err != nil {
		return ref{}, err
	}
	s.mu.Lock()
	r, ok := s.refs[id]
	s.mu.Unlock()
	if ok {
		return r, nil
	}
	var resp *clientv3.GetResponse
	err := s.call(ctx, "read deploy "+id, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.deployKey(id))
		return err
	})
	if err != nil {
		return ref{}, err
	}
	if len(resp.Kvs) == 0 {
		return ref{}, notFound(id)
	}
	r, ok = parseRef(id, string(resp.Kvs[0].Value))
	if !ok {
		return ref{}, &drover.Error{Code: drover.EINTERNAL, Message: fmt.Sprintf("store: etcd: %s holds %q, not K/NAME", s.deployKey(id), resp.Kvs[0].Value)}
	}
	s.remember(r)
	return r, nil
}

func (s *Store) remember(r ref) {
	s.mu.Lock()
	s.refs[r.id] = r
	s.mu.Unlock()
}

// Tail returns the last n bytes of s, starting at a UTF-8 boundary.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for i := 0; i < len(s) && i < 4; i++ {
		if s[i]&0xc0 != 0x80 {
			return s[i:]
		}
	}
	return s
}
