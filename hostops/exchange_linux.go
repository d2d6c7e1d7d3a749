package hostops

import "golang.org/x/sys/unix"

// exchange swaps the two paths in one step (renameat2 RENAME_EXCHANGE):
// adopting a live directory never leaves a moment with no current.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

const exchangeHint = "the filesystem must support renameat2 RENAME_EXCHANGE (ext4, xfs, btrfs, tmpfs)"
