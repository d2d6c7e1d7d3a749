//go:build unix

package localfleet

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"drover/examples/hello"
)

// Stop kills every sample-service process of the fleet: TERM, up to 5s
// for a graceful shutdown, then KILL. It is best effort and never fails:
// it runs when a demo ends or a test cleans up, when there is nobody left
// to act on an error.
//
// The services were started detached (setsid) by bin/restart precisely so
// that they outlive drover's hooks; that also means nothing else will stop
// them when a demo is interrupted or a test fails half way.
func (f *Fleet) Stop() {
	pids := f.Processes()
	if len(pids) == 0 {
		return
	}
	signalAll(pids, syscall.SIGTERM)
	pids = waitGone(pids, 5*time.Second)
	if len(pids) > 0 {
		signalAll(pids, syscall.SIGKILL)
		waitGone(pids, 2*time.Second)
	}
	for _, h := range f.Hosts {
		p := filepath.Join(f.DeployRoot(h.Name), filepath.FromSlash(hello.PIDFile))
		if pid := readPID(p); pid > 0 && !alive(pid) {
			os.Remove(p)
		}
	}
}

// Processes returns the pids of the fleet's running sample-service
// processes: the live ones named in the hosts' pidfiles and, where /proc
// exists, any other sample-service process whose command line points into
// the fleet's directory (its pidfile lost or overwritten).
func (f *Fleet) Processes() []int {
	var pids []int
	for _, h := range f.Hosts {
		pid := readPID(filepath.Join(f.DeployRoot(h.Name), filepath.FromSlash(hello.PIDFile)))
		if pid > 0 && alive(pid) && isService(pid) {
			pids = append(pids, pid)
		}
	}
	pids = append(pids, f.scanProc()...)
	slices.Sort(pids)
	return slices.Compact(pids)
}

func (f *Fleet) scanProc() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	hostsDir := filepath.Join(f.Dir, "hosts")
	// The scripts run the service from the resolved release directory.
	if real, err := filepath.EvalSymlinks(hostsDir); err == nil {
		hostsDir = real
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("sample-service")) ||
			!bytes.Contains(cmdline, []byte(hostsDir+string(filepath.Separator))) {
			continue
		}
		if alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	return pid
}

// signalAll signals each process and, when it leads its own process group
// (setsid in bin/restart makes it so), the whole group, so nothing the
// service started survives it.
func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			syscall.Kill(-pid, sig)
		}
		syscall.Kill(pid, sig)
	}
}

// waitGone waits until every pid has exited or d has passed, and returns
// those still alive.
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		pids = slices.DeleteFunc(pids, func(pid int) bool { return !alive(pid) })
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid is running. A zombie counts as gone: the
// services are re-parented when the hook that started them exits, and the
// adopting process may be slow to reap them (or never, in some containers).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !procExists()
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// isService reports whether pid is a sample-service process. A pidfile can
// outlive its process and the number be reused; an unrelated process must
// never be signalled. Without /proc the pidfile is trusted.
func isService(pid int) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return !procExists()
	}
	return bytes.Contains(cmdline, []byte("sample-service"))
}

func procExists() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}
