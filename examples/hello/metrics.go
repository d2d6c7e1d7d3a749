package hello

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file is GET /metrics, in the Prometheus text exposition format
// (version 0.0.4), written by hand so the sample service needs no
// dependency, and the error injection that gives canary analysis a real
// signal:
//
//	hello_http_requests_total{code="200"}     requests to / by status code
//	hello_http_request_duration_seconds_*     a latency histogram of /
//	process_resident_memory_bytes             resident memory (Linux: /proc)
//	hello_build_info{version="1.2.3"} 1       which release is serving
//
// With `error_rate = 0.2` in the config file, a share of requests to / is
// answered 500 "injected error". Deterministically — request n fails when
// floor(n·rate) > floor((n−1)·rate), so 0.2 fails every 5th — because a
// test deciding a deploy from the error ratio must not be flaky.

// latencyBuckets are the histogram's upper bounds in seconds.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// metrics counts the requests to /.
type metrics struct {
	version   string
	errorRate float64

	mu      sync.Mutex
	n       uint64 // requests to / so far, for the error injection
	byCode  map[int]uint64
	buckets []uint64
	sum     float64
	count   uint64
}

func newMetrics(version string, errorRate float64) *metrics {
	return &metrics{version: version, errorRate: errorRate, byCode: map[int]uint64{}, buckets: make([]uint64, len(latencyBuckets))}
}

// fails reports whether request n (1-based) is one of the injected errors.
func (m *metrics) fails(n uint64) bool {
	if m.errorRate <= 0 {
		return false
	}
	return math.Floor(float64(n)*m.errorRate) > math.Floor(float64(n-1)*m.errorRate)
}

// instrument serves / through next, or fails it on schedule, and records
// the status and the latency.
func (m *metrics) instrument(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.mu.Lock()
		m.n++
		fail := m.fails(m.n)
		m.mu.Unlock()
		code := http.StatusOK
		if fail {
			code = http.StatusInternalServerError
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(code)
			io.WriteString(w, "injected error\n")
		} else {
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			next(sw, r)
			code = sw.code
		}
		d := time.Since(start).Seconds()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.byCode[code]++
		m.count++
		m.sum += d
		for i, b := range latencyBuckets {
			if d <= b {
				m.buckets[i]++
			}
		}
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// ServeHTTP writes the exposition.
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, m.exposition())
}

func (m *metrics) exposition() string {
	m.mu.Lock()
	codes := make([]int, 0, len(m.byCode))
	for c := range m.byCode {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b strings.Builder
	b.WriteString("# HELP hello_http_requests_total Requests to / by HTTP status code.\n# TYPE hello_http_requests_total counter\n")
	if len(codes) == 0 {
		// A zero series from the start, so rate() has a first sample
		// before the first request rather than no series at all.
		b.WriteString("hello_http_requests_total{code=\"200\"} 0\n")
	}
	for _, c := range codes {
		fmt.Fprintf(&b, "hello_http_requests_total{code=\"%d\"} %d\n", c, m.byCode[c])
	}
	b.WriteString("# HELP hello_http_request_duration_seconds Latency of requests to /.\n# TYPE hello_http_request_duration_seconds histogram\n")
	for i, le := range latencyBuckets {
		fmt.Fprintf(&b, "hello_http_request_duration_seconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(le, 'g', -1, 64), m.buckets[i])
	}
	fmt.Fprintf(&b, "hello_http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.count)
	fmt.Fprintf(&b, "hello_http_request_duration_seconds_sum %s\n", strconv.FormatFloat(m.sum, 'g', -1, 64))
	fmt.Fprintf(&b, "hello_http_request_duration_seconds_count %d\n", m.count)
	m.mu.Unlock()
	b.WriteString("# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n")
	fmt.Fprintf(&b, "process_resident_memory_bytes %d\n", residentMemory())
	b.WriteString("# HELP hello_build_info The release serving.\n# TYPE hello_build_info gauge\n")
	fmt.Fprintf(&b, "hello_build_info{version=%q} 1\n", m.version)
	return b.String()
}

// residentMemory is the process's resident set from /proc/self/statm, or
// where there is no /proc, what the Go runtime holds from the OS.
func residentMemory() uint64 {
	if data, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 2 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				return pages * uint64(os.Getpagesize())
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Sys
}
