// Package sim is an in-memory drover.Transport: a fleet of simulated hosts
// that keep state.json semantics (stage, promote, restore, prune, the
// history of the current link) without a file system or a network, and
// take a configurable, jittered time for every operation and fail at
// configurable rates. It exists to measure the controller — the runner, the
// decision core and the store — at fleet sizes no test machine can host for
// real (bench/sim runs 1,000 and 10,000 hosts in one process), and to test
// failure handling at scale.
//
// Everything random is reproducible: a latency's jitter and whether a call
// fails are drawn from a hash of the seed, the host, the operation and how
// many times the host made that operation before, never from a shared
// generator. So the same seed gives every host the same latencies and the
// same failures however the goroutines of a run interleave.
//
// Hosts behave the way package hostops does on a real host: Stage renders
// the config files from the release bundle (read once per bundle) and picks
// the slot <release-id>, or <release-id>+<8 hex of the config hash> when the
// plain slot is live with other config; Promote moves the old current to
// previous; Restore puts back exactly the snapshot; Prune keeps current,
// previous and protected slots and the newest others up to keep. Exec runs
// no command: it takes the latency of the command's first word (see
// Config.Ops) and exits 0, or 1 when it fails. Check passes, or fails with
// OK false, the same way.
package sim

import (
	"context"
	"encoding/json"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"drover"
	"drover/release"
)

// Operations, as keys of Config.Ops and Record.Op. An exec is keyed
// "exec:<first word of the command>" and falls back to OpExec; a check is
// keyed "check:<name>" and falls back to OpCheck.
const (
	OpOpen     = "open"
	OpState    = "state"
	OpStage    = "stage"
	OpPromote  = "promote"
	OpRestore  = "restore"
	OpExec     = "exec"
	OpCheck    = "check"
	OpReadFile = "readfile"
	OpPrune    = "prune"
)

// Op is how one operation behaves.
type Op struct {
	// Latency is the operation's simulated duration before jitter.
	Latency time.Duration
	// Jitter spreads Latency uniformly over ±Jitter×Latency (0.2: ±20%).
	Jitter float64
	// FailRate is the probability that a call fails (an exec exits 1, a
	// check reports OK false, anything else returns EFAILED).
	FailRate float64
	// UnreachableRate is the probability that a call finds the host
	// unreachable (EUNREACHABLE).
	UnreachableRate float64
}

// Config configures a Fleet.
type Config struct {
	// Seed makes latencies and failures reproducible.
	Seed uint64
	// Ops by operation key (see OpOpen ... and the exec and check keys).
	// A missing key takes no time and never fails.
	Ops map[string]Op
	// Scale multiplies every latency slept (0 means 1): 0.1 runs ten
	// times faster than the simulated times, which Record keeps unscaled.
	Scale float64
	// Record keeps every call's simulated duration per host (Records).
	Record bool
}

// Record is one call a host answered.
type Record struct {
	Op string
	// Sim is the simulated duration (jitter applied, Scale not).
	Sim    time.Duration
	Failed bool
}

// Fleet is a drover.Transport over simulated hosts.
type Fleet struct {
	cfg Config

	mu    sync.Mutex
	hosts map[string]*Host

	tmplMu sync.Mutex
	tmpl   map[string]map[string][]byte // bundle path -> template files

	// keys interns the operation keys made per call ("exec:" + the
	// command's first word): each Record keeps its key, and 10,000 hosts
	// keeping their own copies was the simulator's memory, not drover's.
	keys sync.Map
}

var _ drover.Transport = (*Fleet)(nil)

// New returns a fleet whose hosts are created, never deployed to, on first
// use.
func New(cfg Config) *Fleet {
	if cfg.Scale <= 0 {
		cfg.Scale = 1
	}
	return &Fleet{cfg: cfg, hosts: map[string]*Host{}, tmpl: map[string]map[string][]byte{}}
}

// Host returns the simulated host name, creating it when new.
func (f *Fleet) Host(name string) *Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[name]
	if h == nil {
		h = &Host{name: name, fleet: f, slots: map[string]*slot{}, hash: hashString(name)}
		f.hosts[name] = h
	}
	return h
}

// Open implements drover.Transport.
func (f *Fleet) Open(ctx context.Context, h drover.Host) (drover.HostConn, error) {
	host := f.Host(h.Name)
	if err := host.op(ctx, OpOpen, OpOpen); err != nil {
		return nil, err
	}
	return &conn{h: host, root: h.DeployRoot}, nil
}

// Records returns every host's calls, by host name.
func (f *Fleet) Records() map[string][]Record {
	f.mu.Lock()
	hosts := make([]*Host, 0, len(f.hosts))
	for _, h := range f.hosts {
		hosts = append(hosts, h)
	}
	f.mu.Unlock()
	out := make(map[string][]Record, len(hosts))
	for _, h := range hosts {
		h.mu.Lock()
		out[h.name] = append([]Record(nil), h.records...)
		h.mu.Unlock()
	}
	return out
}

// ResetRecords forgets every host's records.
func (f *Fleet) ResetRecords() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.hosts {
		h.mu.Lock()
		h.records = nil
		h.mu.Unlock()
	}
}

// slot is one staged release directory.
type slot struct {
	meta  slotMeta
	seq   uint64 // staging order, for prune
	files []drover.RenderedFile
}

// file returns the content of the slot's file dest.
func (s *slot) file(dest string) ([]byte, bool) {
	for _, f := range s.files {
		if f.Dest == dest {
			return f.Content, true
		}
	}
	return nil, false
}

// slotMeta is releases/<slot>/.drover-slot.json, as hostops writes it.
type slotMeta struct {
	Release    string    `json:"release"`
	Version    string    `json:"version"`
	ConfigHash string    `json:"config_hash"`
	StagedAt   time.Time `json:"staged_at"`
}

// Host is one simulated host.
type Host struct {
	name  string
	fleet *Fleet
	hash  uint64

	mu      sync.Mutex
	state   drover.HostState
	slots   map[string]*slot
	seq     uint64
	down    bool
	calls   []callCount // calls per op key: the draw index
	records []Record
}

// callCount is how many calls a host made of one op key. A host makes a
// dozen kinds of call: a slice costs a tenth of a map's memory, which,
// times 10,000 hosts, the process measured by bench/sim holds beside
// drover.
type callCount struct {
	key string
	n   uint64
}

// draw returns the index of this call of key and counts it. h.mu is held.
func (h *Host) draw(key string) uint64 {
	for i := range h.calls {
		if h.calls[i].key == key {
			h.calls[i].n++
			return h.calls[i].n - 1
		}
	}
	h.calls = append(h.calls, callCount{key: key, n: 1})
	return 0
}

// key interns an operation key.
func (f *Fleet) key(k string) string {
	if v, ok := f.keys.Load(k); ok {
		return v.(string)
	}
	v, _ := f.keys.LoadOrStore(k, k)
	return v.(string)
}

// State returns a copy of the host's state.json.
func (h *Host) State() drover.HostState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stateLocked()
}

func (h *Host) stateLocked() drover.HostState {
	st := h.state
	st.History = append([]drover.HostHistoryEntry(nil), st.History...)
	return st
}

// Slots returns the host's staged slots, sorted.
func (h *Host) Slots() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.slots))
	for s := range h.slots {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// SetDown makes every call to the host, Open included, EUNREACHABLE.
func (h *Host) SetDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
}

// op takes the time of one call keyed key (falling back to the config of
// fallback) and decides whether it fails. It returns EUNREACHABLE for a
// host that is down or an unreachable draw, ETIMEOUT when ctx ends first,
// errFailed for a failure draw, nil otherwise.
func (h *Host) op(ctx context.Context, key, fallback string) error {
	return h.opWithin(ctx, key, fallback, 0)
}

// opWithin is op for a call with a timeout of its own (limit > 0; an
// exec's or a check's): past it the call ends as it would at ctx's
// deadline. It is not a context.WithTimeout of its own: that is a second
// context and timer per call, the simulator's work, which bench/sim
// would charge to drover.
func (h *Host) opWithin(ctx context.Context, key, fallback string, limit time.Duration) error {
	// The waiting frame is kept small (the draw is its own call): a
	// staging host's goroutine waits here, and with 10,000 hosts staging
	// at once every byte of its stack is 10 KB of the controller's
	// memory (bench/sim, TestStagingStacks).
	d, outcome := h.drawOp(key, fallback)
	if outcome == opDown {
		return unreachable(h.name)
	}
	if err := sleep(ctx, d, limit); err != nil {
		return h.timedOut(key, err)
	}
	switch outcome {
	case opLost:
		return unreachable(h.name)
	case opFail:
		return errFailed
	}
	return nil
}

// The outcomes of drawOp.
const (
	opOK = iota
	opDown
	opLost
	opFail
)

// drawOp draws the time (scaled, as slept) and the outcome of one call
// keyed key, and records it.
//
//go:noinline
func (h *Host) drawOp(key, fallback string) (time.Duration, int) {
	cfg, ok := h.fleet.cfg.Ops[key]
	if !ok {
		cfg = h.fleet.cfg.Ops[fallback]
	}
	h.mu.Lock()
	n := h.draw(key)
	down := h.down
	h.mu.Unlock()
	if down {
		return 0, opDown
	}
	seed := h.fleet.cfg.Seed ^ h.hash ^ hashString(key)*0x9e3779b97f4a7c15 ^ n*0xbf58476d1ce4e5b9
	d := cfg.Latency
	if cfg.Jitter > 0 && d > 0 {
		u := unit(seed, 1)*2 - 1 // [-1, 1)
		d += time.Duration(float64(d) * cfg.Jitter * u)
	}
	fail := cfg.FailRate > 0 && unit(seed, 2) < cfg.FailRate
	lost := !fail && cfg.UnreachableRate > 0 && unit(seed, 3) < cfg.UnreachableRate
	if h.fleet.cfg.Record {
		h.mu.Lock()
		h.records = append(h.records, Record{Op: key, Sim: d, Failed: fail || lost})
		h.mu.Unlock()
	}
	outcome := opOK
	switch {
	case lost:
		outcome = opLost
	case fail:
		outcome = opFail
	}
	return time.Duration(float64(d) * h.fleet.cfg.Scale), outcome
}

//go:noinline
func (h *Host) timedOut(key string, err error) error {
	return drover.Errorf(drover.ETIMEOUT, "%s: %v", key, err).At("host " + h.name)
}

var errFailed = drover.Errorf(drover.EFAILED, "simulated failure")

func unreachable(host string) error {
	return drover.Errorf(drover.EUNREACHABLE, "simulated host is unreachable").At("host " + host)
}

// sleep waits d, or limit when it is shorter (limit > 0), then returns
// context.DeadlineExceeded; or until ctx ends.
func sleep(ctx context.Context, d, limit time.Duration) error {
	cut := limit > 0 && d >= limit
	if cut {
		d = limit
	}
	if d <= 0 {
		if err := ctx.Err(); err != nil || !cut {
			return err
		}
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		if cut {
			return context.DeadlineExceeded
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hashString is FNV-1a, 64 bits.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// unit returns a uniform float in [0, 1) from seed and stream (splitmix64).
func unit(seed, stream uint64) float64 {
	z := seed + stream*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// templates returns a bundle's template files, read once per bundle.
func (f *Fleet) templates(rel *drover.Release, files []drover.ConfigFile) (map[string][]byte, error) {
	f.tmplMu.Lock()
	defer f.tmplMu.Unlock()
	if t, ok := f.tmpl[rel.BundlePath]; ok {
		return t, nil
	}
	var names []string
	for _, c := range files {
		names = append(names, c.Template)
	}
	// A release without config files needs no bundle (the tests' bare
	// releases have none).
	t := map[string][]byte{}
	if len(names) > 0 {
		var err error
		if t, err = release.ReadFiles(rel, names); err != nil {
			return nil, err
		}
	}
	f.tmpl[rel.BundlePath] = t
	return t, nil
}

// conn is one connection to a simulated host.
type conn struct {
	h    *Host
	root string
}

var _ drover.HostConn = (*conn)(nil)

func (c *conn) State(ctx context.Context) (drover.HostState, error) {
	if err := c.h.op(ctx, OpState, OpState); err != nil {
		return drover.HostState{}, c.h.failed(err, "read state.json")
	}
	return c.h.State(), nil
}

func (c *conn) Stage(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if req.Release == nil {
		return drover.StageResult{}, drover.Errorf(drover.EINVALID, "stage: no release")
	}
	t, err := c.h.fleet.templates(req.Release, req.ConfigFiles)
	if err != nil {
		return drover.StageResult{}, err
	}
	// The transfer's time passes first, then the host renders — as a
	// real host does after receiving the bundle. Rendering first kept
	// every staging host's rendered files, and the goroutine stack the
	// template grew, alive through the whole simulated transfer: with
	// 10,000 hosts staging at once, ~100 MB of stacks (bench/sim).
	if err := c.h.op(ctx, OpStage, OpStage); err != nil {
		return drover.StageResult{}, c.h.failed(err, "stage "+req.Release.ID())
	}
	return c.staged(&req, t)
}

// staged is what a host does once the bundle is there: render the config
// and make the slot. Its own call, so that the frame Stage waits in is
// small (see opWithin).
//
//go:noinline
func (c *conn) staged(req *drover.StageRequest, t map[string][]byte) (drover.StageResult, error) {
	files, err := drover.RenderConfigFiles(req.ConfigFiles, func(p string) ([]byte, error) {
		b, ok := t[path.Clean(p)]
		if !ok {
			return nil, drover.Errorf(drover.EINVALID, "config_files: template %s is not in release %s", p, req.Release.ID())
		}
		return b, nil
	}, req.Data)
	if err != nil {
		return drover.StageResult{}, err
	}
	hash := drover.SlotHash(files, req.SharedDirs)
	id := req.Release.ID()
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	live := map[string]bool{h.state.Current: true, h.state.Previous: true}
	for _, name := range drover.SlotCandidates(id, hash) {
		s, exists := h.slots[name]
		if exists && s.meta.Release == id && s.meta.ConfigHash == hash {
			return drover.StageResult{Slot: name, ConfigHash: hash, Reused: true}, nil
		}
		if !exists || !live[name] {
			h.seq++
			h.slots[name] = &slot{meta: slotMeta{Release: id, Version: req.Release.Version(), ConfigHash: hash, StagedAt: time.Now().UTC()}, seq: h.seq, files: files}
			return drover.StageResult{Slot: name, ConfigHash: hash}, nil
		}
	}
	return drover.StageResult{}, drover.Errorf(drover.EFAILED, "stage %s: both slots are live with other config", id).At("host " + h.name)
}

func (c *conn) Promote(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error) {
	if err := c.h.op(ctx, OpPromote, OpPromote); err != nil {
		return c.h.State(), c.h.failed(err, "promote "+req.Slot)
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.slots[req.Slot]
	if !ok {
		return h.stateLocked(), drover.Errorf(drover.EFAILED, "promote: release dir releases/%s does not exist", req.Slot).At("host " + h.name).
			WithHint("stage the release on this host first")
	}
	st := &h.state
	if st.Current == req.Slot {
		return h.stateLocked(), nil
	}
	rel, version, hash := req.Release, req.Version, req.ConfigHash
	if rel == "" {
		rel = s.meta.Release
	}
	if version == "" {
		version = s.meta.Version
	}
	if hash == "" {
		hash = s.meta.ConfigHash
	}
	at := req.At
	if at.IsZero() {
		at = time.Now()
	}
	st.History = append(st.History, drover.HostHistoryEntry{Action: drover.ActionPromote, From: st.Current, To: req.Slot, Version: version, DeployID: req.DeployID, At: at.UTC()})
	st.Previous, st.Current = st.Current, req.Slot
	st.Release, st.Version, st.ConfigHash = rel, version, hash
	st.DeployedAt, st.DeployID = at.UTC(), req.DeployID
	return h.stateLocked(), nil
}

func (c *conn) Restore(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
	action := req.Action
	switch action {
	case "":
		action = drover.ActionRestore
	case drover.ActionRestore, drover.ActionRollback:
	default:
		return drover.HostState{}, drover.Errorf(drover.EINVALID, "restore: action %q is not %s or %s", action, drover.ActionRestore, drover.ActionRollback)
	}
	if err := c.h.op(ctx, OpRestore, OpRestore); err != nil {
		return c.h.State(), c.h.failed(err, "restore")
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	to := req.To
	if _, ok := h.slots[to.Current]; to.Current != "" && !ok {
		return h.stateLocked(), drover.Errorf(drover.EFAILED, "release dir releases/%s is gone; restore it by hand or deploy", to.Current).At("host " + h.name)
	}
	st := &h.state
	if st.Snapshot() == to {
		return h.stateLocked(), nil
	}
	at := req.At
	if at.IsZero() {
		at = time.Now()
	}
	st.History = append(st.History, drover.HostHistoryEntry{Action: action, From: st.Current, To: to.Current, Version: to.Version, DeployID: req.DeployID, At: at.UTC(), Reason: req.Reason})
	st.Current, st.Previous = to.Current, to.Previous
	st.Release, st.Version, st.ConfigHash = to.Release, to.Version, to.ConfigHash
	st.DeployedAt, st.DeployID = at.UTC(), req.DeployID
	return h.stateLocked(), nil
}

func (c *conn) Exec(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error) {
	word, _, _ := strings.Cut(strings.TrimSpace(req.Command), " ")
	err := c.h.opWithin(ctx, c.h.fleet.key(OpExec+":"+word), OpExec, max(req.Timeout, 0))
	if err == errFailed {
		return drover.ExecResult{ExitCode: 1, Output: "simulated failure of " + word}, nil
	}
	if err != nil {
		return drover.ExecResult{}, err
	}
	return drover.ExecResult{}, nil
}

func (c *conn) Check(ctx context.Context, cs drover.CheckSpec) (drover.CheckResult, error) {
	start := time.Now()
	err := c.h.opWithin(ctx, c.h.fleet.key(OpCheck+":"+cs.Name), OpCheck, max(cs.Timeout, 0))
	res := drover.CheckResult{Name: cs.Name, OK: err == nil, Attempts: 1, Elapsed: time.Since(start)}
	switch {
	case err == errFailed:
		res.Reason = "simulated failure"
		return res, nil
	case drover.ErrorCode(err) == drover.ETIMEOUT:
		res.Reason = err.Error()
		return res, nil
	case err != nil:
		return res, err
	}
	return res, nil
}

func (c *conn) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := c.h.op(ctx, OpReadFile, OpReadFile); err != nil {
		return nil, c.h.failed(err, "read "+p)
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	clean := path.Clean(p)
	if clean == drover.StateFile {
		return json.Marshal(h.state)
	}
	parts := strings.SplitN(clean, "/", 3)
	if len(parts) == 3 && parts[0] == "releases" {
		if s, ok := h.slots[parts[1]]; ok {
			if parts[2] == ".drover-slot.json" {
				return json.Marshal(s.meta)
			}
			if b, ok := s.file(parts[2]); ok {
				return append([]byte(nil), b...), nil
			}
		}
	}
	return nil, drover.Errorf(drover.ENOTFOUND, "%s: no such file", p).At("host " + h.name)
}

func (c *conn) Prune(ctx context.Context, keep int, protect ...string) ([]string, error) {
	if err := c.h.op(ctx, OpPrune, OpPrune); err != nil {
		return nil, c.h.failed(err, "prune")
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	guard := map[string]bool{}
	for _, s := range append([]string{h.state.Current, h.state.Previous}, protect...) {
		if s != "" {
			guard[s] = true
		}
	}
	type cand struct {
		name string
		seq  uint64
	}
	var others []cand
	kept := 0
	for name, s := range h.slots {
		if guard[name] {
			kept++
			continue
		}
		others = append(others, cand{name, s.seq})
	}
	// Newest first: they are the ones kept when there is room.
	sort.Slice(others, func(i, j int) bool { return others[i].seq > others[j].seq })
	var removed []string
	for _, o := range others {
		if kept < keep {
			kept++
			continue
		}
		delete(h.slots, o.name)
		removed = append(removed, o.name)
	}
	sort.Strings(removed)
	return removed, nil
}

func (c *conn) Close() error { return nil }

// failed turns a failure draw into the EFAILED error of what; other errors
// pass unchanged.
func (h *Host) failed(err error, what string) error {
	if err == errFailed {
		return drover.Errorf(drover.EFAILED, "%s: simulated failure", what).At("host " + h.name)
	}
	return err
}
