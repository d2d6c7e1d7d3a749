package hostops

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"drover/internal/flock"
)

// The helper is this test binary run as a controller that takes the host
// lock, starts a hook and dies (SIGKILL, no cleanup) while or right after
// it runs: what `kill -9 drover` or a dropped SSH session does.
func TestMain(m *testing.M) {
	if root := os.Getenv("HOSTOPS_LOCK_HELPER"); root != "" {
		lockHelper(root)
		return
	}
	os.Exit(m.Run())
}

func lockHelper(root string) {
	h := &Host{Root: root}
	l, err := h.Lock(context.Background(), Holder{DeployID: "d-dead", Step: "restart", Hook: true})
	if err != nil {
		os.Exit(7)
	}
	timeout, _ := time.ParseDuration(os.Getenv("HOSTOPS_LOCK_TIMEOUT"))
	hook := os.Getenv("HOSTOPS_LOCK_HOOK")
	if os.Getenv("HOSTOPS_LOCK_DIE") == "pause" {
		// The hook ends; the controller is paused before it drops the
		// lock (SIGSTOP, a frozen VM), and lets go once continued.
		l.RunShell(context.Background(), root, hook, nil, timeout)
		// SIGSTOP sent to the process may be taken by another thread,
		// and this one ran on into Unlock (removing the record) before
		// the stop reached it. Sent to this thread, it stops here.
		runtime.LockOSThread()
		syscall.Tgkill(os.Getpid(), syscall.Gettid(), syscall.SIGSTOP)
		l.Unlock()
		os.Exit(0)
	}
	if os.Getenv("HOSTOPS_LOCK_DIE") == "before-record" {
		// The controller dies after starting the hook and before the
		// holder record names it.
		runShell(context.Background(), root, hook, nil, timeout, l.f, func(int) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		})
	}
	if os.Getenv("HOSTOPS_LOCK_DIE") == "after" {
		// The hook ends (leaving a background process); the controller
		// dies before it drops the lock.
		l.RunShell(context.Background(), root, hook, nil, timeout)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	go l.RunShell(context.Background(), root, hook, nil, timeout)
	// Die once the hook runs.
	for {
		if _, err := os.Stat(filepath.Join(root, "started")); err == nil {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
}

// deadController runs the helper to its death and returns once it is
// gone (its hook may run on).
func deadController(t *testing.T, root, hook, die string, timeout time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HOSTOPS_LOCK_HELPER="+root, "HOSTOPS_LOCK_HOOK="+hook,
		"HOSTOPS_LOCK_DIE="+die, "HOSTOPS_LOCK_TIMEOUT="+timeout.String())
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("helper did not die by a signal: %v", err)
	}
}

type notes struct {
	mu  sync.Mutex
	all []string
}

func (n *notes) add(s string) { n.mu.Lock(); n.all = append(n.all, s); n.mu.Unlock() }
func (n *notes) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.all, "\n")
}

func TestLockWaitsForLiveHolder(t *testing.T) {
	root := t.TempDir()
	a := &Host{Root: root}
	la, err := a.Lock(context.Background(), Holder{DeployID: "d-1", Step: "promote"})
	if err != nil {
		t.Fatal(err)
	}
	var n notes
	b := &Host{Root: root, Notify: n.add}
	got := make(chan error, 1)
	go func() {
		lb, err := b.Lock(context.Background(), Holder{DeployID: "d-2", Step: "restore"})
		if err == nil {
			lb.Unlock()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second Lock returned while the first was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	la.Unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	want := "promote of d-1 is still running (pid " + strconv.Itoa(os.Getpid()) + "); waiting up to"
	if !strings.Contains(n.String(), want) {
		t.Fatalf("notes %q, want %q", n.String(), want)
	}
}

// The bug this lock exists for: a controller killed while a hook runs
// must leave the host locked until the hook is over, so recovery does
// not run beside it.
func TestLockOutlivesDeadControllerWhileHookRuns(t *testing.T) {
	root := t.TempDir()
	done := filepath.Join(root, "done")
	deadController(t, root, "touch started; sleep 0.5; touch done", "during", time.Minute)
	w, ok := (&Host{Root: root}).ReadHolder()
	if !ok || w.HookPID == 0 || w.DeployID != "d-dead" {
		t.Fatalf("holder record %+v, %v", w, ok)
	}
	var n notes
	h := &Host{Root: root, Notify: n.add}
	l, err := h.Lock(context.Background(), Holder{Step: "restore"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if _, err := os.Stat(done); err != nil {
		t.Fatalf("lock taken while the dead controller's hook still ran: %v", err)
	}
	want := "a restart hook of d-dead is still running (pid " + strconv.Itoa(w.HookPID) + "); waiting up to 1m"
	if !strings.Contains(n.String(), want) {
		t.Fatalf("notes %q, want %q", n.String(), want)
	}
}

// A controller killed between starting a hook and recording its pid
// must not leave a hook running that no waiter knows of: recovery would
// wait out the whole hook timeout and then run beside it. The hook waits
// for the record, so it never runs, and the host is free at once.
func TestLockHookNeverRunsUnrecorded(t *testing.T) {
	root := t.TempDir()
	deadController(t, root, "touch started; sleep 30", "before-record", time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := (&Host{Root: root}).Lock(ctx, Holder{Step: "restore"})
	if err != nil {
		t.Fatalf("the host stayed locked: %v", err)
	}
	defer l.Unlock()
	time.Sleep(200 * time.Millisecond) // time for a hook that got past the gate to start
	if _, err := os.Stat(filepath.Join(root, "started")); err == nil {
		t.Fatal("the hook ran though its controller died before recording it")
	}
}

// A hook that outlives its recorded deadline has its process group
// killed, and the lock is taken.
func TestLockKillsHookPastDeadline(t *testing.T) {
	root := t.TempDir()
	deadController(t, root, "touch started; sleep 60; touch done", "during", 300*time.Millisecond)
	w, _ := (&Host{Root: root}).ReadHolder()
	var n notes
	h := &Host{Root: root, Notify: n.add}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := h.Lock(ctx, Holder{Step: "restore"})
	if err != nil {
		t.Fatalf("%v (notes %q)", err, n.String())
	}
	defer l.Unlock()
	if alive(w.HookPID) {
		t.Fatalf("hook %d still alive after the lock was taken", w.HookPID)
	}
	if !strings.Contains(n.String(), "killed its process group "+strconv.Itoa(w.HookPID)) {
		t.Fatalf("notes %q do not say the group was killed", n.String())
	}
	if _, err := os.Stat(filepath.Join(root, "done")); err == nil {
		t.Fatal("the hook finished: it was not killed")
	}
}

// A controller paused after its hook finished (the deployer a lost lease
// fenced off) holds the descriptor but can do nothing with it: the waiter
// takes over at once instead of waiting out the hook timeout twice, and
// the paused controller, continued, does not erase the new holder's record.
func TestLockTakesOverFromPausedControllerWhoseHookIsOver(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HOSTOPS_LOCK_HELPER="+root, "HOSTOPS_LOCK_HOOK=true",
		"HOSTOPS_LOCK_DIE=pause", "HOSTOPS_LOCK_TIMEOUT=1m")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(10 * time.Second); !stopped(cmd.Process.Pid); {
		if time.Now().After(deadline) {
			t.Fatal("the helper never paused")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := &Host{Root: root}
	l, err := h.Lock(ctx, Holder{DeployID: "d-new", Step: "restore"})
	if err != nil {
		t.Fatalf("the paused controller kept the host: %v", err)
	}
	defer l.Unlock()
	syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("continued helper: %v", err)
	}
	if w, ok := h.ReadHolder(); !ok || w.DeployID != "d-new" {
		t.Fatalf("holder record after the paused controller let go: %+v, %v", w, ok)
	}
}

// A finished hook's background process (the service it started) holds
// the inherited descriptor; with the hook and its controller gone the
// waiter takes over at once and leaves the service alone.
func TestLockTakesOverFromHookLeftovers(t *testing.T) {
	root := t.TempDir()
	pidFile := filepath.Join(root, "svc.pid")
	deadController(t, root, "sleep 30 >/dev/null 2>&1 & echo $! > svc.pid", "after", time.Minute)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	defer syscall.Kill(svc, syscall.SIGKILL)
	h := &Host{Root: root}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := h.Lock(ctx, Holder{Step: "restore"})
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	if !alive(svc) {
		t.Fatal("the service the hook started was killed")
	}
	// And the lock works again after the takeover.
	l1, err := h.Lock(ctx, Holder{Step: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Unlock()
	c, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := (&Host{Root: root}).Lock(c, Holder{Step: "b"}); err == nil {
		t.Fatal("two holders at once after a takeover")
	}
}

// A hook that finishes normally under a live controller frees the host,
// even though the service it started keeps the inherited descriptor.
func TestLockUnlockFreesDespiteInheritedDescriptor(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root}
	l, err := h.Lock(context.Background(), Holder{Step: "restart", Hook: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.RunShell(context.Background(), root, "sleep 30 >/dev/null 2>&1 & echo $!", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := strconv.Atoi(strings.TrimSpace(res.Output))
	defer syscall.Kill(svc, syscall.SIGKILL)
	l.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l2, err := h.Lock(ctx, Holder{Step: "promote"})
	if err != nil {
		t.Fatal(err)
	}
	l2.Unlock()
}

// Two waiters found a dead holder's lock: the first broke it and took
// the new lock file, and has not written its record yet. The second
// must not act on the record still there — its holder and hook dead —
// or it breaks the first's lock too and both work on the host at once.
func TestLockStaleRecordIsNotTheHolder(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root}
	// The first waiter, just after its flock of the fresh lock file.
	first := lockedFile(t, h)
	// The record of the holder before it: the lock file it held was
	// another (replaced by the first waiter), its controller and hook are
	// dead.
	writeHolder(t, h, Holder{DeployID: "d-dead", Step: "restart", Hook: true, PID: deadPID(t), HookPID: deadPID(t), Lock: inode(first) + 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if l, err := (&Host{Root: root}).Lock(ctx, Holder{Step: "restore"}); err == nil {
		l.Unlock()
		t.Fatal("the second waiter took the host while the first held it")
	}
	if !samePath(first, h.lockPath()) {
		t.Fatal("the second waiter replaced the lock file the first holds")
	}
}

// Two waiters found the same dead holder and both break its lock: the
// second to get there finds the lock file it found held already replaced
// — the first may hold the fresh one — and leaves it, instead of
// replacing it too and taking a third while the first works on the host.
func TestLockBrokenOnce(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root}
	fresh := lockedFile(t, h)
	// The second waiter found the dead holder's file, replaced since.
	if err := h.breakLock(inode(fresh) + 1); err != nil {
		t.Fatal(err)
	}
	if !samePath(fresh, h.lockPath()) {
		t.Fatal("the lock file the first waiter holds was replaced")
	}
	// The file it found held is still in place: it is replaced.
	if err := h.breakLock(inode(fresh)); err != nil {
		t.Fatal(err)
	}
	if samePath(fresh, h.lockPath()) {
		t.Fatal("the lock file found held was not replaced")
	}
}

// The recorded hook died and the system gave its pid to an unrelated
// process, which runs on. The waiter takes the host from the hook's
// leftovers and leaves that process alone, instead of waiting for it and
// then killing its process group.
func TestLockHookPidReused(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root}
	ino := heldByLeftovers(t, h)
	other, start := unrelated(t)
	exited := make(chan struct{})
	go func() { other.Wait(); close(exited) }()
	writeHolder(t, h, Holder{DeployID: "d-dead", Step: "restart", Hook: true, PID: deadPID(t),
		HookPID: other.Process.Pid, HookStart: start - 1, Deadline: time.Now().Add(-time.Second), Lock: ino})
	var n notes
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := (&Host{Root: root, Notify: n.add}).Lock(ctx, Holder{Step: "restore"})
	if err != nil {
		t.Fatalf("%v (notes %q)", err, n.String())
	}
	l.Unlock()
	select {
	case <-exited:
		t.Fatalf("the process that got the hook's pid was killed (notes %q)", n.String())
	case <-time.After(100 * time.Millisecond):
	}
}

// The recorded holder died and its pid went to an unrelated process; the
// lock file is still held by what an earlier hook left running. The
// waiter does not take that process for the holder ("another drover is
// working on this host"): after its wait it takes the host over.
func TestLockHolderPidReused(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root, LockWait: 300 * time.Millisecond}
	ino := heldByLeftovers(t, h)
	other, start := unrelated(t)
	writeHolder(t, h, Holder{DeployID: "d-dead", Step: "promote", PID: other.Process.Pid, Start: start - 1, Lock: ino})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := h.Lock(ctx, Holder{Step: "restore"})
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
}

// heldByLeftovers makes h's lock file held by a process a dead hook left
// running (it inherited the locked descriptor) and returns the file's
// inode; the process is killed at the end of the test.
func heldByLeftovers(t *testing.T, h *Host) uint64 {
	t.Helper()
	f := lockedFile(t, h)
	defer f.Close()
	leftover := exec.Command("sleep", "30")
	leftover.ExtraFiles = []*os.File{f}
	if err := leftover.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leftover.Process.Kill(); leftover.Wait() })
	return inode(f)
}

// unrelated starts a process in a process group of its own, standing for
// one the system gave a dead process's pid, and returns it with its
// start time.
func unrelated(t *testing.T) (*exec.Cmd, uint64) {
	t.Helper()
	c := exec.Command("sleep", "30")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill() })
	start := procStart(c.Process.Pid)
	if start == 0 {
		t.Fatal("no start time in /proc")
	}
	return c, start
}

// lockedFile creates h's lock file and holds its flock until the test
// ends (or the caller closes it).
func lockedFile(t *testing.T, h *Host) *os.File {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(h.Root, LockDir), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(h.lockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := flock.TryLock(f); err != nil {
		t.Fatal(err)
	}
	return f
}

// deadPID is the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}

// writeHolder writes rec as h's holder record.
func writeHolder(t *testing.T, h *Host, rec Holder) {
	t.Helper()
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(h.holderPath(), b, 0o600); err != nil {
		t.Fatal(err)
	}
}
