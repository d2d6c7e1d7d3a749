package drover

import (
	"errors"
	"fmt"
	"time"
)

// LockedError is the ELOCKED error every Store returns for key held by
// holder (nil, or a zero PID, when the holder has not recorded itself yet).
// One wording for all stores, so scripts and people reading "who holds it"
// see the same line whichever store a team runs.
func LockedError(key string, holder *LockOwner) error {
	msg := fmt.Sprintf("another deploy of %s holds the lock", key)
	if holder != nil && holder.PID != 0 {
		msg += ": " + describeHolder(holder)
	}
	return &Error{Code: ELOCKED, Message: msg, Hint: "wait for it to finish, or see `drover status`"}
}

func describeHolder(holder *LockOwner) string {
	s := fmt.Sprintf("pid %d user %s on machine %s since %s",
		holder.PID, holder.User, holder.Machine, holder.Since.UTC().Format(time.RFC3339))
	if holder.DeployID != "" {
		s += fmt.Sprintf(" (deploy %s)", holder.DeployID)
	}
	return s
}

// ErrLockLost is wrapped by every error of a write refused because this
// process no longer holds the deploy lock (see LosableLock).
var ErrLockLost = errors.New("deploy lock lost")

// LostLockError is the error of a process that lost the lock of key:
// holder is who holds it now, nil (or a zero PID) when nobody took it yet.
// ELOCKED: before any host was touched it ends the command like a lock
// held by another (exit 5); a deploy already under way reports it in a
// verdict that needs a person (exit 3).
func LostLockError(key string, holder *LockOwner) error {
	msg := "this process lost the deploy lock of " + key
	if holder != nil && holder.PID != 0 {
		msg += " to " + describeHolder(holder)
	} else {
		msg += " (its lease expired; nobody has taken it yet)"
	}
	return LockLost(&Error{Code: ELOCKED, Message: msg,
		Hint: "nothing more is done to any host by this process; the lock's holder, or the next `drover resume`, recovers the deploy from the journal"})
}

// LockLost marks e as caused by a lost deploy lock: errors.Is(err,
// ErrLockLost) holds, errors.As finds e, and the text is e's own (no
// "deploy lock lost" tacked on).
func LockLost(e *Error) error { return lockLostError{e} }

type lockLostError struct{ e *Error }

func (l lockLostError) Error() string        { return l.e.Error() }
func (l lockLostError) Unwrap() error        { return l.e }
func (l lockLostError) Is(target error) bool { return target == ErrLockLost }
