package etcd_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"drover"
	"drover/internal/etcdtest"
	"drover/store/etcd"
	"drover/store/storetest"
)

// One etcd serves the package's tests; each store gets a prefix of its
// own, so tests do not see each other's keys.
var endpoint string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv(helperEnv) != "" {
		return m.Run() // the helper process uses its parent's etcd
	}
	dir, err := os.MkdirTemp("", "drover-etcd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := etcdtest.StartIn(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer srv.Stop()
	endpoint = srv.Endpoint
	return m.Run()
}

var prefixes atomic.Int64

func newPrefix() string {
	return fmt.Sprintf("/drover-test/%d-%d", os.Getpid(), prefixes.Add(1))
}

func openAt(t *testing.T, prefix string, ttl time.Duration) *etcd.Store {
	t.Helper()
	s, err := etcd.Open(etcd.Options{Endpoints: []string{endpoint}, Prefix: prefix, LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t *testing.T) *etcd.Store { return openAt(t, newPrefix(), 0) }

func TestEtcdContract(t *testing.T) {
	storetest.RunStoreContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestEtcdHistoryReaderContract(t *testing.T) {
	storetest.RunHistoryReaderContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestEtcdLegacyHalted(t *testing.T) {
	storetest.RunLegacyHaltedContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestEtcdApprovalsContract(t *testing.T) {
	storetest.RunApprovalsContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestEtcdOpenRefuses(t *testing.T) {
	for _, o := range []etcd.Options{
		{},
		{Endpoints: []string{endpoint}, Prefix: "drover"},
		{Endpoints: []string{endpoint}, Prefix: "/"},
		{Endpoints: []string{endpoint}, Prefix: "/a//b"},
		{Endpoints: []string{endpoint}, CA: "/nonexistent/ca.pem"},
		{Endpoints: []string{endpoint}, Cert: "c.pem"},
	} {
		if s, err := etcd.Open(o); drover.ErrorCode(err) != drover.EINVALID || drover.ErrorHint(err) == "" {
			t.Errorf("Open(%+v): %v, want EINVALID with a hint", o, err)
			if s != nil {
				s.Close()
			}
		}
	}
}

// A store whose etcd is gone answers with EUNREACHABLE naming the
// endpoint within its request timeout, even on a context without deadline.
func TestEtcdUnreachable(t *testing.T) {
	s, err := etcd.Open(etcd.Options{Endpoints: []string{"http://127.0.0.1:1"}, RequestTimeout: 500 * time.Millisecond, DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.History(context.Background(), "hello", 0)
	if drover.ErrorCode(err) != drover.EUNREACHABLE || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("History without etcd: %v, want EUNREACHABLE naming the endpoint", err)
	}
}

// Two processes (here two clients) racing for a lock: exactly one wins,
// the others get ELOCKED naming it.
func TestEtcdLockRace(t *testing.T) {
	prefix := newPrefix()
	const n = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		won    []drover.Lock
		locked int
	)
	for i := 0; i < n; i++ {
		s := openAt(t, prefix, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := s.Lock(context.Background(), "hello", drover.LockOwner{PID: 100 + i, User: "u", Machine: "m", DeployID: fmt.Sprint("d-", i)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, l)
			case drover.ErrorCode(err) == drover.ELOCKED && strings.Contains(err.Error(), "user u on machine m"):
				locked++
			default:
				t.Errorf("Lock: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 || locked != n-1 {
		t.Fatalf("%d won, %d got ELOCKED; want exactly one winner", len(won), locked)
	}
	won[0].Release()
}

// Entries appended by two writers at once all land, each writer's in its
// own order, and every reader sees one order.
func TestEtcdAppendOrder(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix()
	a, b := openAt(t, prefix, 0), openAt(t, prefix, 0)
	if err := a.Begin(ctx, storetest.Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	for w, s := range []*etcd.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := s.Append(ctx, "d-1", drover.JournalEntry{Host: fmt.Sprint("w", w), Step: fmt.Sprint(i), Phase: "start"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ja, err := a.Journal(ctx, "d-1")
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := b.Journal(ctx, "d-1")
	if len(ja) != 2*n || len(jb) != 2*n {
		t.Fatalf("journal has %d / %d entries, want %d", len(ja), len(jb), 2*n)
	}
	next := map[string]int{}
	for i, e := range ja {
		if e.Step != fmt.Sprint(next[e.Host]) {
			t.Fatalf("entry %d: %s step %s, want %d: writers' entries out of order", i, e.Host, e.Step, next[e.Host])
		}
		next[e.Host]++
		if jb[i] != e {
			t.Fatalf("entry %d differs between readers: %+v / %+v", i, e, jb[i])
		}
	}
}

const helperEnv = "DROVER_STORE_ETCD_LOCK_HELPER"

// TestEtcdLockHelperProcess is not a test: TestEtcdLockTakeoverAfterDeath
// runs the test binary again with helperEnv set (endpoint and prefix), and
// this takes the lock and begins a deploy in that child, then waits to be
// killed.
func TestEtcdLockHelperProcess(t *testing.T) {
	v := os.Getenv(helperEnv)
	if v == "" {
		t.Skip("helper process for TestEtcdLockTakeoverAfterDeath")
	}
	ep, prefix, _ := strings.Cut(v, " ")
	ctx := context.Background()
	s, err := etcd.Open(etcd.Options{Endpoints: []string{ep}, Prefix: prefix, LeaseTTL: 2 * time.Second})
	if err == nil {
		_, err = s.Lock(ctx, "hello", drover.LockOwner{PID: os.Getpid(), User: "child", Machine: "m", DeployID: "d-child"})
	}
	if err == nil {
		err = s.Begin(ctx, storetest.Record("d-child", "hello", 0))
	}
	if err == nil {
		err = s.Append(ctx, "d-child", drover.JournalEntry{Host: "h01", Step: "depool", Phase: "start"})
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(1) // not killed: the parent fails on its own
}

// The lock holds across processes while the holder lives (its lease is
// kept alive past the TTL); after SIGKILL the lease expires within the
// TTL, the next Lock takes the lock and reports the dead holder, and the
// dead process's deploy and journal are there for recovery.
func TestEtcdLockTakeoverAfterDeath(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix()
	const ttl = 2 * time.Second
	cmd := exec.Command(os.Args[0], "-test.run=^TestEtcdLockHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+endpoint+" "+prefix)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		if l != "locked" {
			t.Fatalf("child: %q", l)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not take the lock")
	}
	child := cmd.Process.Pid

	s := openAt(t, prefix, ttl)
	// Past the TTL, the live child still holds it.
	time.Sleep(ttl + time.Second)
	_, err = s.Lock(ctx, "hello", drover.LockOwner{})
	if drover.ErrorCode(err) != drover.ELOCKED || !strings.Contains(err.Error(), fmt.Sprintf("pid %d user child", child)) {
		t.Fatalf("Lock while the child holds it: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()

	if h, err := s.LockHolder(ctx, "hello"); err != nil || h == nil || h.PID != child {
		t.Errorf("LockHolder after the holder died: %+v, %v; want the dead child", h, err)
	}
	var l drover.Lock
	for {
		l, err = s.Lock(ctx, "hello", drover.LockOwner{DeployID: "d-parent"})
		if err == nil {
			break
		}
		if drover.ErrorCode(err) != drover.ELOCKED {
			t.Fatalf("Lock after the holder died: %v", err)
		}
		// etcd may add up to one election timeout (1 s) to the TTL.
		if time.Since(killed) > ttl+2*time.Second {
			t.Fatalf("lock still held %s after its holder died (TTL %s): %v", time.Since(killed), ttl, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("lock free %s after the holder died", time.Since(killed).Round(10*time.Millisecond))
	prev := l.TakenOver()
	if prev == nil || prev.PID != child || prev.DeployID != "d-child" || prev.User != "child" {
		t.Fatalf("TakenOver() = %+v, want the dead child (pid %d)", prev, child)
	}
	un, err := s.Unfinished(ctx, "hello")
	if err != nil || len(un) != 1 || un[0].ID != "d-child" {
		t.Fatalf("Unfinished after the child died: %+v, %v", un, err)
	}
	if j, err := s.Journal(ctx, "d-child"); err != nil || len(j) != 1 || j[0].Step != "depool" {
		t.Fatalf("the dead child's journal: %+v, %v", j, err)
	}
	l.Release()
	l, err = s.Lock(ctx, "hello", drover.LockOwner{})
	if err != nil || l.TakenOver() != nil {
		t.Fatalf("Lock after a clean release: %v, taken over %+v", err, l.TakenOver())
	}
	l.Release()
}

// A held lock whose lease is gone says so: the holder can stop.
func TestEtcdLockLost(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	l, err := s.Lock(ctx, "hello", drover.LockOwner{})
	if err != nil {
		t.Fatal(err)
	}
	lost := l.(interface{ Lost() <-chan struct{} }).Lost()
	select {
	case <-lost:
		t.Fatal("Lost closed on a held lock")
	default:
	}
	leases, err := s.Client().Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, le := range leases.Leases {
		s.Client().Revoke(ctx, le.ID)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed after the lease was revoked")
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release of a lost lock: %v", err)
	}
	l2, err := s.Lock(ctx, "hello", drover.LockOwner{})
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()
}

func TestEtcdElection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := newPrefix()
	a, b := openAt(t, prefix, 2*time.Second), openAt(t, prefix, 2*time.Second)
	ea, err := a.Elector(ctx, "servers")
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.Elector(ctx, "servers")
	if err != nil {
		t.Fatal(err)
	}
	defer eb.Close()
	if _, err := eb.Leader(ctx); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Fatalf("Leader before any campaign: %v, want ENOTFOUND", err)
	}
	if err := ea.Campaign(ctx, "http://a"); err != nil {
		t.Fatal(err)
	}
	won := make(chan error, 1)
	go func() { won <- eb.Campaign(ctx, "http://b") }()
	select {
	case err := <-won:
		t.Fatalf("b won while a leads: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if v, err := eb.Leader(ctx); err != nil || v != "http://a" {
		t.Fatalf("Leader = %q, %v; want http://a", v, err)
	}
	obs, stop := context.WithCancel(ctx)
	defer stop()
	seen := eb.Observe(obs)
	if v := <-seen; v != "http://a" {
		t.Fatalf("Observe: %q", v)
	}
	if err := ea.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-won; err != nil {
		t.Fatalf("b's campaign: %v", err)
	}
	if v := <-seen; v != "http://b" {
		t.Fatalf("Observe after the change: %q", v)
	}
	// a's lease ends with Close; b leads on.
	if err := ea.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := eb.Leader(ctx); err != nil || v != "http://b" {
		t.Fatalf("Leader = %q, %v; want http://b", v, err)
	}
}
