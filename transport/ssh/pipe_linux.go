package ssh

import (
	"os"

	"golang.org/x/sys/unix"
)

// widenPipe makes f, when it is a pipe, hold 1 MB instead of 64 KB. A
// serve session's stdin is sshd's pipe: what it cannot take yet, sshd
// keeps in a buffer it grows by copying, and a bundle's 512 KB in flight
// (BodyWindow) then fits in the pipe. Errors are ignored: not a pipe, or
// over the user's pipe quota, it works as before.
func widenPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
			unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
		}
	})
}
