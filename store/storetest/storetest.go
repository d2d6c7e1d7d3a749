// Package storetest is the contract every drover.Store implementation
// passes. store/file runs it today; store/sqlite and store/etcd run the
// same function, so the runner can rely on the interface's documentation
// rather than on one implementation's habits (the shape of litestream's
// replica_client_test.go).
//
// What only one implementation can show — how a dead holder's lock is
// detected, how a torn journal write looks on disk — stays in that
// implementation's own tests.
package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"drover"
)

// base is a fixed start time for records.
var base = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// RunStoreContract runs the contract against fresh stores made by open,
// one per subtest. open registers its own cleanup (Close, temp dirs).
func RunStoreContract(t *testing.T, open func(t *testing.T) drover.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, drover.Store)
	}{
		{"LockConflict", testLockConflict},
		{"LockKeysIndependent", testLockKeysIndependent},
		{"InvalidKeys", testInvalidKeys},
		{"DeployRoundTrip", testDeployRoundTrip},
		{"UnknownDeploy", testUnknownDeploy},
		{"JournalRoundTrip", testJournalRoundTrip},
		{"AppendAfterFinish", testAppendAfterFinish},
		{"Unfinished", testUnfinished},
		{"History", testHistory},
		{"ConcurrentReaders", testConcurrentReaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// Record returns a deploy record of key started at base+offset, with two
// hosts and their snapshots.
func Record(id, key string, offset time.Duration) drover.DeployRecord {
	service, env, _ := strings.Cut(key, "/")
	return drover.DeployRecord{
		ID: id, Key: key, Kind: drover.KindDeploy, Service: service, Env: env,
		Release: "v2-0123456789ab", Version: "v2", Revision: "abc123",
		User: "alice", Machine: "ops1", Message: "ship it",
		Started: base.Add(offset),
		// Every store keeps a deploy's overrides: history must say a
		// check was skipped for as long as it remembers the deploy.
		Overrides: []drover.Override{
			{Kind: drover.OverrideCheck, Name: "version", Reason: "INC-7: check is wrong"},
			{Kind: drover.OverrideGate, Name: "canary:wait", Reason: "INC-7: check is wrong"},
		},
		// The plan's batches: a view of the finished deploy draws them.
		Groups: []drover.PlanGroup{{Name: "canary", Batch: 1}, {Name: "default", Batch: 3, FailureLimit: 1}},
		Hosts: []drover.DeployHost{
			{Name: "h01", Group: "canary", Before: drover.Snapshot{Current: "v1-aaaaaaaaaaaa", Previous: "v0-bbbbbbbbbbbb", Release: "v1-aaaaaaaaaaaa", Version: "v1", Live: "green"}},
			{Name: "h02", Group: "default", Before: drover.Snapshot{}, Skipped: true},
		},
	}
}

func testLockConflict(t *testing.T, s drover.Store) {
	ctx := context.Background()
	owner := drover.LockOwner{PID: 123, Machine: "m", User: "bob", DeployID: "d-1", Since: base}
	l, err := s.Lock(ctx, "hello", owner)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if got := l.Owner(); !sameOwner(got, owner) {
		t.Errorf("Owner() = %+v, want %+v", got, owner)
	}
	if l.TakenOver() != nil {
		t.Errorf("TakenOver() = %+v on a fresh lock", l.TakenOver())
	}

	_, err = s.Lock(ctx, "hello", drover.LockOwner{PID: 456, Machine: "m2", User: "carol", DeployID: "d-2", Since: base.Add(time.Minute)})
	if code := drover.ErrorCode(err); code != drover.ELOCKED {
		t.Fatalf("second Lock: %v (code %q), want ELOCKED", err, code)
	}
	msg := err.Error()
	for _, want := range []string{"another deploy of hello holds the lock", "pid 123", "user bob", "machine m", "2026-11-22T10:00:00Z", "d-1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ELOCKED message %q does not contain %q", msg, want)
		}
	}
	if drover.ErrorHint(err) == "" {
		t.Error("ELOCKED error has no hint")
	}
	if drover.ExitCode(err) != drover.ExitLocked {
		t.Errorf("exit code %d, want %d", drover.ExitCode(err), drover.ExitLocked)
	}

	if err := l.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	l2, err := s.Lock(ctx, "hello", drover.LockOwner{PID: 456, Machine: "m2", User: "carol", DeployID: "d-2", Since: base})
	if err != nil {
		t.Fatalf("Lock after Release: %v", err)
	}
	if l2.TakenOver() != nil {
		t.Errorf("TakenOver() = %+v after a clean release", l2.TakenOver())
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}
}

func testLockKeysIndependent(t *testing.T, s drover.Store) {
	ctx := context.Background()
	var locks []drover.Lock
	for _, key := range []string{"hello", "hello/staging", "other"} {
		l, err := s.Lock(ctx, key, drover.LockOwner{PID: 1, Machine: "m", User: "u", DeployID: "d-" + strings.ReplaceAll(key, "/", "-"), Since: base})
		if err != nil {
			t.Fatalf("Lock(%q) while other keys are held: %v", key, err)
		}
		locks = append(locks, l)
	}
	for _, l := range locks {
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

func testInvalidKeys(t *testing.T, s drover.Store) {
	ctx := context.Background()
	for _, key := range []string{"", "..", "../x", "hello/../../x", "/etc", "hello/", "a//b", "./a"} {
		if l, err := s.Lock(ctx, key, drover.LockOwner{PID: 1}); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Lock(%q): %v, want EINVALID", key, err)
			if l != nil {
				l.Release()
			}
		}
		if err := s.Begin(ctx, Record("d-bad", key, 0)); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Begin with key %q: %v, want EINVALID", key, err)
		}
		if _, err := s.History(ctx, key, 0); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("History(%q): %v, want EINVALID", key, err)
		}
		if _, err := s.Unfinished(ctx, key); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Unfinished(%q): %v, want EINVALID", key, err)
		}
	}
}

func testDeployRoundTrip(t *testing.T, s drover.Store) {
	ctx := context.Background()
	d := Record("d-1", "hello/staging", 0)
	if err := s.Begin(ctx, d); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	got, err := s.Deploy(ctx, "d-1")
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if !sameRecord(got, d) {
		t.Errorf("Deploy:\n got %+v\nwant %+v", got, d)
	}
	// Begin of an existing ID, under the same key or another.
	if err := s.Begin(ctx, Record("d-1", "hello/staging", time.Hour)); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("second Begin: %v, want EINVALID", err)
	}
	if err := s.Begin(ctx, Record("d-1", "other", time.Hour)); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("Begin of an existing id under another key: %v, want EINVALID", err)
	}
	if got, _ := s.Deploy(ctx, "d-1"); !sameRecord(got, d) {
		t.Errorf("a refused Begin changed the record: %+v", got)
	}

	fin := drover.FinishRecord{Finished: base.Add(5 * time.Minute), Outcome: drover.OutcomePartial, ExitCode: drover.ExitPartial, Summary: "h02 failed and was restored"}
	if err := s.Finish(ctx, "d-1", fin); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	got, err = s.Deploy(ctx, "d-1")
	if err != nil {
		t.Fatal(err)
	}
	want := d
	want.Finished, want.Outcome, want.ExitCode, want.Summary = fin.Finished, fin.Outcome, fin.ExitCode, fin.Summary
	if !sameRecord(got, want) {
		t.Errorf("Deploy after Finish:\n got %+v\nwant %+v", got, want)
	}
	if err := s.Finish(ctx, "d-1", fin); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("second Finish: %v, want EINVALID", err)
	}
}

func testUnknownDeploy(t *testing.T, s drover.Store) {
	ctx := context.Background()
	if err := s.Begin(ctx, Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, "d-nope"); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("Deploy: %v, want ENOTFOUND", err)
	}
	if _, err := s.Journal(ctx, "d-nope"); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("Journal: %v, want ENOTFOUND", err)
	}
	if err := s.Append(ctx, "d-nope", drover.JournalEntry{At: base, Host: "h01", Step: "depool", Phase: drover.PhaseStart}); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("Append: %v, want ENOTFOUND", err)
	}
	if err := s.Finish(ctx, "d-nope", drover.FinishRecord{Finished: base, Outcome: drover.OutcomeSucceeded}); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("Finish: %v, want ENOTFOUND", err)
	}
}

// Entries returns n journal entries, start and done for alternate steps.
func Entries(n int) []drover.JournalEntry {
	out := make([]drover.JournalEntry, n)
	for i := range out {
		e := drover.JournalEntry{At: base.Add(time.Duration(i) * time.Second), Host: fmt.Sprintf("h%02d", i/4), Step: fmt.Sprintf("step-%d", i/2), Phase: drover.PhaseStart, Slot: "v2-0123456789ab"}
		if i%2 == 1 {
			e.Phase, e.Outcome = drover.PhaseDone, "ok"
			e.Elapsed = time.Duration(i) * 150 * time.Millisecond
			if i%3 == 0 {
				e.Outcome, e.Reason = "failed", "tcp 127.0.0.1:18001: connection refused"
				e.Output = "restart: starting hello\nlisten tcp 127.0.0.1:18001: bind: address already in use\n"
			}
		}
		// The way back is marked, and an analysis evaluation keeps its
		// numbers: views of the journal read both.
		if i%5 == 4 {
			e.Restoring = true
		}
		if i == 5 {
			max := 0.05
			e.Host, e.Step, e.Outcome = "", drover.StepAnalysis, "failed"
			e.Analysis = &drover.AnalysisEval{At: e.At, Name: "error-ratio", Group: "canary", Kind: drover.AnalysisThreshold, Status: drover.AnalysisFail,
				Message: "h01=0.2 above max 0.05", Halted: true, Canary: []string{"h01"}, Baseline: []string{"h02", "h03"}, Since: base, Max: &max}
		}
		out[i] = e
	}
	return out
}

func testJournalRoundTrip(t *testing.T, s drover.Store) {
	ctx := context.Background()
	if err := s.Begin(ctx, Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Journal(ctx, "d-1")
	if err != nil || len(got) != 0 {
		t.Fatalf("Journal of a new deploy: %v, %v; want no entries", got, err)
	}
	want := Entries(7)
	for _, e := range want {
		if err := s.Append(ctx, "d-1", e); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	got, err = s.Journal(ctx, "d-1")
	if err != nil {
		t.Fatalf("Journal: %v", err)
	}
	if !sameEntries(got, want) {
		t.Errorf("Journal:\n got %+v\nwant %+v", got, want)
	}
}

func testAppendAfterFinish(t *testing.T, s drover.Store) {
	ctx := context.Background()
	if err := s.Begin(ctx, Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	want := Entries(2)
	for _, e := range want {
		if err := s.Append(ctx, "d-1", e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Finished: base.Add(time.Minute), Outcome: drover.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "d-1", Entries(3)[2]); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("Append after Finish: %v, want EINVALID", err)
	}
	got, err := s.Journal(ctx, "d-1")
	if err != nil || !sameEntries(got, want) {
		t.Errorf("Journal after Finish: %+v, %v; want %+v", got, err, want)
	}
}

func testUnfinished(t *testing.T, s drover.Store) {
	ctx := context.Background()
	if got, err := s.Unfinished(ctx, "hello"); err != nil || len(got) != 0 {
		t.Fatalf("Unfinished of an empty store: %v, %v", got, err)
	}
	for _, d := range []drover.DeployRecord{Record("d-2", "hello", time.Hour), Record("d-1", "hello", 0), Record("d-3", "hello/staging", 0)} {
		if err := s.Begin(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want ...string) {
		t.Helper()
		got, err := s.Unfinished(ctx, "hello")
		if err != nil {
			t.Fatalf("Unfinished: %v", err)
		}
		if ids := ids(got); !slices.Equal(ids, want) {
			t.Errorf("Unfinished = %v, want %v", ids, want)
		}
	}
	check("d-1", "d-2") // oldest first
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Finished: base.Add(time.Minute), Outcome: drover.OutcomeRolledBack, ExitCode: 1}); err != nil {
		t.Fatal(err)
	}
	check("d-2")
	// A zero finish time still finishes the deploy.
	if err := s.Finish(ctx, "d-2", drover.FinishRecord{Outcome: drover.OutcomeInterrupted, ExitCode: 3}); err != nil {
		t.Fatal(err)
	}
	check()
	if got, err := s.Unfinished(ctx, "hello/staging"); err != nil || !reflect.DeepEqual(ids(got), []string{"d-3"}) {
		t.Errorf("Unfinished(hello/staging) = %v, %v; want [d-3]", ids(got), err)
	}
}

func testHistory(t *testing.T, s drover.Store) {
	ctx := context.Background()
	if got, err := s.History(ctx, "hello", 0); err != nil || len(got) != 0 {
		t.Fatalf("History of an empty store: %v, %v", got, err)
	}
	for _, n := range []int{2, 0, 3, 1} { // d-N started at base+N hours
		if err := s.Begin(ctx, Record(fmt.Sprintf("d-%d", n), "hello", time.Duration(n)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Begin(ctx, Record("d-x", "hello/staging", 10*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Finished: base.Add(90 * time.Minute), Outcome: drover.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		limit int
		want  []string
	}{
		{0, []string{"d-3", "d-2", "d-1", "d-0"}},
		{-1, []string{"d-3", "d-2", "d-1", "d-0"}},
		{2, []string{"d-3", "d-2"}},
		{10, []string{"d-3", "d-2", "d-1", "d-0"}},
	} {
		got, err := s.History(ctx, "hello", tt.limit)
		if err != nil {
			t.Fatalf("History(limit %d): %v", tt.limit, err)
		}
		if ids := ids(got); !reflect.DeepEqual(ids, tt.want) {
			t.Errorf("History(limit %d) = %v, want %v", tt.limit, ids, tt.want)
		}
	}
	got, _ := s.History(ctx, "hello", 0)
	if len(got) == 4 && got[2].Outcome != drover.OutcomeSucceeded {
		t.Errorf("History does not show d-1's outcome: %+v", got[2])
	}
}

// testConcurrentReaders has readers poll while one writer appends: every
// read sees a prefix of what was appended, and never an error. Run with
// -race.
func testConcurrentReaders(t *testing.T, s drover.Store) {
	ctx := context.Background()
	if err := s.Begin(ctx, Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	want := Entries(60)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := s.Journal(ctx, "d-1")
				if err != nil {
					t.Errorf("Journal while appending: %v", err)
					return
				}
				if len(got) < seen {
					t.Errorf("journal shrank from %d to %d entries", seen, len(got))
					return
				}
				if !sameEntries(got, want[:len(got)]) {
					t.Errorf("journal read is not a prefix of what was appended: %+v", got)
					return
				}
				seen = len(got)
				if _, err := s.Deploy(ctx, "d-1"); err != nil {
					t.Errorf("Deploy while appending: %v", err)
					return
				}
				if h, err := s.History(ctx, "hello", 0); err != nil || len(h) != 1 {
					t.Errorf("History while appending: %v, %v", ids(h), err)
					return
				}
			}
		}()
	}
	for _, e := range want {
		if err := s.Append(ctx, "d-1", e); err != nil {
			t.Errorf("Append: %v", err)
			break
		}
	}
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Finished: base.Add(time.Hour), Outcome: drover.OutcomeSucceeded}); err != nil {
		t.Errorf("Finish: %v", err)
	}
	close(done)
	wg.Wait()
	got, err := s.Journal(ctx, "d-1")
	if err != nil || !sameEntries(got, want) {
		t.Errorf("final journal: %d entries, %v; want %d", len(got), err, len(want))
	}
}

func ids(ds []drover.DeployRecord) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// sameOwner compares owners by instant, not by time.Time representation:
// a store may hand back another location or drop the monotonic reading.
func sameOwner(a, b drover.LockOwner) bool {
	eq := a.Since.Equal(b.Since)
	a.Since, b.Since = time.Time{}, time.Time{}
	return eq && a == b
}

func sameRecord(a, b drover.DeployRecord) bool {
	if !a.Started.Equal(b.Started) || !a.Finished.Equal(b.Finished) {
		return false
	}
	a.Started, b.Started, a.Finished, b.Finished = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func sameEntries(a, b []drover.JournalEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.At.Equal(y.At) {
			return false
		}
		x.At, y.At = time.Time{}, time.Time{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
