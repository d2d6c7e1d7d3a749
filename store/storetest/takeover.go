package storetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"drover"
)

// LockTakeoverEnv is how RunLockTakeoverContract tells the child process
// where its store is. A store package whose TestMain starts a server
// (store/etcd) checks it to let the child use its parent's.
const LockTakeoverEnv = "DROVER_STORETEST_LOCK_TAKEOVER"

// LockTakeover is one store's part in the lock-takeover contract.
type LockTakeover struct {
	// HelperTest names the test function of the store's package that calls
	// LockTakeoverHelper: the contract runs the test binary again with
	// -test.run=^HelperTest$ to hold the lock in another process.
	HelperTest string
	// Location says where a fresh store lives: a directory, a database
	// file, an endpoint and a prefix. Open reads it, in both processes.
	Location string
	Open     func(location string) (drover.Store, error)
	// Expiry bounds how long the lock may stay held after its holder
	// died: a lease's TTL plus what the server adds. Zero: free at once,
	// as a flock or an SQLite lock is when the kernel closes the
	// holder's files.
	Expiry time.Duration
	// HeldPast is how long the parent waits before checking that the live
	// child still holds the lock: past a lease's TTL, to show the holder
	// keeps it alive.
	HeldPast time.Duration
}

// LockTakeoverHelper is the child's side of RunLockTakeoverContract: it
// takes the lock of "hello", begins deploy d-child and journals one step,
// says "locked", and waits to be killed. Outside the contract it skips.
func LockTakeoverHelper(t *testing.T, open func(location string) (drover.Store, error)) {
	loc := os.Getenv(LockTakeoverEnv)
	if loc == "" {
		t.Skip("helper process for the lock-takeover contract (storetest.RunLockTakeoverContract)")
	}
	ctx := context.Background()
	s, err := open(loc)
	if err == nil {
		_, err = s.Lock(ctx, "hello", drover.LockOwner{PID: os.Getpid(), User: "child", Machine: "m", DeployID: "d-child"})
	}
	if err == nil {
		err = s.Begin(ctx, Record("d-child", "hello", 0))
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

// RunLockTakeoverContract shows what every store promises about a holder
// that dies without releasing its lock (SIGKILL: no deferred Release, no
// Close): while it lives its lock holds across processes; once it is dead
// the next Lock takes the lock within lt.Expiry and reports the dead
// holder (TakenOver), so that the deploy it left is recovered rather than
// the lock silently stolen or held forever; its deploy and journal are
// there for that recovery; and after a clean release nobody is reported.
func RunLockTakeoverContract(t *testing.T, lt LockTakeover) {
	ctx := context.Background()
	cmd := exec.Command(os.Args[0], "-test.run=^"+lt.HelperTest+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), LockTakeoverEnv+"="+lt.Location)
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

	s, err := lt.Open(lt.Location)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(lt.HeldPast)
	_, err = s.Lock(ctx, "hello", drover.LockOwner{})
	if drover.ErrorCode(err) != drover.ELOCKED || !strings.Contains(err.Error(), fmt.Sprintf("pid %d user child", child)) {
		t.Fatalf("Lock while the child holds it: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()

	if hr, ok := s.(drover.HistoryReader); ok {
		if h, err := hr.LockHolder(ctx, "hello"); err != nil || h == nil || h.PID != child {
			t.Errorf("LockHolder after the holder died: %+v, %v; want the dead child", h, err)
		}
	}
	var l drover.Lock
	for {
		l, err = s.Lock(ctx, "hello", drover.LockOwner{DeployID: "d-parent"})
		if err == nil {
			break
		}
		if drover.ErrorCode(err) != drover.ELOCKED || time.Since(killed) > lt.Expiry {
			t.Fatalf("Lock %s after the holder died (allowed: %s): %v", time.Since(killed).Round(time.Millisecond), lt.Expiry, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lt.Expiry > 0 {
		t.Logf("lock free %s after the holder died", time.Since(killed).Round(10*time.Millisecond))
	}
	prev := l.TakenOver()
	if prev == nil || prev.PID != child || prev.DeployID != "d-child" || prev.User != "child" {
		t.Fatalf("TakenOver() = %+v, want the dead child (pid %d)", prev, child)
	}
	if o := l.Owner(); o.DeployID != "d-parent" {
		t.Errorf("Owner() = %+v", o)
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
