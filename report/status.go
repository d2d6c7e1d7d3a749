package report

import (
	"context"
	"errors"
	"os"
	"syscall"

	"drover"
)

// Deploy statuses beyond the recorded outcomes, for deploys not finished.
const (
	StatusRunning     = "running"
	StatusInterrupted = "interrupted"
	StatusUnknown     = "running or interrupted"
)

// ErrNoLockHolder: the store cannot say who holds a lock.
var ErrNoLockHolder = errors.New("this store does not record lock holders")

// LockHolder asks st who holds key's lock, or returns ErrNoLockHolder when
// st is no drover.HistoryReader.
func LockHolder(ctx context.Context, st drover.Store, key string) (*drover.LockOwner, error) {
	hr, ok := st.(drover.HistoryReader)
	if !ok {
		return nil, ErrNoLockHolder
	}
	return hr.LockHolder(ctx, key)
}

// DeployStatus is a record's outcome, or for one that never finished,
// whether it is still running: only if the lock's recorded holder is this
// deploy and that process is alive on this machine. Otherwise its process
// died (kill -9, a crash, a reboot) and the next deploy or resume recovers
// it. A holder on another machine cannot be checked from here.
func DeployStatus(d drover.DeployRecord, holder *drover.LockOwner, holderErr error) string {
	if !d.Finished.IsZero() {
		return d.Outcome
	}
	if holderErr != nil {
		return StatusUnknown
	}
	if holder == nil || holder.DeployID != d.ID {
		return StatusInterrupted
	}
	return HolderStatus(*holder)
}

// HolderStatus says whether the lock holder h is alive: StatusRunning or
// StatusInterrupted for a holder on this machine, StatusUnknown for one on
// another, whose process table drover cannot read.
func HolderStatus(h drover.LockOwner) string {
	if host, _ := os.Hostname(); h.Machine != host {
		return StatusUnknown
	}
	if ProcessAlive(h.PID) {
		return StatusRunning
	}
	return StatusInterrupted
}

// ProcessAlive reports whether pid is a live process on this machine.
// EPERM means it exists under another user.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
