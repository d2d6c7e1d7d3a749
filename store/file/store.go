// Package file is the default drover.Store: plain files under a state
// directory on the machine running drover.
//
// The model. A deploy is a record written once before it touches any host
// (Begin) and rewritten once when it ends (Finish); in between, every step
// of every host is appended to the deploy's journal, "start" before the
// step runs and "done" after. A record without a finish time is a deploy
// that never finished: the process died, and the next `drover deploy` or
// `drover resume` reads the journal to learn which hosts were depooled or
// switched and puts them back (README, "How a deploy goes", rule 6).
//
// Layout, one directory per lock key (service or service/env):
//
//	<dir>/<escaped key>/lock                       flock'd; content = holder (JSON)
//	<dir>/<escaped key>/deploys/<id>.json          the DeployRecord
//	<dir>/<escaped key>/deploys/<id>.journal       JSON lines, one JournalEntry each
//
// Durability. A journal line is fsynced before Append returns, and records
// are replaced by write-to-temp, fsync, rename, fsync of the directory: a
// journal entry lost in a crash is a host left depooled or on the wrong
// release with nothing to tell recovery about it. A crash can leave at most
// a partial last journal line; it was never acknowledged, so readers skip
// it and the next Append cuts it off.
//
// Concurrency. Writers of one deploy are the process holding its key's
// lock; a Store also serialises its own writers. Readers (`drover status`,
// the dashboard) need no lock: they see whole records (rename is atomic)
// and a prefix of each journal.
//
// The state directory must be on a local file system: the lock is a
// flock(2), released by the kernel when its holder dies, which is how a
// dead holder is told from a live one without guessing from timestamps.
package file

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"drover"
)

var _ drover.Store = (*Store)(nil)

// Store is a drover.Store keeping its state in files under one directory.
// It holds no open files between calls; locks hold theirs until Release.
type Store struct {
	// Now returns the current time; it stamps records and entries that
	// leave their time unset. Tests replace it.
	Now func() time.Time

	dir string

	// writeMu serialises Begin, Append and Finish in this process, so that
	// "append after finish" is decided against a record nobody is
	// rewriting at that moment.
	writeMu sync.Mutex

	// idsMu guards ids, which remembers the deploys directory of each
	// deploy ID seen: Journal and Append name only the ID.
	idsMu sync.Mutex
	ids   map[string]string
}

// Open returns the Store in dir, creating dir (mode 0700: the journal names
// hosts and users) when it does not exist.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, drover.Errorf(drover.EINVALID, "store: no state directory given")
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, internal("create state directory", err)
	}
	return &Store{Now: time.Now, dir: dir, ids: make(map[string]string)}, nil
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// Close releases nothing: a Store holds no files between calls, and locks
// are released by their own Release.
func (s *Store) Close() error { return nil }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// keyDir returns the directory of key, or EINVALID for a key that is not
// a service or service/env name.
func (s *Store) keyDir(key string) (string, error) {
	name, err := escapeKey(key)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.dir, name), nil
}

// internal wraps an unexpected file system failure.
func internal(what string, err error) error {
	return &drover.Error{Code: drover.EINTERNAL, Message: "store: " + what, Err: err}
}

// isNotExist reports whether err says a file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
