// Package promfleet runs a real Prometheus server beside a local fleet, for
// end-to-end tests of canary analysis: it writes prometheus.yml with one
// static target per sample-service host (labelled host=<name>), starts
// `prometheus` as a child process on a free loopback port with its storage
// in a directory of the caller's, and stops it. It also drives traffic:
// Load is a bounded, paced load generator hitting every host, so the
// metrics have something to say.
//
// Prometheus is Debian's package `prometheus` (scripts/deps.sh installs
// it); Start fails naming the package when the binary is missing.
package promfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"drover/internal/freeport"
)

// Package is the Debian package that provides the prometheus binary.
const Package = "prometheus"

// Target is one host to scrape.
type Target struct {
	// Host is the value of the host label.
	Host string
	// Address is host:port of its /metrics.
	Address string
}

// Options describe a server to start.
type Options struct {
	// Dir holds prometheus.yml, the TSDB and the server's log.
	Dir     string
	Targets []Target
	// ScrapeInterval defaults to one second: tests decide in seconds.
	ScrapeInterval time.Duration
	// Binary is the prometheus executable; "" looks it up (Binary()).
	Binary string
}

// Server is a running Prometheus.
type Server struct {
	// URL is the base URL of its HTTP API, http://127.0.0.1:PORT.
	URL string
	dir string
	o   Options
	cmd *exec.Cmd
	// exited is closed when the process has been waited for.
	exited  chan struct{}
	waitErr error
	logf    *os.File
}

// Binary returns the path of the prometheus executable, or an error that
// names the Debian package to install.
func Binary() (string, error) {
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/prometheus", "/usr/local/bin/prometheus"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("promfleet: the prometheus binary is missing: install the Debian package %q (scripts/deps.sh does)", Package)
}

// Start writes the config and starts the server, returning once it
// answers /-/ready (bounded by ctx).
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("promfleet: Options.Dir is required")
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = time.Second
	}
	if o.Binary == "" {
		b, err := Binary()
		if err != nil {
			return nil, err
		}
		o.Binary = b
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("promfleet: %w", err)
	}
	s := &Server{dir: o.Dir, o: o, exited: make(chan struct{})}
	if err := s.writeConfig(o.Targets); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.URL = "http://" + addr
	s.logf, err = os.Create(filepath.Join(o.Dir, "prometheus.log"))
	if err != nil {
		return nil, fmt.Errorf("promfleet: %w", err)
	}
	// Not CommandContext: the server must outlive Start's ctx; Stop ends it.
	s.cmd = exec.Command(o.Binary,
		"--config.file="+s.configPath(),
		"--storage.tsdb.path="+filepath.Join(o.Dir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.logf, s.logf
	if err := s.cmd.Start(); err != nil {
		s.logf.Close()
		return nil, fmt.Errorf("promfleet: start %s: %w", o.Binary, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) configPath() string { return filepath.Join(s.dir, "prometheus.yml") }

// writeConfig writes prometheus.yml for targets. Labels and addresses are
// written as JSON strings, which YAML reads as double-quoted scalars.
func (s *Server) writeConfig(targets []Target) error {
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", prom(s.o.ScrapeInterval), prom(s.o.ScrapeInterval), prom(s.o.ScrapeInterval))
	b.WriteString("scrape_configs:\n  - job_name: hello\n    static_configs:\n")
	if len(targets) == 0 {
		b.WriteString("      []\n")
	}
	for _, t := range targets {
		fmt.Fprintf(&b, "      - targets: [%s]\n        labels: {host: %s}\n", q(t.Address), q(t.Host))
	}
	// Write-then-rename: a reload must never read half a file.
	tmp := s.configPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("promfleet: %w", err)
	}
	if err := os.Rename(tmp, s.configPath()); err != nil {
		return fmt.Errorf("promfleet: %w", err)
	}
	return nil
}

// prom formats a duration as Prometheus does ("1s", "500ms").
func prom(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func freePort() (int, error) {
	ports, err := freeport.Take(1)
	if err != nil {
		return 0, fmt.Errorf("promfleet: %w", err)
	}
	return ports[0], nil
}

var client = &http.Client{Timeout: 5 * time.Second}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("promfleet: prometheus exited before it was ready (%v): %s", s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("promfleet: prometheus not ready at %s: %w: %s", s.URL, ctx.Err(), s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "prometheus.log"))
	t := strings.TrimSpace(string(b))
	if len(t) > 2000 {
		t = "…" + t[len(t)-2000:]
	}
	return t
}

// SetTargets rewrites the scrape targets and reloads the server (SIGHUP).
// A target removed stops being scraped at once, and Prometheus marks its
// series stale: queries stop returning them — the "scrapes stopped" case
// canary analysis must fail closed on. It returns once the server runs
// the new set (checked through /api/v1/targets).
func (s *Server) SetTargets(ctx context.Context, targets []Target) error {
	if err := s.writeConfig(targets); err != nil {
		return err
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("promfleet: reload: %w", err)
	}
	want := map[string]bool{}
	for _, t := range targets {
		want[t.Host] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		got, err := s.activeHosts(ctx)
		if err == nil && len(got) == len(want) {
			same := true
			for h := range got {
				same = same && want[h]
			}
			if same {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promfleet: targets not reloaded (have %v): %w", got, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) activeHosts(ctx context.Context) (map[string]bool, error) {
	var r struct {
		Data struct {
			ActiveTargets []struct {
				Labels map[string]string `json:"labels"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := s.get(ctx, "/api/v1/targets?state=active", &r); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, t := range r.Data.ActiveTargets {
		out[t.Labels["host"]] = true
	}
	return out, nil
}

func (s *Server) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("promfleet: GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Query runs an instant PromQL query and returns each series' host label
// and value, for tests to wait on conditions.
func (s *Server) Query(ctx context.Context, query string) (map[string]string, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := s.get(ctx, "/api/v1/query?query="+url.QueryEscape(query), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("promfleet: query %q: %s", query, r.Error)
	}
	out := map[string]string{}
	for _, e := range r.Data.Result {
		if len(e.Value) == 2 {
			out[e.Metric["host"]], _ = e.Value[1].(string)
		}
	}
	return out, nil
}

// WaitScraped returns once every target has been scraped successfully
// (up == 1), bounded by ctx.
func (s *Server) WaitScraped(ctx context.Context, hosts []string) error {
	for {
		up, err := s.Query(ctx, `up{job="hello"}`)
		ok := err == nil
		for _, h := range hosts {
			ok = ok && up[h] == "1"
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promfleet: targets not all up (%v, %v): %w", up, err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after 10s) and waits for it.
// Safe to call more than once.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	if s.logf != nil {
		s.logf.Close()
		s.logf = nil
	}
}

// Load sends GET / to every URL, each every period, until stop is called;
// stop waits for the generator's goroutines. It is paced (one request per
// URL per period, never more) and bounded (each request times out after a
// second), so it cannot swamp a 2-core machine whatever the services do.
// Failed requests are counted, not retried: a host restarting refuses
// connections for a moment, and that is not what the test measures.
func Load(urls []string, period time.Duration) (stop func() (sent, failed int)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total, bad int
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(period)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				resp, err := c.Do(req)
				ok := err == nil
				if ok {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				total++
				if !ok {
					bad++
				}
				mu.Unlock()
			}
		}()
	}
	return func() (int, int) {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return total, bad
	}
}
