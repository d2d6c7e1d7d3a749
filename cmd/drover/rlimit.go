package main

import (
	"fmt"
	"syscall"
)

// fdReserve is the open files drover needs besides one SSH connection
// per host: stdio, the store and its journal, the lock, log files,
// webhooks, a relay's listeners.
const fdReserve = 64

// raiseFileLimit raises this process's open-file soft limit to its hard
// limit and returns both. An SSH deploy keeps one connection (one file
// descriptor) per host open for the whole run: with the common soft limit
// of 1,024, a fleet of a thousand hosts failed with "too many open files"
// half-way through the survey although the hard limit allowed far more.
// (Go's runtime raises it as well since 1.19; doing it here keeps that a
// decision of drover's, tested, and gives the numbers for the warning.)
func raiseFileLimit() (soft, hard uint64) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0
	}
	if l.Cur < l.Max {
		raised := l
		raised.Cur = l.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			l = raised
		}
	}
	return uint64(l.Cur), uint64(l.Max) // int64 on the BSDs
}

// fileLimitWarning says, when an SSH fleet of hosts needs more open
// files than the soft limit allows, how many and what to do; "" when it
// fits or the limit is unknown.
func fileLimitWarning(hosts int, soft, hard uint64) string {
	need := uint64(hosts) + fdReserve
	if soft == 0 || need <= soft {
		return ""
	}
	return fmt.Sprintf("drover: warning: %d hosts over ssh need about %d open files (one connection per host), but the limit is %d (hard limit %d): hosts past it will fail with \"too many open files\"; raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or deploy with --limit in parts", hosts, need, soft, hard)
}
