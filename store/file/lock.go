package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sync"

	"drover"
	"drover/internal/flock"
)

// Lock takes the deploy lock of key: an exclusive, non-blocking flock(2)
// on <dir>/<key>/lock, held by an open file for the lock's life.
//
// The file's content is the holder (drover.LockOwner as JSON), written
// when the lock is taken and cleared by Release. That is how a dead holder
// shows: the kernel drops a flock when its process dies, but nothing
// clears the content. So when the flock is free and the content names an
// owner, the previous holder died mid-deploy: Lock succeeds and TakenOver
// returns that owner, so the caller warns and recovers its journal — a
// stale lock is reported, never silently stolen (README, "How a deploy goes", rule 5), and
// never left to block deploys until a person deletes a file.
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kd, err := s.keyDir(key)
	if err != nil {
		return nil, err
	}
	if err := mkdirDurable(kd, s.dir); err != nil {
		return nil, internal("create "+kd, err)
	}
	path := filepath.Join(kd, "lock")
	// os.OpenFile sets O_CLOEXEC: hooks and restart commands started
	// while the lock is held must not inherit it, or a daemon they leave
	// running would hold the deploy lock after drover dies.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, internal("open lock", err)
	}
	if err := flock.TryLock(f); err != nil {
		holder, _ := readOwner(f)
		f.Close()
		if errors.Is(err, flock.ErrLocked) {
			return nil, drover.LockedError(key, holder)
		}
		return nil, internal("lock "+path, err)
	}
	// The flock is ours; whatever the file names is a holder that died.
	prev, err := readOwner(f)
	if err != nil {
		flock.Unlock(f)
		f.Close()
		return nil, internal("read "+path, err)
	}

	s.fillOwner(&owner)
	data, err := json.Marshal(owner)
	if err != nil {
		flock.Unlock(f)
		f.Close()
		return nil, internal("encode lock owner", err)
	}
	// Rewritten in place, not renamed into place: the flock belongs to
	// this inode, and a new file would be a new, unlocked lock.
	if err := writeOwner(f, data); err != nil {
		flock.Unlock(f)
		f.Close()
		return nil, internal("write "+path, err)
	}
	return &lock{f: f, owner: owner, takenOver: prev}, nil
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

// readOwner returns the holder recorded in the lock file: nil when it is
// empty (released cleanly), and a zero LockOwner when it holds something
// unreadable (its holder died while writing it).
func readOwner(f *os.File) (*drover.LockOwner, error) {
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<16))
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	var o drover.LockOwner
	if err := json.Unmarshal(data, &o); err != nil {
		return &drover.LockOwner{}, nil
	}
	return &o, nil
}

// writeOwner replaces the lock file's content and fsyncs it, so that after
// a crash of the whole machine the file still says who held the lock.
func writeOwner(f *os.File, data []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Sync()
}

// lock is a held deploy lock: an open, flock'd lock file.
type lock struct {
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

// Release clears the owner from the lock file, then unlocks and closes
// it. Clearing comes first: an unlocked file that still names an owner
// means "died holding it" to the next Lock. Safe to call more than once.
func (l *lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	err := writeOwner(f, nil)
	if uerr := flock.Unlock(f); err == nil {
		err = uerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return internal("release lock", err)
	}
	return nil
}
