package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"drover"
	"drover/release"
	"drover/store/file"
)

// env is one runner on a fake fleet with a file store in t.TempDir().
type env struct {
	t      *testing.T
	spec   *drover.Spec
	log    *callLog
	fleet  *fakeFleet
	store  *recStore
	events *eventRec
	sleeps *sleepRec
	r      *Runner
}

// testSpec is n hosts h01.. with a canary h01 (batch 1, limit 0) and the
// rest in a default group (batch 2, limit 1). Every step makes a host call:
// depool, repool and restart hooks and one check are set.
func testSpec(n int) *drover.Spec {
	s := &drover.Spec{
		Source: "drover.yaml", Service: "hello", DeployRoot: "/srv/hello", KeepReleases: 5, Transport: "fake",
		ConfigFiles:      []drover.ConfigFile{{Template: "app.conf.tmpl", Dest: "app.conf"}},
		Hooks:            drover.Hooks{Depool: "lb out {{.Host.Name}}", Repool: "lb in {{.Host.Name}}", Restart: "bin/restart {{.Root}}", Stop: "bin/stop {{.Root}}"},
		Checks:           []drover.CheckSpec{{Name: "up", Type: "command", Command: "bin/check {{.Release.Version}}", Timeout: time.Second}},
		StageParallelism: 4, StepTimeout: 30 * time.Second, StageRetries: 2, Seed: 7,
	}
	canary := drover.Group{Name: "canary", Batch: 1, FailureLimit: 0}
	def := drover.Group{Name: "default", Batch: 2, FailureLimit: 1}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("h%02d", i)
		h := drover.Host{Name: name, Address: "/fleet/" + name, DeployRoot: "/srv/hello", Vars: map[string]any{"port": uint64(18000 + i)}}
		if i == 1 {
			h.Group = canary.Name
			canary.Hosts = append(canary.Hosts, name)
		} else {
			h.Group = def.Name
			def.Hosts = append(def.Hosts, name)
		}
		s.Hosts = append(s.Hosts, h)
	}
	s.Groups = []drover.Group{canary}
	if n > 1 {
		s.Groups = append(s.Groups, def)
	}
	return s
}

func newEnv(t *testing.T, spec *drover.Spec) *env {
	t.Helper()
	st, err := file.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	log := &callLog{}
	var names []string
	for _, h := range spec.Hosts {
		names = append(names, h.Name)
	}
	e := &env{t: t, spec: spec, log: log, fleet: newFakeFleet(log, names...), store: &recStore{Store: st, log: log}, events: &eventRec{}, sleeps: &sleepRec{}}
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	var idMu sync.Mutex
	ids := 0
	e.r = &Runner{
		Spec: spec, Transport: e.fleet, Store: e.store, Events: e.events, Now: clock.Now, Sleep: e.sleeps.Sleep,
		NewID: func() string {
			idMu.Lock()
			defer idMu.Unlock()
			ids++
			return fmt.Sprintf("d-%04d", ids)
		},
	}
	return e
}

// fakeClock advances a millisecond at every reading, so durations are
// positive and runs replay.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// mkRelease builds a release bundle of version v whose config template
// renders the version and the host's port.
func mkRelease(t *testing.T, v string) *drover.Release {
	t.Helper()
	src := t.TempDir()
	files := map[string]string{
		"app.conf.tmpl": "version = {{.Release.Version}}\nport = {{.Host.Vars.port}}\n",
		"bin/app":       "#!/bin/sh\necho " + v + "\n",
	}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := release.Build(context.Background(), src, release.BuildOptions{Service: "hello", Version: v, Out: filepath.Join(t.TempDir(), "hello-"+v+".tar.gz"), Now: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// deploy runs a deploy that must not return an error.
func (e *env) deploy(ctx context.Context, o DeployOptions) *Outcome {
	e.t.Helper()
	out, err := e.r.Deploy(ctx, o)
	if err != nil {
		e.t.Fatalf("deploy %s: %v", o.Release.Version(), err)
	}
	return out
}

// mustDeploy deploys rel and wants exit 0.
func (e *env) mustDeploy(rel *drover.Release, limit string) *Outcome {
	e.t.Helper()
	out := e.deploy(context.Background(), DeployOptions{Release: rel, Limit: limit})
	if out.ExitCode != 0 {
		e.t.Fatalf("deploy %s: exit %d: %s", rel.Version(), out.ExitCode, out.Summary)
	}
	return out
}

// states returns every host's state.
func (e *env) states() map[string]drover.HostState {
	out := map[string]drover.HostState{}
	for _, h := range e.spec.Hosts {
		out[h.Name] = e.fleet.State(h.Name)
	}
	return out
}

// wantSnapshots asserts every host has exactly the snapshot it had in want.
func (e *env) wantSnapshots(want map[string]drover.HostState) {
	e.t.Helper()
	for name, w := range want {
		if got := e.fleet.State(name).Snapshot(); got != w.Snapshot() {
			e.t.Errorf("%s: state %+v, want %+v", name, got, w.Snapshot())
		}
	}
}

// journal returns a deploy's journal.
func (e *env) journal(id string) []drover.JournalEntry {
	e.t.Helper()
	j, err := e.store.Journal(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// record returns a deploy's record.
func (e *env) record(id string) drover.DeployRecord {
	e.t.Helper()
	d, err := e.store.Deploy(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func hostNames(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("h%02d", i))
	}
	return out
}
