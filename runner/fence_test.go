package runner

import (
	"context"
	"strings"
	"sync"
	"testing"

	"drover"
	"drover/rollout"
)

// losableLock is a held lock the test can lose, as store/etcd's lease is
// lost by a process paused past its TTL.
type losableLock struct {
	drover.Lock
	mu       sync.Mutex
	expired  bool // Held false: this process's clock says the lease may be gone
	taken    *drover.LockOwner
	lostOnce sync.Once
	lost     chan struct{}
}

func (l *losableLock) Lost() <-chan struct{} { return l.lost }
func (l *losableLock) TakenBy(context.Context) *drover.LockOwner {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.taken
}
func (l *losableLock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.expired
}

// expire makes Held false, and with closeLost closes Lost too.
func (l *losableLock) expire(closeLost bool) {
	l.mu.Lock()
	l.expired = true
	l.mu.Unlock()
	if closeLost {
		l.lostOnce.Do(func() { close(l.lost) })
	}
}

// refusingStore refuses journal writes and outcomes while refuse says
// why.
type refusingStore struct {
	*recStore
	refuse func() error
}

func (s refusingStore) Append(ctx context.Context, id string, e drover.JournalEntry) error {
	if err := s.refuse(); err != nil {
		return err
	}
	return s.recStore.Append(ctx, id, e)
}

func (s refusingStore) Finish(ctx context.Context, id string, r drover.FinishRecord) error {
	if err := s.refuse(); err != nil {
		return err
	}
	return s.recStore.Finish(ctx, id, r)
}

// fencedStore refuses journal writes and outcomes once taken is set, as
// store/etcd does once another process took the lock over.
type fencedStore struct {
	refusingStore
	mu    sync.Mutex
	lock  *losableLock
	taken *drover.LockOwner
}

func (s *fencedStore) Lock(ctx context.Context, key string, owner drover.LockOwner) (drover.Lock, error) {
	l, err := s.recStore.Lock(ctx, key, owner)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lock = &losableLock{Lock: l, lost: make(chan struct{})}
	return s.lock, nil
}

func (s *fencedStore) takeOver(o drover.LockOwner) {
	s.mu.Lock()
	s.taken = &o
	l := s.lock
	s.mu.Unlock()
	l.mu.Lock()
	l.taken = &o
	l.mu.Unlock()
	l.expire(true)
}

func (s *fencedStore) refused() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken != nil {
		return drover.LostLockError("hello", s.taken)
	}
	return nil
}

// fencedEnv is an env whose store fences, with the default group one host
// at a time so that exactly one step is in flight when the lock goes.
func fencedEnv(t *testing.T) (*env, *fencedStore) {
	spec := testSpec(4)
	spec.Groups[1].Batch = 1
	e := newEnv(t, spec)
	fs := &fencedStore{}
	fs.refusingStore = refusingStore{recStore: e.store, refuse: fs.refused}
	e.r.Store = fs
	return e, fs
}

// faultMidSwitch deploys 1.0.0, then 2.0.0 with h02's switch held in
// flight; fault runs while it is, then the switch goes on. It returns both
// releases, the outcome and every call made from the fault on.
func (e *env) faultMidSwitch(t *testing.T, fault func()) (v1, v2 *drover.Release, out *Outcome, after []call) {
	t.Helper()
	v1, v2 = mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0")
	e.mustDeploy(v1, "")
	g := e.fleet.Hold("h02", opPromote)
	done := make(chan *Outcome, 1)
	go func() { done <- e.deploy(context.Background(), DeployOptions{Release: v2}) }()
	<-g.entered
	mark := e.log.mark()
	fault()
	g.Release()
	out = <-done
	return v1, v2, out, e.log.since(mark)
}

// The lock is taken over while h02's switch runs: the switch finishes, its
// next step's journal entry is refused, and nothing more touches any host
// — no restart, no restore of its own, no rollback. The verdict needs a
// person and says to whom the lock went.
func TestFenceLockTakenOverMidDeploy(t *testing.T) {
	e, fs := fencedEnv(t)
	v1, v2, out, after := e.faultMidSwitch(t, func() {
		fs.takeOver(drover.LockOwner{PID: 4242, User: "bob", Machine: "ops2", DeployID: "d-other"})
	})
	for _, c := range after {
		if changesHost(c.Op) || c.Op == opAppend || c.Op == opFinish {
			t.Errorf("after the lock was lost: %s %s %s", c.Op, c.Host, c.Arg)
		}
	}
	if out.ExitCode != drover.ExitNeedsPerson || out.Verdict != rollout.NeedsPerson {
		t.Errorf("exit %d verdict %s, want 3 needs_person", out.ExitCode, out.Verdict)
	}
	for _, want := range []string{"lost the deploy lock of hello to pid 4242 user bob on machine ops2", "(deploy d-other)", "the lock's holder recovers this deploy"} {
		if !strings.Contains(out.Summary, want) {
			t.Errorf("summary does not say %q:\n%s", want, out.Summary)
		}
	}
	if st := e.states()["h02"]; st.Release != v2.ID() {
		t.Errorf("h02 is on %s: its switch in flight should have finished, untouched since", st.Release)
	}
	if st := e.states()["h03"]; st.Release != v1.ID() {
		t.Errorf("h03 is on %s, want untouched on 1.0.0", st.Release)
	}
}

// Woken from a pause past the TTL, this process's clock says the lease may
// have expired before etcd (or the keeper) could say so, and the last
// write even went through: the steps it allowed do not start.
func TestFenceHeldFalseStartsNothing(t *testing.T) {
	e, fs := fencedEnv(t)
	_, _, out, after := e.faultMidSwitch(t, func() {
		fs.mu.Lock()
		l := fs.lock
		fs.mu.Unlock()
		l.expire(false)
	})
	for _, c := range after {
		if changesHost(c.Op) {
			t.Errorf("after Held turned false: %s %s %s", c.Op, c.Host, c.Arg)
		}
	}
	if out.ExitCode != drover.ExitNeedsPerson || !strings.Contains(out.Summary, "lost the deploy lock of hello (its lease expired; nobody has taken it yet)") {
		t.Errorf("exit %d: %s", out.ExitCode, out.Summary)
	}
}

// A lock that cannot be lost (store/file's flock) needs no fence: the same
// deploy goes through.
func TestFenceFlockNeedsNone(t *testing.T) {
	e := newEnv(t, testSpec(3))
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	l, err := e.r.Store.Lock(context.Background(), "other", drover.LockOwner{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, ok := l.(drover.LosableLock); ok {
		t.Error("store/file's lock claims it can be lost")
	}
}
