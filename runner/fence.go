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
// when the store said so, else who the store records as holder now.
func (r *Runner) lostReason(ctx context.Context, lock drover.LosableLock, cause error) string {
	var de *drover.Error
	if errors.As(cause, &de) && errors.Is(cause, drover.ErrLockLost) {
		return de.Message
	}
	var holder *drover.LockOwner
	// HistoryReader's LockHolder, alone: who the store records now.
	if hr, ok := r.Store.(interface {
		LockHolder(context.Context, string) (*drover.LockOwner, error)
	}); ok {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		h, err := hr.LockHolder(hctx, Key(r.Spec))
		cancel()
		own := lock.Owner()
		if err == nil && h != nil && !(h.PID == own.PID && h.DeployID == own.DeployID && h.Machine == own.Machine) {
			holder = h
		}
	}
	de, _ = drover.LostLockError(Key(r.Spec), holder).(*drover.Error)
	return de.Message
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
