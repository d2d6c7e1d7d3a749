package drover

import (
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
		msg += fmt.Sprintf(": pid %d user %s on machine %s since %s",
			holder.PID, holder.User, holder.Machine, holder.Since.UTC().Format(time.RFC3339))
		if holder.DeployID != "" {
			msg += fmt.Sprintf(" (deploy %s)", holder.DeployID)
		}
	}
	return &Error{Code: ELOCKED, Message: msg, Hint: "wait for it to finish, or see `drover status`"}
}
