package haproxyfleet

import "syscall"

// sysProcAttr kills HAProxy when the test process dies without calling
// Stop (a panic, a timeout): a proxy left behind would hold its port and
// socket for the next run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
