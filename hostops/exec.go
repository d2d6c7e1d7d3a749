package hostops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"drover"
)

// OutputTail is how much of a command's combined output is kept: enough
// to show why it failed, bounded so a chatty hook cannot fill memory.
const OutputTail = 4 << 10

// WaitDelay is how long RunShell waits for the output pipe to close after
// the shell has exited. Hooks start services in the background; a service
// that inherits the pipe as its stdout would otherwise make us wait for it
// until it dies, i.e. forever. After WaitDelay the pipe is closed and the
// hook counts as finished (a service still writing to it then gets EPIPE,
// so hooks should redirect a daemon's output to a log).
const WaitDelay = time.Second

// RunShell runs command with `sh -c` in dir, with env as the environment
// (nil: this process's) and stdin empty, so nothing ever waits for a
// person. The command gets its own process group, and on timeout or
// cancellation the whole group is killed: a hook that started a child which
// hangs must not leave it running past its deadline.
//
// A command that ran and exited non-zero is an ExecResult with that exit
// code and a nil error (the caller decides whether that is a failure);
// running out of time is ETIMEOUT; failing to start is EFAILED.
func RunShell(ctx context.Context, dir, command string, env []string, timeout time.Duration) (drover.ExecResult, error) {
	if timeout <= 0 {
		timeout = drover.DefaultHookTimeout
	}
	return runShell(ctx, dir, command, env, timeout, nil, nil)
}

// runShell is RunShell; extra, when not nil, is given to the shell as fd
// 3 (the host lock, see lock.go), and started is told the shell's pid
// before the command runs: the shell waits for started to return.
func runShell(ctx context.Context, dir, command string, env []string, timeout time.Duration, extra *os.File, started func(pid int)) (drover.ExecResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	out := &tailBuffer{max: OutputTail}
	var gateR, gateW *os.File
	if started != nil {
		// The shell waits on a gate until started has recorded its pid:
		// a controller killed between starting a hook and recording it
		// would leave a hook no waiter knows of, so recovery would wait
		// out the whole hook timeout and then run beside it. Killed
		// before the gate opens, the controller's end of the pipe
		// closes, the read sees EOF and the hook never runs.
		var err error
		if gateR, gateW, err = os.Pipe(); err != nil {
			return drover.ExecResult{}, drover.Errorf(drover.EFAILED, "run command in %s: %v", dir, err)
		}
		defer gateW.Close()
		fd := 3
		if extra != nil {
			fd = 4
		}
		command = fmt.Sprintf("read -r _ <&%d || exit 125; exec %d<&-; %s", fd, fd, command)
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid is the process group: sh and everything it
		// started that did not leave the group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = WaitDelay
	if extra != nil {
		cmd.ExtraFiles = []*os.File{extra}
	}
	if gateR != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, gateR)
	}

	err := cmd.Start()
	if gateR != nil {
		gateR.Close()
	}
	if err == nil {
		if started != nil {
			started(cmd.Process.Pid)
			gateW.Write([]byte("\n"))
			gateW.Close()
		}
		err = cmd.Wait()
	}
	res := drover.ExecResult{Output: out.String()}
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return res, nil
	}
	if cerr := ctx.Err(); cerr != nil && cmd.ProcessState != nil {
		return res, &drover.Error{Code: drover.ETIMEOUT, Message: "command did not finish within " + timeout.String(), Err: tailErr(res.Output)}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.ExitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int(ws.Signal())
		}
		return res, nil
	}
	if ctx.Err() != nil {
		return res, drover.Errorf(drover.ETIMEOUT, "command did not finish within %s", timeout)
	}
	return res, drover.Errorf(drover.EFAILED, "run command in %s: %v", dir, err)
}

func tailErr(output string) error {
	if output == "" {
		return nil
	}
	return errors.New("output: " + output)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.cut {
		// Do not start in the middle of a UTF-8 sequence.
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	return string(b)
}
