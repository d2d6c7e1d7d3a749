// Package sqlite is drover's default drover.Store: one SQLite database
// (state_dir/drover.db) through the pure-Go driver modernc.org/sqlite, so
// drover stays one static binary with no cgo.
//
// The model is store/file's, kept in tables instead of files. A deploy is a
// row in deploys written before it touches any host (Begin) with a row per
// targeted host and its before-snapshot in deploy_hosts; every step of every
// host is a row in steps, "start" before it runs and "done" after, with its
// outcome, reason, output tail and duration; Finish sets the finish time,
// outcome and duration. A deploy with no finish time never finished: the
// process died, and the next `drover deploy` or `drover resume` reads its
// steps to learn which hosts to put back. Beyond what Store asks, the
// database answers history questions across deploys (HistoryReader): which
// deploys touched a host, a host's steps over time, the failures of a day.
//
// Durability and concurrency. The database runs in WAL mode with
// synchronous=FULL: a step is on disk when Append returns, because a step
// lost in a crash is a host left depooled with nothing to tell recovery.
// WAL lets readers (`drover history`, `show`, `log`, a dashboard, other
// processes) read while a deploy writes, never blocking it and never seeing
// half a transaction. Writers take the write lock up front (BEGIN
// IMMEDIATE) and wait up to BusyTimeout for one another, across processes.
// Foreign keys are on, so a step cannot name a deploy that does not exist.
//
// Locks. One deploy at a time per key must hold across processes, and a
// holder that died must be told from a live one without guessing from
// timestamps or PIDs. So the lock is a flock(2) on a file next to the
// database (<db>.locks/<hash of key>), which the kernel drops when its
// holder dies, and the holder is recorded in the locks table. A row whose
// flock is free names a holder that died mid-deploy: Lock takes the lock
// and reports it (TakenOver), and the caller recovers its deploy.
//
// Schema changes are SQL files embedded in the binary (migrations/), each
// applied once, in order, in one transaction with the schema_version row
// that records it: a crash mid-migration leaves the old schema, not half of
// the new one. A database newer than the binary is refused, not guessed at.
//
// Opening touches nothing: the database is created and migrated on first
// use. A command that stops on bad input before using the store leaves the
// state directory exactly as it was (SQLite creating and removing its -wal
// and -shm files would otherwise change it).
//
// The state directory must be on a local file system: both flock(2) and
// SQLite's WAL rely on it.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"drover"
)

var (
	_ drover.Store         = (*Store)(nil)
	_ drover.HistoryReader = (*Store)(nil)
)

// FileName is the database's name in the state directory.
const FileName = "drover.db"

// DefaultBusyTimeout is how long a writer waits for another writer (in this
// process or another) before giving up.
const DefaultBusyTimeout = 10 * time.Second

// Store is a drover.Store and drover.HistoryReader in one SQLite file.
type Store struct {
	// Now returns the current time; it stamps records and entries that
	// leave their time unset. Tests replace it.
	Now func() time.Time

	path string
	db   *sql.DB

	initMu sync.Mutex
	ready  bool

	// inserts are AppendBatch's prepared statements by rows.
	stmtMu  sync.Mutex
	inserts map[int]*sql.Stmt
}

// Open returns the store in the database file at path, creating its
// directory (mode 0700: the history names hosts and users) when missing.
// The database itself is created and migrated on first use.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, drover.Errorf(drover.EINVALID, "store: no database path given")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, drover.Errorf(drover.EINVALID, "store: database path %q holds '?' or '#'", path).
			WithHint("choose a state_dir without '?' or '#'")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, internal("database path", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, internal("create state directory", err)
	}
	// busy_timeout comes first in effect (the driver applies it before the
	// others), so that switching to WAL while another process holds the
	// database waits instead of failing. _txlock=immediate takes the write
	// lock at BEGIN: a deferred transaction that reads, then writes, can
	// fail with SQLITE_BUSY at the write with no chance to wait.
	dsn := path + "?_busy_timeout=" + fmt.Sprint(DefaultBusyTimeout.Milliseconds()) +
		"&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, internal("open "+path, err)
	}
	return &Store{Now: time.Now, path: path, db: db}, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database. Locks still held keep their flock until
// released or until the process exits.
func (s *Store) Close() error {
	s.stmtMu.Lock()
	for _, st := range s.inserts {
		st.Close()
	}
	s.inserts = nil
	s.stmtMu.Unlock()
	if err := s.db.Close(); err != nil {
		return internal("close "+s.path, err)
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// init creates and migrates the database once; a failure is returned and
// tried again by the next call.
func (s *Store) init(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.ready {
		return nil
	}
	// Created here with 0600 rather than by SQLite with the umask's 0644:
	// SQLite gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return internal("create "+s.path, err)
	}
	f.Close()
	if err := migrate(ctx, s.db); err != nil {
		return err
	}
	s.ready = true
	return nil
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE) and commits when fn
// returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return internal("begin transaction", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return internal("commit", err)
	}
	return nil
}

// internal wraps an unexpected database failure.
func internal(what string, err error) error {
	var de *drover.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &drover.Error{Code: drover.EINTERNAL, Message: "store: " + what, Err: err}
}

// Times are stored as Unix nanoseconds; NULL or 0 is the zero time.
func toNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func nullNS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func durationNS(n int64) time.Duration { return time.Duration(n) }
