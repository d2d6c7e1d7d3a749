// Package freeport hands out loopback TCP ports for the services the
// test kits start (localfleet, sshfleet, etcdtest, promfleet) and that
// bind them later, often more than once (a restart binds the same port
// again).
//
// Asking the kernel for port 0 and closing again, the usual trick, is
// unsafe once many fleets run at once (parallel tests): the port comes
// from the ephemeral range, where the kernel also picks the local port of
// every outgoing connection and of every other "port 0" probe. While a
// service restarts, its port is free for a moment; another fleet's probe
// or a check's connection can take it, and the service then fails to
// bind, or another fleet is handed the same port. Here ports come from
// below the ephemeral range, which the kernel never picks on its own,
// and no port is handed out twice by one process.
package freeport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// low is the first port handed out; the range ends below the kernel's
// ephemeral range (32768 unless configured otherwise).
const low = 10000

var (
	mu    sync.Mutex
	next  int // 0 until the first call
	limit int
	taken = map[int]bool{}
)

// Take returns n distinct loopback TCP ports, each free a moment ago and
// never returned before by this process.
func Take(n int) ([]int, error) {
	mu.Lock()
	defer mu.Unlock()
	if next == 0 {
		limit = ephemeralLow()
		if limit-low < 1024 {
			return nil, fmt.Errorf("freeport: ports %d..%d below the ephemeral range are too few", low, limit-1)
		}
		// Processes running at once (go test runs packages in
		// parallel) start at different places of the range, so they
		// rarely probe each other's ports.
		next = low + (os.Getpid()*997)%(limit-low)
	}
	out := make([]int, 0, n)
	for tried := 0; len(out) < n; tried++ {
		if tried > limit-low {
			return nil, errors.New("freeport: no free port left below the ephemeral range")
		}
		p := next
		next++
		if next >= limit {
			next = low
		}
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // in use by someone else
		}
		ln.Close()
		taken[p] = true
		out = append(out, p)
	}
	return out, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > low {
				return n
			}
		}
	}
	return 32768
}
