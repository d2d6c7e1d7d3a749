package runner

import (
	"context"
	"errors"
	"time"

	"drover"
	"drover/rollout"
)

// Fencing: a deployer that no longer holds its deploy lock must not touch
// a host. With a lock that can be lost (drover.LosableLock: store/etcd's
// lease), another process may have taken the lock over and be recovering
// this very deploy: two actors on one host end it on a release nobody
// recorded. So drive
//   - starts a step only once its journal entry is durable, and the Store
//     writes that entry only while this process's lease owns the lock (a
//     compare in the same transaction): a refused write is a step that
//     never starts (rollout.NotRun);
//   - checks Held, by this process's own clock, right before it starts
//     steps: a process woken from a pause (SIGSTOP) past the TTL starts
//     nothing even if its last write went through just before the pause;
//   - freezes the rollout (rollout.Machine.Freeze) the moment the lock is
//     lost: steps in flight finish, nothing starts, nothing is rolled back
//     — the new holder recovers the deploy from the journal — and the
//     verdict needs a person (exit 3), naming who holds the lock now.
//
//   - checks Held again before every host operation that changes a host
//     (fencedConn): a step in flight when the process was paused goes on
//     when it wakes, and its next operation (the restart hook after the
//     before_restart hook, say) must not run over the new holder's work;
//
// What remains is the window between the check and the host receiving the
// step's command: a pause of exactly there, longer than the TTL, still
// lets one command through. Closing it needs the host to check a fencing
// token, which hosts do not hold.

type lockKey struct{}

// withLock makes lock the one drive fences on, when it can be lost.
func withLock(ctx context.Context, lock drover.Lock) context.Context {
	if l, ok := lock.(drover.LosableLock); ok {
		return context.WithValue(ctx, lockKey{}, l)
	}
	return ctx
}

// lockOf is the lock drive fences on; nil with a store whose lock cannot
// be lost (a flock).
func lockOf(ctx context.Context) drover.LosableLock {
	l, _ := ctx.Value(lockKey{}).(drover.LosableLock)
	return l
}

// isLockLost reports whether err is a write refused because this process
// lost lock, or failed because the lock was lost meanwhile.
func isLockLost(err error, lock drover.LosableLock) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, drover.ErrLockLost) || (lock != nil && !lock.Held())
}

// lostReason says that this process lost lock, and to whom: cause's words
// when the store said so, else the lock's own answer.
func (r *Runner) lostReason(ctx context.Context, lock drover.LosableLock, cause error) string {
	var de *drover.Error
	if errors.As(cause, &de) && errors.Is(cause, drover.ErrLockLost) {
		return de.Message
	}
	holder := lock.TakenBy(ctx)
	if errors.As(drover.LostLockError(Key(r.Spec), holder), &de) {
		return de.Message
	}
	return "this process lost the deploy lock of " + Key(r.Spec)
}

// notRun reports actions that were handed out and never started.
func notRun(m *rollout.Machine, now time.Time, as []rollout.Action) error {
	for _, a := range as {
		if err := m.Report(now, rollout.Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: rollout.NotRun}); err != nil {
			return err
		}
	}
	return nil
}

// fenceConn wraps conn so that every operation that changes the host first
// checks that the deploy lock in ctx is still held; conn itself without a
// lock that can be lost.
func fenceConn(ctx context.Context, conn drover.HostConn) drover.HostConn {
	lock := lockOf(ctx)
	if lock == nil {
		return conn
	}
	fc := fencedConn{HostConn: conn, lock: lock}
	if f, ok := conn.(drover.Fetcher); ok {
		return fencedFetcher{fc, f}
	}
	return fc
}

type fencedConn struct {
	drover.HostConn
	lock drover.LosableLock
}

// held is nil while the lock is held, else the error the operation fails
// with instead of running.
func (c fencedConn) held() error {
	if c.lock.Held() {
		return nil
	}
	return drover.LockLost(drover.Errorf(drover.ELOCKED, "not run: this process lost the deploy lock"))
}

func (c fencedConn) Stage(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if err := c.held(); err != nil {
		return drover.StageResult{}, err
	}
	return c.HostConn.Stage(ctx, req)
}

func (c fencedConn) Promote(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error) {
	if err := c.held(); err != nil {
		return drover.HostState{}, err
	}
	return c.HostConn.Promote(ctx, req)
}

func (c fencedConn) Restore(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
	if err := c.held(); err != nil {
		return drover.HostState{}, err
	}
	return c.HostConn.Restore(ctx, req)
}

func (c fencedConn) Exec(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error) {
	if err := c.held(); err != nil {
		return drover.ExecResult{}, err
	}
	return c.HostConn.Exec(ctx, req)
}

func (c fencedConn) Prune(ctx context.Context, keep int, protect ...string) ([]string, error) {
	if err := c.held(); err != nil {
		return nil, err
	}
	return c.HostConn.Prune(ctx, keep, protect...)
}

// PruneForeign is fenced like Prune; a connection that cannot prune
// foreign releases prunes only drover's own.
func (c fencedConn) PruneForeign(ctx context.Context, keep int, protect ...string) ([]string, error) {
	if err := c.held(); err != nil {
		return nil, err
	}
	if fp, ok := c.HostConn.(drover.ForeignPruner); ok {
		return fp.PruneForeign(ctx, keep, protect...)
	}
	return c.HostConn.Prune(ctx, keep, protect...)
}

// fencedFetcher keeps a Fetcher connection a Fetcher.
type fencedFetcher struct {
	fencedConn
	f drover.Fetcher
}

func (c fencedFetcher) Fetch(ctx context.Context, req drover.FetchRequest) error {
	if err := c.held(); err != nil {
		return err
	}
	return c.f.Fetch(ctx, req)
}

func (c fencedFetcher) StageFetched(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if err := c.held(); err != nil {
		return drover.StageResult{}, err
	}
	return c.f.StageFetched(ctx, req)
}

func (c fencedFetcher) Relay(ctx context.Context, req drover.RelayRequest) (drover.RelayServer, error) {
	return c.f.Relay(ctx, req)
}
