package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"drover"
	"drover/store/sqlite"
	"drover/store/storetest"
)

func open(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSqliteContract(t *testing.T) {
	storetest.RunStoreContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestSqliteContractBatch(t *testing.T) {
	storetest.RunBatchAppenderContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestSqliteHistoryReaderContract(t *testing.T) {
	storetest.RunHistoryReaderContract(t, func(t *testing.T) drover.Store { return open(t) })
}

// Opening creates the directory but not the database: a command that
// stops on bad input leaves the state directory as it was.
func TestSqliteOpenTouchesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := sqlite.Open(filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Open created %v", entries)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v, %v; want mode 0700", st, err)
	}
	if _, err := s.History(context.Background(), "hello", 0); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(s.Path())
	if err != nil {
		t.Fatalf("first use did not create the database: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("database mode %v, want 0600 (the history names hosts and users)", perm)
	}
	var mode string
	if err := rawDB(t, s.Path()).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q (%v), want wal: readers must not block a deploy's writes", mode, err)
	}
	s.Close()
}

func TestSqliteOpenBadPath(t *testing.T) {
	for _, p := range []string{"", "/tmp/a?mode=ro"} {
		if _, err := sqlite.Open(p); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Open(%q): %v, want EINVALID", p, err)
		}
	}
}

// History, journals and unfinished deploys survive closing and reopening
// the database: it is the record recovery reads after a crash.
func TestSqliteSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	want := storetest.Entries(5)
	for _, id := range []string{"d-1", "d-2"} {
		if err := s.Begin(ctx, storetest.Record(id, "hello", 0)); err != nil {
			t.Fatal(err)
		}
		for _, e := range want {
			if err := s.Append(ctx, id, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Finished: time.Now(), Outcome: drover.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h, err := s.History(ctx, "hello", 0)
	if err != nil || len(h) != 2 {
		t.Fatalf("History after reopen: %+v, %v", h, err)
	}
	un, err := s.Unfinished(ctx, "hello")
	if err != nil || len(un) != 1 || un[0].ID != "d-2" || len(un[0].Hosts) != 2 {
		t.Fatalf("Unfinished after reopen: %+v, %v", un, err)
	}
	j, err := s.Journal(ctx, "d-2")
	if err != nil || len(j) != len(want) || j[3].Output != want[3].Output || j[3].Elapsed != want[3].Elapsed {
		t.Fatalf("Journal after reopen: %+v, %v", j, err)
	}
	// Still writable where it left off.
	if err := s.Append(ctx, "d-2", want[0]); err != nil {
		t.Fatal(err)
	}
	var n int
	db := rawDB(t, path)
	// One row per migration file (0001_init, 0002_approvals,
	// 0003_foreign_before, 0004_before_live, 0005_overrides, 0006_halted,
	// 0007_views): more would mean reopening migrated again.
	if err := db.QueryRow(`SELECT count(*) FROM schema_version`).Scan(&n); err != nil || n != 7 {
		t.Errorf("schema_version has %d rows (%v), want 7: reopening must not migrate again", n, err)
	}
}

// TestSqliteMigratesHalted: deploys recorded rolled_back before the halted
// outcome existed, whose journal has no switch step, read back halted with
// the summary's verb corrected (migration 0006); one that switched a host
// stays rolled back.
func TestSqliteMigratesHalted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for id, steps := range map[string][]string{"d-staged": {"stage"}, "d-switched": {"stage", "depool", "switch", "restore"}} {
		if err := s.Begin(ctx, storetest.Record(id, "hello", 0)); err != nil {
			t.Fatal(err)
		}
		for _, st := range steps {
			if err := s.Append(ctx, id, drover.JournalEntry{At: at, Host: "h01", Step: st, Phase: drover.PhaseStart}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Finish(ctx, id, drover.FinishRecord{Finished: at, Outcome: drover.OutcomeRolledBack, ExitCode: 1,
			Summary: "deploy halted and rolled back in 1s: 2 failed (h01, h02); halted: group web: 2 failed > failure limit 1"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// As a database written before 0006: the migrations from 0006 on run
	// on open (0007's columns go too, for it to add them again).
	for _, q := range []string{`DELETE FROM schema_version WHERE version >= 6`,
		`ALTER TABLE deploys DROP COLUMN groups`, `ALTER TABLE steps DROP COLUMN restoring`, `ALTER TABLE steps DROP COLUMN analysis`} {
		if _, err := rawDB(t, path).Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Deploy(ctx, "d-staged")
	if err != nil || got.Outcome != drover.OutcomeHalted || got.ExitCode != 1 ||
		got.Summary != "deploy halted before any host switched in 1s: 2 failed (h01, h02); halted: group web: 2 failed > failure limit 1" {
		t.Errorf("staged-only deploy after migration: %q %q (%v)", got.Outcome, got.Summary, err)
	}
	got, err = s.Deploy(ctx, "d-switched")
	if err != nil || got.Outcome != drover.OutcomeRolledBack || !strings.HasPrefix(got.Summary, "deploy halted and rolled back") {
		t.Errorf("deploy that switched a host after migration: %q %q (%v)", got.Outcome, got.Summary, err)
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A database written by a newer drover is refused rather than misread.
func TestSqliteNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s, _ := sqlite.Open(path)
	if _, err := s.History(ctx, "hello", 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := rawDB(t, path).Exec(`INSERT INTO schema_version (version, name, applied_ns) VALUES (99, '0099_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s, _ = sqlite.Open(path)
	defer s.Close()
	_, err := s.History(ctx, "hello", 0)
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(drover.ErrorHint(err), "upgrade drover") {
		t.Fatalf("History on a newer schema: %v (hint %q)", err, drover.ErrorHint(err))
	}
}

func TestSqliteOutputTail(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.Begin(ctx, storetest.Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("nöise\n", 2000) + "FATAL: the real reason\n"
	if err := s.Append(ctx, "d-1", drover.JournalEntry{Host: "h01", Step: "restart", Phase: "done", Outcome: "failed", Output: long}); err != nil {
		t.Fatal(err)
	}
	j, err := s.Journal(ctx, "d-1")
	if err != nil || len(j) != 1 {
		t.Fatalf("Journal: %+v, %v", j, err)
	}
	if out := j[0].Output; len(out) > drover.MaxOutputTail || len(out) < drover.MaxOutputTail-3 || !strings.HasSuffix(out, "FATAL: the real reason\n") || !utf8.ValidString(out) {
		t.Errorf("output tail: %d bytes, starts %q", len(out), out[:10])
	}
}

// Two handles on one file, as two processes would have: readers on one
// see a growing prefix of what the other writes, and never an error
// ("database is locked") while it writes.
func TestSqliteReadersOnSeparateHandle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	w, _ := sqlite.Open(path)
	defer w.Close()
	r, _ := sqlite.Open(path)
	defer r.Close()
	if err := w.Begin(ctx, storetest.Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	want := storetest.Entries(200)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
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
				j, err := r.Journal(ctx, "d-1")
				if err != nil {
					t.Errorf("Journal on the reading handle: %v", err)
					return
				}
				if len(j) < seen {
					t.Errorf("journal shrank from %d to %d", seen, len(j))
					return
				}
				seen = len(j)
				if _, err := r.Steps(ctx, drover.StepQuery{Key: "hello", Failed: true}); err != nil {
					t.Errorf("Steps on the reading handle: %v", err)
					return
				}
				if _, err := r.Deploys(ctx, drover.DeployQuery{Key: "hello", Host: "h01"}); err != nil {
					t.Errorf("Deploys on the reading handle: %v", err)
					return
				}
			}
		}()
	}
	for _, e := range want {
		if err := w.Append(ctx, "d-1", e); err != nil {
			t.Errorf("Append: %v", err)
			break
		}
	}
	close(done)
	wg.Wait()
	if j, err := r.Journal(ctx, "d-1"); err != nil || len(j) != len(want) {
		t.Errorf("final journal: %d entries, %v", len(j), err)
	}
}

// Two Stores on one file in one process conflict like two processes:
// flock locks belong to open file descriptions.
func TestSqliteLockSeparateHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s1, _ := sqlite.Open(path)
	defer s1.Close()
	s2, _ := sqlite.Open(path)
	defer s2.Close()
	l, err := s1.Lock(ctx, "hello", drover.LockOwner{PID: 7, User: "bob", Machine: "m", DeployID: "d-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lock(ctx, "hello", drover.LockOwner{}); drover.ErrorCode(err) != drover.ELOCKED || !strings.Contains(err.Error(), "pid 7") {
		t.Fatalf("Lock through a second Store: %v, want ELOCKED naming pid 7", err)
	}
	l.Release()
	l2, err := s2.Lock(ctx, "hello", drover.LockOwner{})
	if err != nil || l2.TakenOver() != nil {
		t.Fatalf("Lock after Release: %v (taken over %+v)", err, l2.TakenOver())
	}
	if o := l2.Owner(); o.PID != os.Getpid() || o.Machine == "" || o.Since.IsZero() {
		t.Errorf("owner defaults not filled: %+v", o)
	}
	l2.Release()
}

const helperEnv = "DROVER_STORE_SQLITE_LOCK_HELPER"

// TestSqliteLockHelperProcess is not a test: TestSqliteLockTakeoverAfterDeath
// runs the test binary again with helperEnv set, and this takes the lock
// and begins a deploy in that child, then waits to be killed.
func TestSqliteLockHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestSqliteLockTakeoverAfterDeath")
	}
	ctx := context.Background()
	s, err := sqlite.Open(path)
	if err == nil {
		_, err = s.Lock(ctx, "hello", drover.LockOwner{PID: os.Getpid(), User: "child", Machine: "m", DeployID: "d-child"})
	}
	if err == nil {
		err = s.Begin(ctx, storetest.Record("d-child", "hello", 0))
	}
	if err == nil {
		err = s.Append(ctx, "d-child", drover.JournalEntry{Host: "h01", Step: "depool", Phase: "start"})
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(1) // not killed: the parent fails on its own
}

// The lock holds across processes; after SIGKILL (no Release, no Close)
// the next Lock takes it and reports the dead holder, and the dead
// process's journal is intact for recovery.
func TestSqliteLockTakeoverAfterDeath(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSqliteLockHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		if l != "locked" {
			t.Fatalf("child: %q", l)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not take the lock")
	}
	child := cmd.Process.Pid

	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Lock(ctx, "hello", drover.LockOwner{})
	if drover.ErrorCode(err) != drover.ELOCKED || !strings.Contains(err.Error(), fmt.Sprintf("pid %d user child", child)) {
		t.Fatalf("Lock while the child holds it: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	if h, err := s.LockHolder(ctx, "hello"); err != nil || h == nil || h.PID != child {
		t.Errorf("LockHolder after the holder died: %+v, %v; want the dead child", h, err)
	}
	l, err := s.Lock(ctx, "hello", drover.LockOwner{DeployID: "d-parent"})
	if err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	prev := l.TakenOver()
	if prev == nil || prev.PID != child || prev.DeployID != "d-child" || prev.User != "child" {
		t.Fatalf("TakenOver() = %+v, want the dead child (pid %d)", prev, child)
	}
	un, err := s.Unfinished(ctx, "hello")
	if err != nil || len(un) != 1 || un[0].ID != "d-child" {
		t.Fatalf("Unfinished after the child died: %+v, %v", un, err)
	}
	if j, err := s.Journal(ctx, "d-child"); err != nil || len(j) != 1 || j[0].Step != "depool" {
		t.Fatalf("the dead child's journal: %+v, %v", j, err)
	}
	l.Release()
	l, err = s.Lock(ctx, "hello", drover.LockOwner{})
	if err != nil || l.TakenOver() != nil {
		t.Fatalf("Lock after a clean release: %v, taken over %+v", err, l.TakenOver())
	}
	l.Release()
}

func TestSqliteNow(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Now = func() time.Time { return now }
	d := storetest.Record("d-1", "hello", 0)
	d.Started = time.Time{}
	if err := s.Begin(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "d-1", drover.JournalEntry{Host: "h01", Step: "depool", Phase: "start"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Outcome: drover.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Deploy(ctx, "d-1")
	j, _ := s.Journal(ctx, "d-1")
	if !got.Started.Equal(now) || !got.Finished.Equal(now) || len(j) != 1 || !j[0].At.Equal(now) {
		t.Errorf("Now not used: started %v finished %v journal %+v", got.Started, got.Finished, j)
	}
}

// The duration column is what a person sorts slow deploys by.
func TestSqliteRecordsDuration(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	d := storetest.Record("d-1", "hello", 0)
	if err := s.Begin(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Finished: d.Started.Add(90 * time.Second), Outcome: drover.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	var ns int64
	if err := rawDB(t, s.Path()).QueryRow(`SELECT duration_ns FROM deploys WHERE id = 'd-1'`).Scan(&ns); err != nil || time.Duration(ns) != 90*time.Second {
		t.Errorf("duration_ns = %v (%v), want 1m30s", time.Duration(ns), err)
	}
}

// TestSqliteKeepsForeignSnapshot: a host's pre-deploy snapshot that is
// another tool's release keeps its exact link and hash in the journal, so
// recovering a crashed first deploy puts that same link back.
func TestSqliteKeepsForeignSnapshot(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	rec := storetest.Record("d-foreign", "hello", 0)
	rec.Hosts[0].Before = drover.Snapshot{Current: "20260101120000", Foreign: &drover.Foreign{Link: "/srv/hello/releases/20260101120000", Hash: "ab12"}}
	if err := s.Begin(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Deploy(ctx, "d-foreign")
	if err != nil {
		t.Fatal(err)
	}
	if f := got.Hosts[0].Before.Foreign; f == nil || *f != *rec.Hosts[0].Before.Foreign {
		t.Errorf("foreign snapshot read back as %+v", got.Hosts[0].Before)
	}
	if got.Hosts[1].Before.Foreign != nil {
		t.Errorf("a host with no foreign release read back with one: %+v", got.Hosts[1].Before)
	}
}
