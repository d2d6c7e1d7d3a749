package hello

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Stats is GET /stats: what this process served at / (the path a load
// balancer sends users to; checks use /version and /health and are not
// counted). End-to-end tests of rotation read it, and the "stopped" log
// line, to prove a host out of rotation received no request.
type Stats struct {
	Version  string    `json:"version"`
	PID      int       `json:"pid"`
	Requests int64     `json:"requests"`
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
}

// requestCounter counts requests to /.
type requestCounter struct {
	mu          sync.Mutex
	n           int64
	first, last time.Time
}

func (c *requestCounter) add(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.first = t
	}
	c.n++
	c.last = t
}

func (c *requestCounter) stats(version string) Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Version: version, PID: os.Getpid(), Requests: c.n, First: c.first, Last: c.last}
}

// summary is the counts for the "stopped" log line, times in RFC 3339
// with nanoseconds so they compare with drover's event times.
func (c *requestCounter) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return "served 0 requests to /"
	}
	return fmt.Sprintf("served %d requests to / (first %s, last %s)", c.n, c.first.UTC().Format(time.RFC3339Nano), c.last.UTC().Format(time.RFC3339Nano))
}
