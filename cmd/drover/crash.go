package main

import (
	"context"
	"os"
	"strconv"
	"sync"
	"syscall"

	"drover"
)

// crashEnv is the tests' crash point, deliberately not in the user docs:
// DROVER_CRASH_AFTER_JOURNAL_WRITES=N makes drover kill itself (SIGKILL:
// no deferred cleanup, no lock release, hooks orphaned — what `kill -9`
// or a power cut does to the controller) right after its Nth durable
// journal write. The crash-matrix test (e2e_crash_test.go) walks N over
// every write of a run to prove each boundary recoverable. Read once, at
// start.
const crashEnv = "DROVER_CRASH_AFTER_JOURNAL_WRITES"

var crashAfter = func() int {
	n, err := strconv.Atoi(os.Getenv(crashEnv))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}()

// countEnv names a file that receives the number of durable journal
// writes so far after each one: how the crash matrix learns how many
// boundaries an uncrashed run has. Also tests only.
const countEnv = "DROVER_JOURNAL_WRITES_FILE"

var countFile = os.Getenv(countEnv)

// withCrashPoint wraps st so that the crash point fires (and the count is
// written); with neither set, st is returned as is.
func withCrashPoint(st drover.Store) drover.Store {
	if crashAfter == 0 && countFile == "" {
		return st
	}
	return &crashStore{Store: st}
}

// crashStore counts the Store's durable journal writes: Begin, Append,
// AppendBatch (the runner's group commit) and Finish each return only once
// what they wrote is durable, so the count is of journal boundaries.
type crashStore struct {
	drover.Store
	mu sync.Mutex
	n  int
}

func (s *crashStore) wrote(err error) error {
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if countFile != "" {
		os.WriteFile(countFile, []byte(strconv.Itoa(s.n)), 0o644)
	}
	if s.n == crashAfter {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
	return nil
}

func (s *crashStore) Begin(ctx context.Context, d drover.DeployRecord) error {
	return s.wrote(s.Store.Begin(ctx, d))
}

func (s *crashStore) Append(ctx context.Context, id string, e drover.JournalEntry) error {
	return s.wrote(s.Store.Append(ctx, id, e))
}

func (s *crashStore) AppendBatch(ctx context.Context, id string, es []drover.JournalEntry) error {
	if b, ok := s.Store.(drover.BatchAppender); ok {
		return s.wrote(b.AppendBatch(ctx, id, es))
	}
	for _, e := range es {
		if err := s.Store.Append(ctx, id, e); err != nil {
			return err
		}
	}
	return s.wrote(nil)
}

func (s *crashStore) Finish(ctx context.Context, id string, r drover.FinishRecord) error {
	return s.wrote(s.Store.Finish(ctx, id, r))
}
