//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

// errLocked is returned by tryLock when another open file holds the lock.
var errLocked = errors.New("locked")

// errNoFlock: the lock relies on flock(2) being dropped by the kernel when
// its holder dies; without it a dead holder cannot be told from a live one.
var errNoFlock = errors.New("store/sqlite locks need flock(2), available on unix systems only")

func tryLock(f *os.File) error { return errNoFlock }

func unlock(f *os.File) error { return nil }
