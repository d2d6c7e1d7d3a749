//go:build unix

// Package flock takes exclusive, non-blocking flock(2) locks on open files:
// the lock both stores use for "one deploy at a time". flock is dropped by
// the kernel when its holder dies, which is how a dead holder is told from a
// live one without trusting pids or timestamps.
package flock

import (
	"errors"
	"os"
	"syscall"
)

// ErrLocked is returned by TryLock when another open file holds the lock.
var ErrLocked = errors.New("locked")

// TryLock takes an exclusive flock on f without waiting.
func TryLock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrLocked
		default:
			return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
	}
}

// Unlock drops the flock on f.
func Unlock(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return nil
}
