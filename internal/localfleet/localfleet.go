// Package localfleet makes a fleet of "hosts" on this machine, for
// `drover demo` and for end-to-end tests.
//
// The model: with transport local a host is a directory, and its deploy
// root lives inside it (deploy_root /srv/hello on host h01 is
// <Dir>/hosts/h01/srv/hello). Each host runs the sample service of package
// examples/hello on a port of its own, handed to the config template as the
// host var `port`, so ten hosts are ten real processes on 127.0.0.1 that
// drover restarts, checks and rolls back exactly as it would remote ones.
//
// Layout under Options.Dir:
//
//	drover.yaml          the fleet's config (see New for what it holds)
//	hosts/<name>/        one directory per host (its address)
//	src/<version>/       release sources written by WriteRelease
//	state/               drover's lock, journal and history (StateDir)
//
// The services are started by the release's own bin/restart hook, detached
// from drover; Stop is how a demo or a test makes sure none outlives it.
package localfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"drover/examples/hello"
	"drover/internal/freeport"
)

// Defaults for Options.
const (
	DefaultService = "hello"
	// DefaultGroups is a canary of one host that may not fail, then the
	// rest in batches of a quarter, halting at the first failure in a
	// fleet under ten hosts per group (10% rounds down to 0).
	DefaultGroups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
  - name: default
    hosts: ["h*"]
    batch: "25%"
    failure_limit: "10%"
`
)

// Options describes a fleet to make.
type Options struct {
	// Dir is the base directory; hosts go under Dir/hosts/<name>, release
	// sources under Dir/src/<version>, the config at Dir/drover.yaml.
	Dir string
	// Hosts is how many hosts to make: 10 makes h01..h10.
	Hosts int
	// Service is the service name and the last element of deploy_root;
	// "" means DefaultService.
	Service string
	// Groups is raw YAML for the groups: either a whole `groups:` block or
	// just its list items. "" means DefaultGroups.
	Groups string
	// StateDir is drover's state directory; "" means Dir/state.
	StateDir string
	// ExtraYAML is appended to drover.yaml, for tests that add keys.
	ExtraYAML string
	// ExtraHooks are more entries of the hooks block (depool, repool,
	// before_promote, ...), one "key: value" per line; the block itself
	// is written here, so ExtraYAML cannot add to it.
	ExtraHooks string
	// ExtraChecks are more items of the checks list, raw YAML starting
	// with "- name: ..." (indented as the caller likes; it is re-indented
	// under checks:). The fleet's port, version and health checks come first.
	ExtraChecks string
}

// HostInfo is one host of a fleet.
type HostInfo struct {
	Name string
	// Dir is the host's directory: its address with transport local.
	Dir string
	// Port is where the host's service listens on 127.0.0.1.
	Port int
}

// Fleet is a local fleet made by New.
type Fleet struct {
	Dir string
	// Config is the path of drover.yaml.
	Config   string
	Service  string
	StateDir string
	Hosts    []HostInfo

	client *http.Client
}

// New makes the fleet described by o: a directory per host, a free port
// per host, and drover.yaml.
//
// Ports come from package freeport: below the kernel's ephemeral range and
// never handed out twice by this process, so fleets of parallel tests do
// not take each other's ports while a service restarts. Another program
// may still take one; the health checks would then report it, which is
// acceptable for a demo and tests.
func New(o Options) (*Fleet, error) {
	if o.Dir == "" {
		return nil, errors.New("localfleet: Options.Dir is required")
	}
	if o.Hosts < 1 || o.Hosts > 999 {
		return nil, fmt.Errorf("localfleet: Options.Hosts must be 1..999, got %d", o.Hosts)
	}
	if o.Service == "" {
		o.Service = DefaultService
	}
	if strings.ContainsAny(o.Service, "/\\ \t\n") || o.Service == "." || o.Service == ".." {
		return nil, fmt.Errorf("localfleet: service name %q must be one path element", o.Service)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("localfleet: %w", err)
	}
	f := &Fleet{
		Dir:      dir,
		Config:   filepath.Join(dir, "drover.yaml"),
		Service:  o.Service,
		StateDir: o.StateDir,
		// No keep-alive: a service is restarted on the same port between
		// calls, and a pooled connection to the old process would fail.
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	if f.StateDir == "" {
		f.StateDir = filepath.Join(dir, "state")
	} else if f.StateDir, err = filepath.Abs(f.StateDir); err != nil {
		return nil, fmt.Errorf("localfleet: %w", err)
	}

	ports, err := freePorts(o.Hosts)
	if err != nil {
		return nil, err
	}
	width := max(2, len(fmt.Sprint(o.Hosts)))
	for i := range o.Hosts {
		name := fmt.Sprintf("h%0*d", width, i+1)
		f.Hosts = append(f.Hosts, HostInfo{Name: name, Dir: filepath.Join(dir, "hosts", name), Port: ports[i]})
	}
	// The deploy roots are made up front, like a provisioned server's
	// /srv/<service>: drover deploys into it, it does not create machines.
	for _, h := range f.Hosts {
		if err := os.MkdirAll(f.DeployRoot(h.Name), 0o755); err != nil {
			return nil, fmt.Errorf("localfleet: %w", err)
		}
	}
	for _, d := range []string{filepath.Join(dir, "src"), f.StateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("localfleet: %w", err)
		}
	}
	if err := os.WriteFile(f.Config, []byte(f.yaml(o)), 0o644); err != nil {
		return nil, fmt.Errorf("localfleet: %w", err)
	}
	return f, nil
}

func freePorts(n int) ([]int, error) {
	ports, err := freeport.Take(n)
	if err != nil {
		return nil, fmt.Errorf("localfleet: %w", err)
	}
	return ports, nil
}

// yaml renders drover.yaml. Values that come from the file system are
// written as JSON strings, which YAML reads as double-quoted scalars, so a
// path with spaces or a colon cannot change the document's structure.
func (f *Fleet) yaml(o Options) string {
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# A local fleet: every host is a directory on this machine running the\n")
	w("# sample service on its own port. Written by drover's localfleet kit.\n")
	w("service: %s\n", q(f.Service))
	w("deploy_root: %s\n", q("/srv/"+f.Service))
	w("keep_releases: 5\n")
	w("transport: local\n")
	w("state_dir: %s\n", q(f.StateDir))
	w("hosts:\n")
	for _, h := range f.Hosts {
		w("  - name: %s\n", h.Name)
		w("    address: %s\n", q(h.Dir))
		w("    vars: {port: %d}\n", h.Port)
	}
	groups := o.Groups
	switch {
	case strings.TrimSpace(groups) == "":
		groups = DefaultGroups
	case !strings.HasPrefix(strings.TrimSpace(groups), "groups:"):
		groups = "groups:\n" + groups
	}
	b.WriteString(strings.TrimRight(groups, "\n") + "\n")
	w("config_files:\n")
	w("  - template: %s\n", hello.ConfigTemplate)
	w("    dest: %s\n", hello.ConfigFile)
	w("    validate: %s\n", q("bin/hello -check -config {{.Path}}"))
	w("hooks:\n")
	w("  restart: %s\n", q("bin/restart {{.Root}}"))
	w("  stop: %s\n", q("bin/stop {{.Root}}"))
	for _, l := range strings.Split(strings.TrimSpace(o.ExtraHooks), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			w("  %s\n", l)
		}
	}
	w("checks:\n")
	// Each check is retried until its timeout, so 10s is how long a
	// starting service may take, and 200ms keeps the demo brisk. The
	// checks run in order: health only runs once the new release answers
	// /version, so its timeout covers one answer of a running service, not
	// a start. 3s is seconds of room for that on a busy machine, and a
	// broken release (health answers 500 until the timeout) is judged in
	// 3s, not 10: the demo and many end-to-end tests wait for that verdict.
	checks := []struct{ name, typ, target, expect, timeout string }{
		{"port", "tcp", "127.0.0.1:{{.Host.Vars.port}}", "", "10s"},
		{"version", "http", "http://127.0.0.1:{{.Host.Vars.port}}/version", "{{.Release.Version}}", "10s"},
		{"health", "http", "http://127.0.0.1:{{.Host.Vars.port}}/health", "", "3s"},
	}
	for _, c := range checks {
		w("  - name: %s\n", c.name)
		w("    type: %s\n", c.typ)
		if c.typ == "tcp" {
			w("    address: %s\n", q(c.target))
		} else {
			w("    url: %s\n", q(c.target))
			w("    expect_status: 200\n")
			if c.expect != "" {
				w("    expect_body: %s\n", q(c.expect))
			}
		}
		w("    timeout: %s\n", c.timeout)
		w("    interval: 200ms\n")
	}
	if extra := strings.TrimRight(o.ExtraChecks, "\n"); strings.TrimSpace(extra) != "" {
		lines := strings.Split(strings.Trim(extra, "\n"), "\n")
		indent := len(lines[0]) - len(strings.TrimLeft(lines[0], " "))
		for _, l := range lines {
			w("  %s\n", l[min(indent, len(l)-len(strings.TrimLeft(l, " "))):])
		}
	}
	if o.ExtraYAML != "" {
		b.WriteString(strings.TrimRight(o.ExtraYAML, "\n") + "\n")
	}
	return b.String()
}

// Host returns the host called name.
func (f *Fleet) Host(name string) (HostInfo, bool) {
	for _, h := range f.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return HostInfo{}, false
}

// DeployRoot is where drover keeps host's releases on this machine:
// deploy_root /srv/<service> inside the host's directory.
func (f *Fleet) DeployRoot(host string) string {
	return filepath.Join(f.Dir, "hosts", host, "srv", f.Service)
}

// WriteRelease writes the sample service's release source for version to
// Dir/src/<version> (replacing what was there) and returns that directory.
// An unhealthy release starts but fails its /health check.
func (f *Fleet) WriteRelease(version string, healthy bool) (string, error) {
	if version == "" || strings.ContainsAny(version, `/\`) || version == "." || version == ".." {
		return "", fmt.Errorf("localfleet: version %q cannot name a directory", version)
	}
	dir := filepath.Join(f.Dir, "src", version)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("localfleet: %w", err)
	}
	if err := hello.WriteRelease(dir, version, healthy); err != nil {
		return "", fmt.Errorf("localfleet: %w", err)
	}
	return dir, nil
}

// Version asks host's service for its version (GET /version). Without a
// deadline in ctx the request is bounded by 2s.
func (f *Fleet) Version(ctx context.Context, host string) (string, error) {
	h, ok := f.Host(host)
	if !ok {
		return "", fmt.Errorf("localfleet: no host %q", host)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/version", h.Port)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("%s: GET %s: %w", host, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: GET %s: %s", host, url, resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// Versions asks every host at once and returns host → version, or
// "down: <reason>" for a host whose service does not answer.
func (f *Fleet) Versions(ctx context.Context) map[string]string {
	out := make(map[string]string, len(f.Hosts))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range f.Hosts {
		wg.Go(func() {
			v, err := f.Version(ctx, h.Name)
			if err != nil {
				v = "down: " + err.Error()
			}
			mu.Lock()
			out[h.Name] = v
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
