package file_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/store/file"
	"drover/store/storetest"
)

func open(t *testing.T) *file.Store {
	t.Helper()
	s, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.RunStoreContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestContractBatch(t *testing.T) {
	storetest.RunBatchAppenderContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestFileLegacyHalted(t *testing.T) {
	storetest.RunLegacyHaltedContract(t, func(t *testing.T) drover.Store { return open(t) })
}

func TestOpen_CreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "drover")
	if _, err := file.Open(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("state dir mode %v, want 0700", perm)
	}
}

func TestLayout(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	l, err := s.Lock(ctx, "hello/staging", drover.LockOwner{PID: 42, User: "bob", Machine: "m", DeployID: "d-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := s.Begin(ctx, storetest.Record("d-1", "hello/staging", 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "d-1", storetest.Entries(1)[0]); err != nil {
		t.Fatal(err)
	}
	kd := filepath.Join(s.Dir(), "hello%2Fstaging")
	for _, p := range []string{"lock", "deploys/d-1.json", "deploys/d-1.journal"} {
		st, err := os.Stat(filepath.Join(kd, p))
		if err != nil {
			t.Errorf("layout: %v", err)
			continue
		}
		if perm := st.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, perm)
		}
	}
	// The lock file names its holder while held...
	var o drover.LockOwner
	data, _ := os.ReadFile(filepath.Join(kd, "lock"))
	if err := json.Unmarshal(data, &o); err != nil || o.PID != 42 || o.DeployID != "d-1" {
		t.Errorf("lock file holds %q", data)
	}
	// ...and nothing once released, so the next Lock sees a clean release.
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(kd, "lock")); len(data) != 0 {
		t.Errorf("released lock file holds %q", data)
	}
	// Only complete records and journals, no temp files left behind.
	entries, _ := os.ReadDir(filepath.Join(kd, "deploys"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "d-1.journal d-1.json" {
		t.Errorf("deploys dir holds %s", got)
	}
}

func TestNow(t *testing.T) {
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
	l, err := s.Lock(ctx, "hello", drover.LockOwner{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if o := l.Owner(); !o.Since.Equal(now) || o.PID != os.Getpid() || o.Machine == "" {
		t.Errorf("owner defaults not filled: %+v", o)
	}
}

// Two Stores on one directory in one process conflict like two
// processes: flock locks belong to open file descriptions, not processes.
func TestLock_SameProcessSeparateFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s1, _ := file.Open(dir)
	s2, _ := file.Open(dir)
	l, err := s1.Lock(ctx, "hello", drover.LockOwner{PID: 7, User: "bob", Machine: "m", DeployID: "d-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lock(ctx, "hello", drover.LockOwner{}); drover.ErrorCode(err) != drover.ELOCKED || !strings.Contains(err.Error(), "pid 7") {
		t.Fatalf("Lock through a second Store: %v, want ELOCKED naming pid 7", err)
	}
	l.Release()
	l2, err := s2.Lock(ctx, "hello", drover.LockOwner{})
	if err != nil {
		t.Fatalf("Lock after Release: %v", err)
	}
	l2.Release()
}

const helperEnv = "DROVER_STORE_FILE_LOCK_HELPER"

// TestLockHelperProcess is not a test: TestLock_TakeoverAfterDeath runs
// the test binary again with helperEnv set, and this takes the lock in
// that child and waits to be killed.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestLock_TakeoverAfterDeath")
	}
	s, err := file.Open(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if _, err := s.Lock(context.Background(), "hello", drover.LockOwner{PID: os.Getpid(), User: "child", Machine: "m", DeployID: "d-child"}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(1) // not killed: the parent fails on its own
}

func TestLock_TakeoverAfterDeath(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
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
	case <-time.After(30 * time.Second):
		t.Fatal("child did not take the lock")
	}
	child := cmd.Process.Pid

	s, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The child is alive: its lock holds across processes.
	_, err = s.Lock(ctx, "hello", drover.LockOwner{})
	if drover.ErrorCode(err) != drover.ELOCKED || !strings.Contains(err.Error(), fmt.Sprintf("pid %d user child", child)) {
		t.Fatalf("Lock while the child holds it: %v", err)
	}

	// SIGKILL: no deferred Release, no cleanup; only the kernel drops
	// the flock.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	l, err := s.Lock(ctx, "hello", drover.LockOwner{DeployID: "d-parent"})
	if err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	defer l.Release()
	prev := l.TakenOver()
	if prev == nil || prev.PID != child || prev.DeployID != "d-child" || prev.User != "child" {
		t.Fatalf("TakenOver() = %+v, want the dead child (pid %d)", prev, child)
	}
	if l.Owner().DeployID != "d-parent" {
		t.Errorf("Owner() = %+v", l.Owner())
	}
	// Taken over once: after a clean release nobody is reported again.
	l.Release()
	l, err = s.Lock(ctx, "hello", drover.LockOwner{})
	if err != nil || l.TakenOver() != nil {
		t.Fatalf("Lock after a clean release: %v, taken over %+v", err, l.TakenOver())
	}
	l.Release()
}

func journalPath(s *file.Store, key, id string) string {
	return filepath.Join(s.Dir(), key, "deploys", id+".journal")
}

func appendRaw(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

// A crash mid-write leaves a partial last line: readers skip it, and the
// next Append (a resumed deploy) cuts it off instead of writing after it.
func TestJournal_PartialLastLine(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.Begin(ctx, storetest.Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	want := storetest.Entries(3)
	for _, e := range want[:2] {
		if err := s.Append(ctx, "d-1", e); err != nil {
			t.Fatal(err)
		}
	}
	path := journalPath(s, "hello", "d-1")
	appendRaw(t, path, `{"at":"2026-11-22T10:00:02Z","host":"h0`)

	got, err := s.Journal(ctx, "d-1")
	if err != nil {
		t.Fatalf("Journal with a partial last line: %v", err)
	}
	if len(got) != 2 || got[1].Step != want[1].Step {
		t.Fatalf("Journal = %+v, want the 2 complete entries", got)
	}

	if err := s.Append(ctx, "d-1", want[2]); err != nil {
		t.Fatalf("Append after a torn write: %v", err)
	}
	got, err = s.Journal(ctx, "d-1")
	if err != nil || len(got) != 3 || got[2].Step != want[2].Step || got[2].Phase != want[2].Phase {
		t.Fatalf("Journal after repair = %+v, %v", got, err)
	}
	data, _ := os.ReadFile(path)
	if strings.Count(string(data), "\n") != 3 || strings.Contains(string(data), `"host":"h0"`+"\n") {
		t.Errorf("journal file after repair:\n%s", data)
	}
}

func TestJournal_CorruptLine(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.Begin(ctx, storetest.Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "d-1", storetest.Entries(1)[0]); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, journalPath(s, "hello", "d-1"), "garbage\n")
	if err := s.Append(ctx, "d-1", storetest.Entries(2)[1]); err != nil {
		t.Fatal(err)
	}
	_, err := s.Journal(ctx, "d-1")
	if drover.ErrorCode(err) != drover.EINTERNAL || !strings.Contains(err.Error(), "d-1.journal:2") {
		t.Fatalf("Journal with a corrupt middle line: %v, want EINTERNAL naming line 2", err)
	}
}

// Keys become directory names: nothing a key says may reach outside the
// state directory, and distinct keys never share a directory.
func TestKeyEscaping(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	s, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"..", "../x", "../../etc/passwd", "a/../../x", "/abs", "a//b", "a/", ".", "a\x00b", "a\nb", strings.Repeat("k", 200)} {
		if _, err := s.Lock(ctx, key, drover.LockOwner{}); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Lock(%q): %v, want EINVALID", key, err)
		}
		if err := s.Begin(ctx, storetest.Record("d-x", key, 0)); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Begin with key %q: %v, want EINVALID", key, err)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("files appeared next to the state directory: %v", entries)
	}

	// Look-alike keys stay apart, and none becomes a hidden directory.
	keys := []string{"hello/staging", "hello%2Fstaging", "hello", ".hello", "héllo"}
	for i, key := range keys {
		if err := s.Begin(ctx, storetest.Record(fmt.Sprintf("d-%d", i), key, 0)); err != nil {
			t.Fatalf("Begin with key %q: %v", key, err)
		}
	}
	for i, key := range keys {
		got, err := s.Unfinished(ctx, key)
		if err != nil || len(got) != 1 || got[0].ID != fmt.Sprintf("d-%d", i) || got[0].Key != key {
			t.Errorf("Unfinished(%q) = %+v, %v", key, got, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || strings.Contains(e.Name(), "/") {
			t.Errorf("key directory %q", e.Name())
		}
	}
	if len(entries) != len(keys) {
		t.Errorf("%d key directories for %d keys", len(entries), len(keys))
	}
}

func TestDeployIDs(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	for _, id := range []string{"", "../d-1", "a/b", ".hidden", "d 1", strings.Repeat("d", 200)} {
		if err := s.Begin(ctx, storetest.Record(id, "hello", 0)); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Begin(%q): %v, want EINVALID", id, err)
		}
		if _, err := s.Journal(ctx, id); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Journal(%q): %v, want EINVALID", id, err)
		}
	}
}
