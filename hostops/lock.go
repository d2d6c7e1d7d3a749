package hostops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"drover"
	"drover/internal/flock"
)

// The host lock: one actor per host at a time, across process deaths.
//
// Every step that changes a host (stage, promote, restore, prune, every
// hook) runs holding an flock on <deploy_root>/.drover/host.lock, and
// next to it host.holder.json says who holds it (deploy, step, pids,
// until when). A hook's shell inherits the locked descriptor (as fd 3),
// so when the controller dies in the middle of a hook — drover killed,
// or the `drover host serve` session dropped — the kernel keeps the host
// locked for as long as the orphaned hook runs. Without that, `drover
// resume` restored a host while the dead run's restart hook was still
// running; the hook then finished by starting the dead run's release, and
// the host served a release its state.json and current link did not name.
//
// A process the hook leaves running in the background (the service it
// started) inherits the descriptor too. A controller that sees its hook
// finish drops the lock explicitly (LOCK_UN frees it for every holder of
// the descriptor). After a controller death the waiter tells the two
// apart by the recorded pids: the hook's shell gone and its controller
// gone means only leftovers hold the file, and the waiter replaces it —
// the same rule as RunShell's, where a hook is over when its shell exits.
// A hook still running is waited for until its own recorded deadline
// (its hooks.timeout), then its process group is killed.
const (
	LockDir    = ".drover"
	LockName   = "host.lock"
	HolderName = "host.holder.json"
)

// lockPoll is how often a waiter looks at the lock again.
const lockPoll = 20 * time.Millisecond

// Holder says who holds a host's lock.
type Holder struct {
	DeployID string `json:"deploy_id,omitempty"`
	// Step is the operation (stage, promote, restore, prune) or the hook
	// (restart, depool, ...) that holds the lock.
	Step string `json:"step"`
	// Hook is true when Step is a hook (a command).
	Hook bool `json:"hook,omitempty"`
	// PID is the process holding the lock: drover itself (transport
	// local) or `drover host serve`.
	PID int `json:"pid"`
	// Start is when PID started (as HookStart): a pid given to another
	// process since is not the holder.
	Start uint64 `json:"start,omitempty"`
	// HookPID is the hook's shell, the leader of its own process group.
	HookPID int `json:"hook_pid,omitempty"`
	// HookStart is when that process started (clock ticks since boot,
	// /proc/PID/stat; 0 where unknown): a pid the system gave to another
	// process since is not the hook, and its group is not killed.
	HookStart uint64    `json:"hook_start,omitempty"`
	Since     time.Time `json:"since"`
	// Deadline is when the hook's timeout kills it.
	Deadline time.Time `json:"deadline,omitzero"`
	// Lock is the inode of the lock file held: a waiter acts on a record
	// only when it is about the lock file it found held (0: a record
	// written before drover recorded it; taken as current).
	Lock uint64 `json:"lock,omitempty"`
}

// String says what holds the host, for the waiter's message.
func (w Holder) String() string {
	what := w.Step
	if what == "" {
		what = "a step"
	}
	if w.Hook {
		what = "a " + what + " hook"
	}
	if w.DeployID != "" {
		what += " of " + w.DeployID
	}
	pid := w.HookPID
	if pid == 0 {
		pid = w.PID
	}
	if pid == 0 {
		return what + " is still running"
	}
	return fmt.Sprintf("%s is still running (pid %d)", what, pid)
}

// HostLock is a held host lock.
type HostLock struct {
	h   *Host
	f   *os.File
	who Holder
}

func (h *Host) lockPath() string   { return filepath.Join(h.Root, LockDir, LockName) }
func (h *Host) holderPath() string { return filepath.Join(h.Root, LockDir, HolderName) }

// ReadHolder reads the recorded holder of the host lock; ok is false when
// none is recorded.
func (h *Host) ReadHolder() (w Holder, ok bool) {
	b, err := os.ReadFile(h.holderPath())
	if err != nil || json.Unmarshal(b, &w) != nil {
		return Holder{}, false
	}
	return w, true
}

// Lock takes the host lock for who, waiting while another actor holds it.
// It tells h.Notify once what it waits for and for how long: until the
// holder's hook deadline, at most h.lockWait(). When that passes, a hook
// still running has its process group killed; a holder that is not a hook
// and is still alive after it is an error (EFAILED), never stolen from.
func (h *Host) Lock(ctx context.Context, who Holder) (*HostLock, error) {
	dir := filepath.Join(h.Root, LockDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, drover.Errorf(drover.EFAILED, "host lock: %v", err)
	}
	who.PID = os.Getpid()
	who.Start = procStart(who.PID)
	var (
		announced bool
		until     time.Time
		killed    bool
		began     = time.Now()
	)
	for {
		f, err := os.OpenFile(h.lockPath(), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, drover.Errorf(drover.EFAILED, "host lock: %v", err)
		}
		err = flock.TryLock(f)
		if err == nil {
			if !samePath(f, h.lockPath()) {
				// A waiter replaced the file while we opened it.
				f.Close()
				continue
			}
			l := &HostLock{h: h, f: f, who: who}
			l.who.Since = time.Now().UTC()
			l.who.Lock = inode(f)
			l.record()
			return l, nil
		}
		held := inode(f)
		f.Close()
		if !errors.Is(err, flock.ErrLocked) {
			return nil, drover.Errorf(drover.EFAILED, "host lock: %v", err)
		}
		w, _ := h.ReadHolder()
		current := w.Lock == 0 || w.Lock == held
		if !current {
			// The record is of a lock file no longer the one held: a
			// holder that took over (breakLock) has the lock and has not
			// written its record yet. Acting on the old record — its
			// holder and hook dead — would break the new holder's lock
			// and put two actors on the host; it is not about who holds
			// the host, so wait for the record that is.
			w = Holder{}
		}
		now := time.Now() // real time, not h.Now: a test's frozen clock must not stall a waiter
		if !current && !announced && now.Before(began.Add(time.Second)) {
			// The new holder's record is a moment away: the deadline to
			// wait for and the message are its, not the old holder's.
			if err := h.pause(ctx, w); err != nil {
				return nil, err
			}
			continue
		}
		if !announced {
			until = now.Add(h.lockWait())
			if !w.Deadline.IsZero() && w.Deadline.Before(until) {
				until = w.Deadline
			}
			announced = true
			h.notify(fmt.Sprintf("%s; waiting up to %s", w, max(until.Sub(now), 0).Round(time.Second)))
		}
		// A recorded hook whose pid now names a process started at
		// another time is over: the pid was given to another process,
		// which must neither hold the host nor have its group killed.
		hookLive := w.HookPID > 0 && alive(w.HookPID) && (w.HookStart == 0 || procStart(w.HookPID) == w.HookStart)
		holderLive := w.PID > 0 && alive(w.PID) && (w.Start == 0 || procStart(w.PID) == w.Start)
		switch {
		case current && w.HookPID > 0 && !hookLive && (!holderLive || stopped(w.PID)):
			// The hook is over and its controller is gone — or paused
			// (SIGSTOP, a frozen VM): what still holds the descriptor
			// are processes the hook left running (its service), and a
			// controller that cannot act. A paused controller is fenced
			// when it wakes: it lost its deploy lock to whoever recovers
			// its deploy (runner/fence.go), so the only thing it would
			// still do with this lock is let go of it. Waiting for it
			// kept recovery off the host until the hook timeout twice
			// over, with its hook long finished.
			if err := h.breakLock(held); err != nil {
				return nil, err
			}
			continue
		case current && !now.Before(until) && hookLive && !killed:
			syscall.Kill(-w.HookPID, syscall.SIGKILL)
			killed = true
			h.notify(fmt.Sprintf("%s past its deadline; killed its process group %d", w, w.HookPID))
		case current && !now.Before(until) && !holderLive && !hookLive:
			// Nothing recorded is alive, yet the file is held: taken
			// over after the wait.
			if err := h.breakLock(held); err != nil {
				return nil, err
			}
			continue
		case !now.Before(until.Add(h.lockWait())) || (!now.Before(until) && !w.Hook && holderLive):
			return nil, drover.Errorf(drover.EFAILED, "host lock: %s", w).
				WithHint("another drover is working on this host; wait for it, or stop it")
		}
		if err := h.pause(ctx, w); err != nil {
			return nil, err
		}
	}
}

// pause waits lockPoll before the waiter looks again; ETIMEOUT when ctx
// ends first.
func (h *Host) pause(ctx context.Context, w Holder) error {
	t := time.NewTimer(lockPoll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return drover.Errorf(drover.ETIMEOUT, "waiting for the host lock: %s", w)
	case <-t.C:
		return nil
	}
}

func (h *Host) lockWait() time.Duration {
	if h.LockWait > 0 {
		return h.LockWait
	}
	return drover.DefaultHookTimeout
}

func (h *Host) notify(msg string) {
	if h.Notify != nil {
		h.Notify(msg)
	}
}

// breakLock replaces the lock file with a fresh one: leftovers keep the
// old inode locked, and nobody looks at it again. It replaces only the
// lock file found held (inode held), under a lock of its own: two waiters
// that found the same dead holder would otherwise each put a fresh file
// in place, the first taking its own before the second replaced it, and
// both would hold the host.
func (h *Host) breakLock(held uint64) error {
	g, err := os.OpenFile(filepath.Join(h.Root, LockDir, LockName+".break"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return drover.Errorf(drover.EFAILED, "host lock: %v", err)
	}
	defer g.Close()
	for tries := 0; ; tries++ {
		err := flock.TryLock(g)
		if err == nil {
			break
		}
		if !errors.Is(err, flock.ErrLocked) {
			return drover.Errorf(drover.EFAILED, "host lock: %v", err)
		}
		if tries == 1000 {
			return nil // another waiter is breaking it; look again
		}
		time.Sleep(time.Millisecond)
	}
	defer flock.Unlock(g)
	if fi, err := os.Stat(h.lockPath()); err == nil && held != 0 && inodeOf(fi) != held {
		return nil // broken already: the caller looks again
	}
	tmp, err := os.CreateTemp(filepath.Join(h.Root, LockDir), LockName+".new-*")
	if err != nil {
		return drover.Errorf(drover.EFAILED, "host lock: %v", err)
	}
	tmp.Close()
	if err := os.Rename(tmp.Name(), h.lockPath()); err != nil {
		os.Remove(tmp.Name())
		return drover.Errorf(drover.EFAILED, "host lock: %v", err)
	}
	return nil
}

// inode is f's inode number, 0 when unknown.
func inode(f *os.File) uint64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return inodeOf(fi)
}

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// samePath reports whether f is still the file at path.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// record writes the holder file. It is not fsynced: it only matters
// while this process or its hook lives, and a machine crash ends both.
func (l *HostLock) record() {
	b, _ := json.Marshal(l.who)
	tmp := l.h.holderPath() + ".tmp-" + strconv.Itoa(os.Getpid())
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, l.h.holderPath())
	}
}

// Unlock drops the lock (also for the background processes of a hook
// that inherited it) and removes the holder record.
func (l *HostLock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	// Only our own record: a holder that was paused past its turn and
	// had its lock replaced (breakLock) must not erase the new holder's.
	if w, ok := l.h.ReadHolder(); ok && w.PID == l.who.PID && w.Since.Equal(l.who.Since) {
		os.Remove(l.h.holderPath())
	}
	flock.Unlock(l.f)
	l.f.Close()
	l.f = nil
}

// RunShell runs a hook under the lock: its shell inherits the locked
// descriptor, so the host stays locked while it runs even when this
// process dies, and the holder record names it.
func (l *HostLock) RunShell(ctx context.Context, dir, command string, env []string, timeout time.Duration) (drover.ExecResult, error) {
	if timeout <= 0 {
		timeout = drover.DefaultHookTimeout
	}
	return runShell(ctx, dir, command, env, timeout, l.f, func(pid int) {
		l.who.HookPID = pid
		l.who.HookStart = procStart(pid)
		l.who.Deadline = time.Now().Add(timeout).UTC()
		l.record()
	})
}

// stopped reports whether pid is stopped (SIGSTOP, a debugger): it runs
// nothing until continued.
func stopped(pid int) bool {
	st := procState(pid)
	return st == 'T' || st == 't'
}

// procStart is the start time of pid (field 22 of /proc/PID/stat, clock
// ticks since boot), 0 when unknown.
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// After "pid (comm)": field 3 (state) is the first, 22 the 20th.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	n, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// procState is the state letter of /proc/PID/stat, 0 when unknown.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2]
	}
	return 0
}

// alive reports whether pid is a live process (a zombie is not: an
// orphaned hook that exited may wait a while for its reaper).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	st := procState(pid)
	return st != 'Z' && st != 'X'
}

// HookHolder is who runs an exec request: the deploy and hook named in
// its environment (DROVER_DEPLOY, DROVER_HOOK), else "exec".
func HookHolder(env []string) Holder {
	w := Holder{Step: "exec", Hook: true}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "DROVER_DEPLOY="); ok {
			w.DeployID = v
		}
		if v, ok := strings.CutPrefix(e, "DROVER_HOOK="); ok && v != "" {
			w.Step = v
		}
	}
	return w
}
