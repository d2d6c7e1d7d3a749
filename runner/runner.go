// Package runner drives deploys: it asks the pure state machine in package
// rollout what to do next, does it through a drover.Transport with bounded
// parallelism and timeouts, journals every step in a drover.Store before and
// after it runs, and feeds each result back to the machine.
//
// The runner owns every goroutine it starts: each host step runs in its own
// goroutine and reports on one channel that only the loop reads, and the loop
// does not return before every step has reported. Time comes from Now, and
// jitter from a source seeded per deploy, so a test can replay a run.
package runner

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"sync"
	"sync/atomic"
	"time"

	"drover"
)

// Runner executes deploys, rollbacks and recoveries for one Spec.
type Runner struct {
	Spec      *drover.Spec
	Transport drover.Transport
	Store     drover.Store
	// Events receives progress; nil discards it.
	Events drover.EventSink
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits between retries; nil means a timer honoring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// NewID returns a deploy id; nil means a time-based id.
	NewID func() string
	// Rotation takes hosts out of and back into rotation (package
	// rotation: command hooks, HAProxy). nil runs the spec's depool,
	// wait_idle and repool hooks, and refuses a spec with a native
	// balancer (rotation.haproxy) rather than restart hosts it still
	// sends traffic to.
	Rotation drover.Rotation
	// Confirm asks a person a yes/no question (a group with confirm:
	// true, before the deploy moves past it). It must honour ctx and
	// never wait without a terminal; nil fails every confirmation, which
	// halts the deploy and rolls it back.
	Confirm func(ctx context.Context, question string) (bool, error)
	// GateSources add gates after groups (smoke tests, invariants, bake
	// times, approvals); see gates.go.
	GateSources []GateSource
	// Analyzer evaluates drover.yaml's metric analyses (check/prometheus);
	// nil fails every group that has one. See analysis.go.
	Analyzer drover.Analyzer
	// Approvals records approval requests and decisions shared with other
	// drover processes (approve: manual, drover approve/abort); nil fails
	// every approval gate and watches for no abort. See approve.go.
	Approvals drover.Approvals
	// AskApproval asks a person at a terminal to approve a group; it must
	// honour ctx (another process may answer first) and return
	// ErrNoTerminal when there is no one to ask. nil asks no one.
	AskApproval func(ctx context.Context, question string) (bool, error)
	// Bundles keeps the bundles of deploys to an environment that others
	// require (environments.NAME.requires), for `drover promote`; nil
	// keeps none. See promotion.go.
	Bundles drover.BundleStore
	// User names who runs the deploys in locks and history instead of
	// the operating-system user; drover server sets it to the token's
	// name ("token:alice"), so a change made through the API is recorded
	// against the person who asked, not the server's account.
	User string
}

// who is Who with User in place of the operating-system user when set.
func (r *Runner) who() (userName, machine string) {
	userName, machine = Who()
	if r.User != "" {
		userName = r.User
	}
	return userName, machine
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) emit(e drover.Event) {
	if r.Events == nil {
		return
	}
	e.Schema = drover.EventSchema
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	r.Events.Emit(e)
}

func (r *Runner) sleep(ctx context.Context, d time.Duration) error {
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Runner) newID() string {
	if r.NewID != nil {
		return r.NewID()
	}
	id := fmt.Sprintf("d-%s-%04x", r.now().UTC().Format("20060102T150405"), os.Getpid()&0xffff)
	// The time and pid alone repeat within one process in one second: a
	// deploy that recovers two interrupted ones names two recoveries at
	// once, and the Store refuses the second Begin of an id.
	if n := idSeq.Add(1); n > 1 {
		id += fmt.Sprintf("-%d", n)
	}
	return id
}

// idSeq counts the ids newID made in this process.
var idSeq atomic.Int64

// Key is the lock and history key of a spec: the service, and the
// environment when one was chosen, so staging and production deploys of one
// service do not block each other.
func Key(s *drover.Spec) string {
	if s.Env == "" {
		return s.Service
	}
	return s.Service + "/" + s.Env
}

// Who describes the person and machine running drover, for locks and history.
func Who() (userName, machine string) {
	userName = os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		userName = u.Username
	}
	machine, _ = os.Hostname()
	return userName, machine
}

// conns holds one open connection per host, opened on first use.
type conns struct {
	transport drover.Transport
	spec      *drover.Spec
	mu        sync.Mutex
	open      map[string]drover.HostConn
	// hosts indexes spec.Hosts by name: Spec.Host scans the list, and
	// every step looks its host up, which is quadratic in the fleet.
	hosts map[string]drover.Host
}

func newConns(t drover.Transport, s *drover.Spec) *conns {
	hosts := make(map[string]drover.Host, len(s.Hosts))
	for _, h := range s.Hosts {
		if _, dup := hosts[h.Name]; !dup {
			hosts[h.Name] = h // the first, as Spec.Host finds it
		}
	}
	return &conns{transport: t, spec: s, open: map[string]drover.HostConn{}, hosts: hosts}
}

// host returns the spec's host of that name, as Spec.Host does.
func (c *conns) host(name string) (drover.Host, bool) {
	if h, ok := c.hosts[name]; ok {
		return h, true
	}
	return c.spec.Host(name)
}

// hostRef is host on the heap (see executor.step).
//
//go:noinline
func (c *conns) hostRef(name string) (*drover.Host, bool) {
	h, ok := c.host(name)
	return &h, ok
}

// get returns the host's connection, opening it when needed, fenced on the
// deploy lock in ctx (fence.go). A failed open is not cached: the next step
// tries again.
func (c *conns) get(ctx context.Context, name string) (drover.HostConn, error) {
	conn, err := c.getConn(ctx, name)
	if err != nil {
		return nil, err
	}
	return fenceConn(ctx, conn), nil
}

func (c *conns) getConn(ctx context.Context, name string) (drover.HostConn, error) {
	c.mu.Lock()
	conn, ok := c.open[name]
	c.mu.Unlock()
	if ok {
		return conn, nil
	}
	h, found := c.host(name)
	if !found {
		return nil, drover.Errorf(drover.ENOTFOUND, "no host %q in %s", name, c.spec.Source)
	}
	conn, err := c.transport.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if existing, ok := c.open[name]; ok {
		conn.Close()
		return existing, nil
	}
	c.open[name] = conn
	return conn, nil
}

// drop forgets a connection that failed, so the next step reconnects.
func (c *conns) drop(name string) {
	c.mu.Lock()
	conn, ok := c.open[name]
	delete(c.open, name)
	c.mu.Unlock()
	if ok {
		conn.Close()
	}
}

func (c *conns) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, conn := range c.open {
		conn.Close()
		delete(c.open, name)
	}
}

// forEach runs fn for every name with at most n at once and waits for all.
func forEach(names []string, n int, fn func(name string)) {
	if n < 1 {
		n = 1
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(name)
		}()
	}
	wg.Wait()
}
