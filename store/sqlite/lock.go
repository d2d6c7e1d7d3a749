package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"drover"
	"drover/internal/flock"
)

// Lock takes the deploy lock of key: an exclusive, non-blocking flock(2) on
// <db>.locks/<hash of key>.lock, held by an open file for the lock's life,
// with the holder recorded in the locks table.
//
// The kernel drops a flock when its holder dies, but nothing deletes the
// row. So when the flock is free and a row names a holder, that holder
// died mid-deploy: Lock succeeds and TakenOver returns it, so the caller
// warns and recovers its deploy — a stale lock is reported, never silently
// stolen (README, "How a deploy goes", rule 5), and never left to block deploys until a person
// edits the database. Deciding liveness from the row alone (PID, machine,
// a heartbeat) would guess wrong after PID reuse, a clock jump or a pause.
//
// When a live process holds it (this one included: a second Lock opens a
// second file description, and flocks on distinct descriptions conflict),
// Lock returns ELOCKED naming the holder. Unset owner fields are filled
// in: PID, Machine (host name), User and Since (s.Now()).
//
// A held flock cannot be lost: the kernel keeps it for as long as the
// process lives, paused (SIGSTOP) or not, and no one else can take it
// meanwhile. So this lock is not a drover.LosableLock and the journal
// needs no fence: a deployer paused for an hour wakes still holding its
// lock, and a second deploy waited (ELOCKED) instead of taking over.
func (s *Store) Lock(ctx context.Context, key string, owner drover.LockOwner) (drover.Lock, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	dir := s.path + ".locks"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, internal("create "+dir, err)
	}
	path := filepath.Join(dir, lockFileName(key))
	// os.OpenFile sets O_CLOEXEC: hooks and restart commands started while
	// the lock is held must not inherit it, or a daemon they leave running
	// would hold the deploy lock after drover dies.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, internal("open lock", err)
	}
	if err := flock.TryLock(f); err != nil {
		f.Close()
		if errors.Is(err, flock.ErrLocked) {
			holder, _ := s.LockHolder(ctx, key)
			return nil, drover.LockedError(key, holder)
		}
		return nil, internal("lock "+path, err)
	}
	s.fillOwner(&owner)
	var prev *drover.LockOwner
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if prev, err = holder(ctx, tx, key); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO locks (key, pid, machine, user, deploy_id, since_ns) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET pid = excluded.pid, machine = excluded.machine, user = excluded.user,
			deploy_id = excluded.deploy_id, since_ns = excluded.since_ns`,
			key, owner.PID, owner.Machine, owner.User, owner.DeployID, toNS(owner.Since))
		if err != nil {
			return internal("record lock holder", err)
		}
		return nil
	})
	if err != nil {
		flock.Unlock(f)
		f.Close()
		return nil, err
	}
	return &lock{s: s, key: key, f: f, owner: owner, takenOver: prev}, nil
}

// fillOwner sets the owner fields the caller left unset.
func (s *Store) fillOwner(o *drover.LockOwner) {
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if o.Machine == "" {
		o.Machine, _ = os.Hostname()
	}
	if o.User == "" {
		if u, err := user.Current(); err == nil {
			o.User = u.Username
		}
	}
	if o.Since.IsZero() {
		o.Since = s.now()
	}
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func holder(ctx context.Context, q querier, key string) (*drover.LockOwner, error) {
	var o drover.LockOwner
	var since int64
	err := q.QueryRowContext(ctx, `SELECT pid, machine, user, deploy_id, since_ns FROM locks WHERE key = ?`, key).
		Scan(&o.PID, &o.Machine, &o.User, &o.DeployID, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("read lock holder", err)
	}
	o.Since = fromNS(since)
	return &o, nil
}

// LockHolder implements drover.HistoryReader: the recorded holder of key's
// lock, alive or dead; nil after a clean release.
func (s *Store) LockHolder(ctx context.Context, key string) (*drover.LockOwner, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	return holder(ctx, s.db, key)
}

// lock is a held deploy lock: an open, flock'd file and its row.
type lock struct {
	s         *Store
	key       string
	owner     drover.LockOwner
	takenOver *drover.LockOwner

	mu sync.Mutex
	f  *os.File // nil once released
}

func (l *lock) Owner() drover.LockOwner { return l.owner }

func (l *lock) TakenOver() *drover.LockOwner {
	if l.takenOver == nil {
		return nil
	}
	o := *l.takenOver
	return &o
}

// Release deletes the holder's row, then unlocks and closes the file. The
// row goes first: a free flock with a row still there means "died holding
// it" to the next Lock. Safe to call more than once. It runs even when the
// caller's context is cancelled (Ctrl-C), with a bound of its own.
func (l *lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	ctx, cancel := context.WithTimeout(context.Background(), DefaultBusyTimeout+5*time.Second)
	defer cancel()
	_, err := l.s.db.ExecContext(ctx, `DELETE FROM locks WHERE key = ? AND pid = ? AND deploy_id = ?`, l.key, l.owner.PID, l.owner.DeployID)
	if err != nil {
		err = internal("release lock", err)
	}
	if uerr := flock.Unlock(f); err == nil && uerr != nil {
		err = internal("release lock", uerr)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = internal("release lock", cerr)
	}
	return err
}
