package runner

// This file holds the test doubles of the runner's tests: an in-memory
// fleet behind drover.Transport and drover.HostConn, a Store that records
// its writes in the same call log as the fleet's host calls (so a test can
// check that a step was journaled before the host saw it), an event
// recorder and a fake Sleep.
//
// The fleet keeps state.json semantics without a file system: Promote sets
// previous to the old current, Restore sets exactly the snapshot, Stage
// picks slots the way hostops does (<release-id>, or <id>+<8 hex of the
// config hash> when that slot is live with other config). Failures are
// scripted per host and operation: fail the next n calls with an error,
// take a host down (every call EUNREACHABLE), or hold a call at a gate
// until the test releases it.

import (
	"context"
	"encoding/json"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"drover"
	"drover/release"
)

// Operations recorded in the call log: host calls, then store writes.
const (
	opOpen     = "open"
	opState    = "state"
	opStage    = "stage"
	opPromote  = "promote"
	opRestore  = "restore"
	opExec     = "exec"
	opCheck    = "check"
	opReadFile = "readfile"
	opPrune    = "prune"
	opClose    = "close"

	opLock   = "store.lock"
	opBegin  = "store.begin"
	opAppend = "store.append"
	opFinish = "store.finish"
)

// call is one entry of the call log. Host calls are recorded when they are
// made, store writes once they are durable.
type call struct {
	Seq  int
	Host string
	Op   string
	// Arg is the slot (stage result, promote), the command (exec), the
	// check name (check), the path (readfile) or the deploy id (store).
	Arg string
	// Dir is the directory of an exec.
	Dir string
	// To is the snapshot of a restore.
	To drover.Snapshot
	// Entry is the journal entry of a store append.
	Entry drover.JournalEntry
	// Finish is the record of a store finish.
	Finish drover.FinishRecord
	// CtxErr is ctx.Err() when the host call was made.
	CtxErr error
}

// callLog is shared by the fleet and the recording store.
type callLog struct {
	mu    sync.Mutex
	calls []call
}

func (l *callLog) add(c call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.Seq = len(l.calls)
	l.calls = append(l.calls, c)
}

func (l *callLog) all() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// where returns the calls for which keep is true.
func (l *callLog) where(keep func(call) bool) []call {
	var out []call
	for _, c := range l.all() {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// ops returns the calls of host with one of the given operations.
func (l *callLog) ops(host string, ops ...string) []call {
	return l.where(func(c call) bool { return c.Host == host && slices.Contains(ops, c.Op) })
}

// mark returns the length of the log, so a test can look at what came after.
func (l *callLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// since returns the calls made from mark m on.
func (l *callLog) since(m int) []call { return l.all()[m:] }

// changesHost reports whether op may change a host.
func changesHost(op string) bool {
	switch op {
	case opStage, opPromote, opRestore, opExec, opPrune:
		return true
	}
	return false
}

// fakeSlot is one staged release directory.
type fakeSlot struct {
	meta  slotMeta
	files map[string][]byte
}

// fakeHost is one host's state.
type fakeHost struct {
	state drover.HostState
	slots map[string]fakeSlot
	down  bool
}

// fault fails the next n calls (n < 0: every call) with err.
type fault struct {
	n   int
	err error
}

// gate holds the first matching host call until the test releases it.
type gate struct {
	entered chan struct{}
	release chan struct{}
	// ctxErr receives ctx.Err() of the held call at the moment it goes on.
	ctxErr chan error
}

// Release lets the held call go on.
func (g *gate) Release() { close(g.release) }

// fakeFleet is an in-memory drover.Transport.
type fakeFleet struct {
	log *callLog
	// OnOpen, when set, may replace any function of a new connection.
	OnOpen func(c *fakeConn)

	mu     sync.Mutex
	hosts  map[string]*fakeHost
	faults map[string][]*fault
	gates  map[string]*gate
	tmpl   map[string]map[string][]byte // bundle path -> template files
}

var _ drover.Transport = (*fakeFleet)(nil)

func newFakeFleet(log *callLog, names ...string) *fakeFleet {
	f := &fakeFleet{log: log, hosts: map[string]*fakeHost{}, faults: map[string][]*fault{}, gates: map[string]*gate{}, tmpl: map[string]map[string][]byte{}}
	for _, n := range names {
		f.hosts[n] = &fakeHost{slots: map[string]fakeSlot{}}
	}
	return f
}

// Fail makes the next n calls of op on host fail with err; n < 0 fails
// every call from now on.
func (f *fakeFleet) Fail(host, op string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[host+"/"+op] = append(f.faults[host+"/"+op], &fault{n: n, err: err})
}

// SetDown takes a host down (every call and Open EUNREACHABLE) or up.
func (f *fakeFleet) SetDown(host string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts[host].down = down
}

// Hold makes the next call of op on host wait until the gate is released
// (or its ctx ends).
func (f *fakeFleet) Hold(host, op string) *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{}), ctxErr: make(chan error, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gates[host+"/"+op] = g
	return g
}

// State returns a copy of host's state.
func (f *fakeFleet) State(host string) drover.HostState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.hosts[host].state
	st.History = slices.Clone(st.History)
	return st
}

// SetState puts host on st, with the slots st names staged.
func (f *fakeFleet) SetState(host string, st drover.HostState, slots map[string]slotMeta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[host]
	h.state = st
	for s, m := range slots {
		h.slots[s] = fakeSlot{meta: m, files: map[string][]byte{}}
	}
}

func unreachable(host string) error {
	return drover.Errorf(drover.EUNREACHABLE, "connection refused").At("host " + host)
}

// enter records a host call and applies the script: a gate, a host that is
// down, a fault.
func (f *fakeFleet) enter(ctx context.Context, c call) error {
	c.CtxErr = ctx.Err()
	f.log.add(c)
	key := c.Host + "/" + c.Op
	f.mu.Lock()
	g := f.gates[key]
	delete(f.gates, key)
	f.mu.Unlock()
	if g != nil {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
		}
		g.ctxErr <- ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[c.Host]
	if h == nil || h.down {
		return unreachable(c.Host)
	}
	if fs := f.faults[key]; len(fs) > 0 {
		ft := fs[0]
		if ft.n > 0 {
			ft.n--
			if ft.n == 0 {
				f.faults[key] = fs[1:]
			}
		}
		return ft.err
	}
	return nil
}

// Open implements drover.Transport.
func (f *fakeFleet) Open(ctx context.Context, h drover.Host) (drover.HostConn, error) {
	if err := f.enter(ctx, call{Host: h.Name, Op: opOpen}); err != nil {
		return nil, err
	}
	name := h.Name
	c := &fakeConn{
		StateFunc: func(ctx context.Context) (drover.HostState, error) {
			if err := f.enter(ctx, call{Host: name, Op: opState}); err != nil {
				return drover.HostState{}, err
			}
			return f.State(name), nil
		},
		StageFunc: func(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
			return f.stage(ctx, name, req)
		},
		PromoteFunc: func(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error) {
			return f.promote(ctx, name, req)
		},
		RestoreFunc: func(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
			return f.restore(ctx, name, req)
		},
		ExecFunc: func(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error) {
			if err := f.enter(ctx, call{Host: name, Op: opExec, Arg: req.Command, Dir: req.Dir}); err != nil {
				return drover.ExecResult{}, err
			}
			return drover.ExecResult{}, nil
		},
		CheckFunc: func(ctx context.Context, c drover.CheckSpec) (drover.CheckResult, error) {
			if err := f.enter(ctx, call{Host: name, Op: opCheck, Arg: c.Name}); err != nil {
				return drover.CheckResult{}, err
			}
			return drover.CheckResult{Name: c.Name, OK: true, Attempts: 1}, nil
		},
		ReadFileFunc: func(ctx context.Context, p string) ([]byte, error) {
			return f.readFile(ctx, name, p)
		},
		PruneFunc: func(ctx context.Context, keep int, protect ...string) ([]string, error) {
			return nil, f.enter(ctx, call{Host: name, Op: opPrune})
		},
		CloseFunc: func() error {
			f.log.add(call{Host: name, Op: opClose})
			return nil
		},
	}
	if f.OnOpen != nil {
		f.OnOpen(c)
	}
	return c, nil
}

// templates returns the template files of a bundle, read once.
func (f *fakeFleet) templates(rel *drover.Release, names []string) (map[string][]byte, error) {
	f.mu.Lock()
	t, ok := f.tmpl[rel.BundlePath]
	f.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := release.ReadFiles(rel, names)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.tmpl[rel.BundlePath] = t
	f.mu.Unlock()
	return t, nil
}

// stage renders the config the way hostops does and picks a slot by the
// same rules.
func (f *fakeFleet) stage(ctx context.Context, host string, req drover.StageRequest) (drover.StageResult, error) {
	if err := f.enter(ctx, call{Host: host, Op: opStage, Arg: req.Release.ID()}); err != nil {
		return drover.StageResult{}, err
	}
	var names []string
	for _, c := range req.ConfigFiles {
		names = append(names, c.Template)
	}
	t, err := f.templates(req.Release, names)
	if err != nil {
		return drover.StageResult{}, err
	}
	files, err := drover.RenderConfigFiles(req.ConfigFiles, func(p string) ([]byte, error) {
		b, ok := t[path.Clean(p)]
		if !ok {
			return nil, drover.Errorf(drover.EINVALID, "no template %s", p)
		}
		return b, nil
	}, req.Data)
	if err != nil {
		return drover.StageResult{}, err
	}
	hash := drover.ConfigHash(files)
	id := req.Release.ID()

	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[host]
	live := map[string]bool{h.state.Current: true, h.state.Previous: true}
	for _, slot := range []string{id, id + "+" + hash[:8]} {
		s, exists := h.slots[slot]
		if exists && s.meta.Release == id && s.meta.ConfigHash == hash {
			return drover.StageResult{Slot: slot, ConfigHash: hash, Reused: true}, nil
		}
		if !exists || !live[slot] {
			fs := map[string][]byte{}
			for _, rf := range files {
				fs[rf.Dest] = rf.Content
			}
			h.slots[slot] = fakeSlot{meta: slotMeta{Release: id, Version: req.Release.Version(), ConfigHash: hash}, files: fs}
			return drover.StageResult{Slot: slot, ConfigHash: hash}, nil
		}
	}
	return drover.StageResult{}, drover.Errorf(drover.EFAILED, "both slots live")
}

func (f *fakeFleet) promote(ctx context.Context, host string, req drover.PromoteRequest) (drover.HostState, error) {
	if err := f.enter(ctx, call{Host: host, Op: opPromote, Arg: req.Slot}); err != nil {
		return drover.HostState{}, err
	}
	f.mu.Lock()
	h := f.hosts[host]
	if _, ok := h.slots[req.Slot]; !ok {
		f.mu.Unlock()
		return drover.HostState{}, drover.Errorf(drover.EFAILED, "promote: releases/%s does not exist", req.Slot)
	}
	if h.state.Current != req.Slot {
		st := &h.state
		st.History = append(st.History, drover.HostHistoryEntry{Action: drover.ActionPromote, From: st.Current, To: req.Slot, Version: req.Version, DeployID: req.DeployID, At: req.At})
		st.Previous, st.Current = st.Current, req.Slot
		st.Release, st.Version, st.ConfigHash = req.Release, req.Version, req.ConfigHash
		st.DeployedAt, st.DeployID = req.At, req.DeployID
	}
	f.mu.Unlock()
	return f.State(host), nil
}

func (f *fakeFleet) restore(ctx context.Context, host string, req drover.RestoreRequest) (drover.HostState, error) {
	if err := f.enter(ctx, call{Host: host, Op: opRestore, To: req.To}); err != nil {
		return drover.HostState{}, err
	}
	f.mu.Lock()
	h := f.hosts[host]
	if _, ok := h.slots[req.To.Current]; req.To.Current != "" && !ok {
		f.mu.Unlock()
		return drover.HostState{}, drover.Errorf(drover.EFAILED, "restore: releases/%s is gone", req.To.Current)
	}
	st := &h.state
	st.History = append(st.History, drover.HostHistoryEntry{Action: req.Action, From: st.Current, To: req.To.Current, Version: req.To.Version, DeployID: req.DeployID, At: req.At, Reason: req.Reason})
	st.Current, st.Previous = req.To.Current, req.To.Previous
	st.Release, st.Version, st.ConfigHash = req.To.Release, req.To.Version, req.To.ConfigHash
	st.DeployedAt, st.DeployID = req.At, req.DeployID
	f.mu.Unlock()
	return f.State(host), nil
}

// readFile serves releases/<slot>/<file> and releases/<slot>/.drover-slot.json.
func (f *fakeFleet) readFile(ctx context.Context, host, p string) ([]byte, error) {
	if err := f.enter(ctx, call{Host: host, Op: opReadFile, Arg: p}); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := strings.SplitN(path.Clean(p), "/", 3)
	if len(parts) == 3 && parts[0] == "releases" {
		if s, ok := f.hosts[host].slots[parts[1]]; ok {
			if parts[2] == ".drover-slot.json" {
				return json.Marshal(s.meta)
			}
			if b, ok := s.files[parts[2]]; ok {
				return b, nil
			}
		}
	}
	return nil, drover.Errorf(drover.ENOTFOUND, "%s: no such file", p)
}

// fakeConn is a drover.HostConn whose every method is a function field.
type fakeConn struct {
	StateFunc    func(ctx context.Context) (drover.HostState, error)
	StageFunc    func(ctx context.Context, req drover.StageRequest) (drover.StageResult, error)
	PromoteFunc  func(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error)
	RestoreFunc  func(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error)
	ExecFunc     func(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error)
	CheckFunc    func(ctx context.Context, c drover.CheckSpec) (drover.CheckResult, error)
	ReadFileFunc func(ctx context.Context, path string) ([]byte, error)
	PruneFunc    func(ctx context.Context, keep int, protect ...string) ([]string, error)
	CloseFunc    func() error
}

var _ drover.HostConn = (*fakeConn)(nil)

func (c *fakeConn) State(ctx context.Context) (drover.HostState, error) { return c.StateFunc(ctx) }
func (c *fakeConn) Stage(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	return c.StageFunc(ctx, req)
}
func (c *fakeConn) Promote(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error) {
	return c.PromoteFunc(ctx, req)
}
func (c *fakeConn) Restore(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
	return c.RestoreFunc(ctx, req)
}
func (c *fakeConn) Exec(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error) {
	return c.ExecFunc(ctx, req)
}
func (c *fakeConn) Check(ctx context.Context, cs drover.CheckSpec) (drover.CheckResult, error) {
	return c.CheckFunc(ctx, cs)
}
func (c *fakeConn) ReadFile(ctx context.Context, p string) ([]byte, error) {
	return c.ReadFileFunc(ctx, p)
}
func (c *fakeConn) Prune(ctx context.Context, keep int, protect ...string) ([]string, error) {
	return c.PruneFunc(ctx, keep, protect...)
}
func (c *fakeConn) Close() error { return c.CloseFunc() }

// recStore is a drover.Store that records its writes in the call log once
// the store they wrap has made them durable.
type recStore struct {
	drover.Store
	log *callLog
}

func (s *recStore) Lock(ctx context.Context, key string, owner drover.LockOwner) (drover.Lock, error) {
	l, err := s.Store.Lock(ctx, key, owner)
	if err == nil {
		s.log.add(call{Op: opLock, Arg: key})
	}
	return l, err
}

func (s *recStore) Begin(ctx context.Context, d drover.DeployRecord) error {
	err := s.Store.Begin(ctx, d)
	if err == nil {
		s.log.add(call{Op: opBegin, Arg: d.ID})
	}
	return err
}

func (s *recStore) Append(ctx context.Context, id string, e drover.JournalEntry) error {
	err := s.Store.Append(ctx, id, e)
	if err == nil {
		s.log.add(call{Op: opAppend, Arg: id, Host: e.Host, Entry: e})
	}
	return err
}

func (s *recStore) Finish(ctx context.Context, id string, r drover.FinishRecord) error {
	err := s.Store.Finish(ctx, id, r)
	if err == nil {
		s.log.add(call{Op: opFinish, Arg: id, Finish: r})
	}
	return err
}

// eventRec records events and lets a test wait for one kind.
type eventRec struct {
	mu      sync.Mutex
	events  []drover.Event
	waiters map[string]chan struct{}
}

func (e *eventRec) Emit(ev drover.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
	if ch, ok := e.waiters[ev.Kind]; ok {
		close(ch)
		delete(e.waiters, ev.Kind)
	}
}

// next returns a channel closed at the next event of kind.
func (e *eventRec) next(kind string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.waiters == nil {
		e.waiters = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	e.waiters[kind] = ch
	return ch
}

func (e *eventRec) all() []drover.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.events)
}

// sleepRec is a Runner.Sleep that records what it was asked and returns
// at once.
type sleepRec struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepRec) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRec) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

// waitFor fails the test when ch is not closed within a minute: a guard
// against a hung runner, not a speed assertion.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}
