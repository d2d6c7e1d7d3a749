package main

// End-to-end blue/green (strategy: blue-green) with a real HAProxy in front
// of four sample-service hosts, each running a blue and a green instance
// side by side, and a load generator going through HAProxy while drover
// switches colours. Assertions are about what clients saw, what HAProxy
// reports and which processes run — not about what drover says it did.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/internal/freeport"
	"drover/internal/haproxyfleet"
	"drover/internal/localfleet"
	"drover/rotation"
)

type bgFleet struct {
	*localfleet.Fleet
	proxy *haproxyfleet.Proxy
	green map[string]int // green port by host; blue is the fleet's port
}

// bgHooks start and stop one colour of the sample service: each colour
// keeps its own current link, pidfile and log under ROOT/colors/COLOUR,
// and runs from the release directory the hook runs in.
const (
	bgStart = `. ./lib/hello.sh && d={{.Root}}/colors/{{.Slot.Color}} && mkdir -p "$d" && ln -sfn "$PWD" "$d/current" && hello_stop "$d" && hello_start "$d"`
	bgStop  = `. ./lib/hello.sh && hello_stop {{.Root}}/colors/{{.Slot.Color}}`
)

func newBGFleet(t *testing.T) *bgFleet { t.Helper(); return newBGFleetN(t, 4) }

// newBGFleetN is newBGFleet with hosts hosts.
func newBGFleetN(t *testing.T, hosts int) *bgFleet {
	t.Helper()
	if err := haproxyfleet.Check(); err != nil {
		t.Fatal(err)
	}
	hx, err := os.MkdirTemp("", "bg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hx) })
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	bf := &bgFleet{Fleet: f, green: map[string]int{}}
	var servers []haproxyfleet.Server
	green, err := freeport.Take(len(f.Hosts))
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range f.Hosts {
		bf.green[h.Name] = green[i]
		servers = append(servers,
			haproxyfleet.Server{Name: h.Name + "-blue", Addr: fmt.Sprintf("127.0.0.1:%d", h.Port)},
			haproxyfleet.Server{Name: h.Name + "-green", Addr: fmt.Sprintf("127.0.0.1:%d", bf.green[h.Name])})
	}
	t.Cleanup(bf.stopAll)
	p, err := haproxyfleet.Start(context.Background(), haproxyfleet.Options{Dir: hx, Servers: servers, CheckInterval: 100 * time.Millisecond, CheckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	bf.proxy = p

	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("service: hello\ndeploy_root: /srv/hello\ntransport: local\nstate_dir: %s", q(f.StateDir))
	w("strategy: blue-green")
	w("blue_green:\n  ports: {blue: '{{.Host.Vars.port}}', green: '{{.Host.Vars.green_port}}'}")
	w("  start_idle: %s\n  stop_idle: %s\n  keep_old: 30m", q(bgStart), q(bgStop))
	w("hosts:")
	for _, h := range f.Hosts {
		w("  - {name: %s, address: %s, vars: {port: %d, green_port: %d}}", h.Name, q(h.Dir), h.Port, bf.green[h.Name])
	}
	w("groups:\n  - {name: canary, hosts: [h01], batch: 1, failure_limit: 0}\n  - {name: rest, hosts: ['h*'], batch: 2, failure_limit: 0}")
	w("config_files:\n  - {template: hello.conf.tmpl, dest: hello.conf, validate: 'bin/hello -check -config {{.Path}}'}")
	w("rotation:\n  haproxy: {socket: %s, backend: %s, server: '{{.Host.Name}}-{{.Slot.Color}}', drain_timeout: 5s, up_timeout: 10s}", q(p.Socket), p.Backend)
	w("checks:")
	w("  - {name: version, type: http, url: 'http://127.0.0.1:{{.Slot.Port}}/version', expect_status: 200, expect_body: '{{.Release.Version}}', timeout: 5s, interval: 100ms}")
	w("  - {name: health, type: http, url: 'http://127.0.0.1:{{.Slot.Port}}/health', expect_status: 200, timeout: 2s, interval: 100ms}")
	if err := os.WriteFile(f.Config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return bf
}

// release writes a release whose config listens on .Slot.Port.
func (bf *bgFleet) release(t *testing.T, version string, healthy bool) string {
	t.Helper()
	src := writeRelease(t, bf.Fleet, version, healthy)
	p := filepath.Join(src, "hello.conf.tmpl")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "{{.Host.Vars.port}}", "{{.Slot.Port}}")
	if s == string(b) {
		t.Fatalf("%s does not use {{.Host.Vars.port}}", p)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

func (bf *bgFleet) pid(t *testing.T, host, color string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bf.DeployRoot(host), "colors", color, "run", "hello.pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return false
		}
	}
	return syscall.Kill(pid, 0) == nil
}

func (bf *bgFleet) stopAll() {
	for _, h := range bf.Hosts {
		for _, c := range []string{"blue", "green"} {
			b, err := os.ReadFile(filepath.Join(bf.DeployRoot(h.Name), "colors", c, "run", "hello.pid"))
			if err != nil {
				continue
			}
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func (bf *bgFleet) state(t *testing.T, host string) drover.HostState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bf.DeployRoot(host), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st drover.HostState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// wantTraffic asserts every host's colour live in HAProxy is ready and UP
// and the other is drained, and that state.json agrees.
func (bf *bgFleet) wantTraffic(t *testing.T, live string, version string) {
	t.Helper()
	srvs, err := bf.proxy.Servers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]rotation.ServerStat{}
	for _, s := range srvs {
		byName[s.Server] = s
	}
	for _, h := range bf.Hosts {
		on, off := byName[h.Name+"-"+live], byName[h.Name+"-"+drover.OtherColor(live)]
		if on.Admin != rotation.StateReady || !on.Up() {
			t.Errorf("%s-%s should serve: admin %s, status %s", h.Name, live, on.Admin, on.Status)
		}
		if off.Admin == rotation.StateReady {
			t.Errorf("%s-%s should get no traffic: admin %s", h.Name, drover.OtherColor(live), off.Admin)
		}
		if st := bf.state(t, h.Name); st.Live != live || st.Version != version {
			t.Errorf("%s: state.json live %q version %q, want %s %s", h.Name, st.Live, st.Version, live, version)
		}
	}
}

func TestE2EBlueGreen(t *testing.T) {
	t.Parallel()
	bf := newBGFleet(t)
	v1, v2 := bf.release(t, "1.0.0", true), bf.release(t, "2.0.0", true)

	// First deploy: blue starts, nothing else ran.
	mustExit(t, deploy(t, bf.Fleet, v1), 0)
	bf.wantTraffic(t, "blue", "1.0.0")

	// Blue/green under load: v2 starts in green beside v1, traffic moves
	// only after green's checks passed, and blue keeps running.
	l := startLoad(t, bf.proxy.Frontend)
	time.Sleep(300 * time.Millisecond)
	bluePIDs := map[string]int{}
	for _, h := range bf.Hosts {
		bluePIDs[h.Name] = bf.pid(t, h.Name, "blue")
	}
	mustExit(t, deploy(t, bf.Fleet, v2), 0)
	bf.wantTraffic(t, "green", "2.0.0")
	for _, h := range bf.Hosts {
		if p := bf.pid(t, h.Name, "blue"); p != bluePIDs[h.Name] || !alive(p) {
			t.Errorf("%s: blue (v1) pid %d → %d alive=%v: the old colour must run until finalize", h.Name, bluePIDs[h.Name], p, alive(p))
		}
		if st := bf.state(t, h.Name); st.Idle == nil || !st.Idle.Running || st.Idle.Color != "blue" || st.Idle.Version != "1.0.0" {
			t.Errorf("%s: idle %+v, want blue 1.0.0 running", h.Name, st.Idle)
		}
	}

	// Not finalized: a new deploy is refused, nothing touched.
	r := deploy(t, bf.Fleet, bf.release(t, "2.1.0", true))
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "not finalized") || !strings.Contains(r.stderr, "drover finalize") {
		t.Errorf("refusal does not say why:\n%s", r)
	}

	// Instant switch back: traffic to blue, no restart.
	mustExit(t, runDrover(t, "rollback", "-c", bf.Config, "--yes"), 0)
	l.wantNoFailures(t, 100)
	bf.wantTraffic(t, "blue", "1.0.0")
	greenPIDs := map[string]int{}
	for _, h := range bf.Hosts {
		if p := bf.pid(t, h.Name, "blue"); p != bluePIDs[h.Name] || !alive(p) {
			t.Errorf("%s: blue pid %d → %d alive=%v: switching back must not restart", h.Name, bluePIDs[h.Name], p, alive(p))
		}
		greenPIDs[h.Name] = bf.pid(t, h.Name, "green")
		if !alive(greenPIDs[h.Name]) {
			t.Errorf("%s: green stopped before finalize", h.Name)
		}
	}

	// finalize stops the colour left by the rollback (green, v2).
	r = runDrover(t, "finalize", "-c", bf.Config, "--yes")
	mustExit(t, r, 0)
	for _, h := range bf.Hosts {
		if p := greenPIDs[h.Name]; alive(p) {
			t.Errorf("%s: green pid %d still runs after finalize", h.Name, p)
		}
		if st := bf.state(t, h.Name); st.Idle == nil || st.Idle.Running {
			t.Errorf("%s: idle %+v after finalize", h.Name, st.Idle)
		}
		if p := bf.pid(t, h.Name, "blue"); p != bluePIDs[h.Name] || !alive(p) {
			t.Errorf("%s: finalize touched the live colour", h.Name)
		}
	}

	// A release failing its checks on the idle colour never gets traffic:
	// the canary's green is stopped again and the fleet stays on blue.
	l = startLoad(t, bf.proxy.Frontend)
	r = deploy(t, bf.Fleet, bf.release(t, "3.0.0", false))
	l.wantNoFailures(t, 20)
	mustExit(t, r, 1)
	bf.wantTraffic(t, "blue", "1.0.0")
	if p := bf.pid(t, "h01", "green"); alive(p) {
		t.Errorf("h01: the failed green (pid %d) was not stopped", p)
	}
	for _, h := range bf.Hosts {
		if p := bf.pid(t, h.Name, "blue"); p != bluePIDs[h.Name] || !alive(p) {
			t.Errorf("%s: blue pid changed by a failed deploy", h.Name)
		}
	}
}
