package hostops

import "golang.org/x/sys/unix"

// exchange swaps the two paths in one step (renamex_np RENAME_SWAP), as
// renameat2 RENAME_EXCHANGE does on Linux.
func exchange(a, b string) error {
	return unix.RenamexNp(a, b, unix.RENAME_SWAP)
}

const exchangeHint = "the filesystem must support renamex_np RENAME_SWAP (APFS)"
