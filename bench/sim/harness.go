package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"drover"
	"drover/config"
	"drover/release"
	"drover/rotation"
	"drover/runner"
	"drover/store/file"
	"drover/store/sqlite"
	"drover/transport/sim"
)

// Options is one simulated deploy.
type Options struct {
	Hosts int
	// CanaryPct is the canary group's share of the fleet (promoted in one
	// batch); BatchPct is the batch of the default group.
	CanaryPct, BatchPct int
	// Store is "sqlite" or "file".
	Store string
	Seed  uint64
	// Scale multiplies every simulated latency slept (1: real time).
	Scale float64
	// Events is "json" (every event encoded as --output json does, to
	// io.Discard) or "none".
	Events string
	// Dir holds the release, drover.yaml and the state directory.
	Dir string
	// Breakdown, when set, receives the time of every batch.
	Breakdown io.Writer
	// Latencies overrides the default operation latencies.
	Ops map[string]sim.Op
	// Watch, when set, is started when the deploy starts and stopped when
	// it returns (main's -memprofile: the heap at the deploy's peak, not
	// at the setup's or at reading the journal back afterwards).
	Watch func() (stop func())
}

// DefaultOps are the simulated latencies: what a small service on a real
// host takes, each ±20%.
func DefaultOps() map[string]sim.Op {
	j := 0.2
	return map[string]sim.Op{
		sim.OpOpen:       {Latency: 5 * time.Millisecond, Jitter: j},
		sim.OpState:      {Latency: 5 * time.Millisecond, Jitter: j},
		sim.OpStage:      {Latency: 200 * time.Millisecond, Jitter: j},
		sim.OpPromote:    {Latency: 20 * time.Millisecond, Jitter: j},
		"exec:depool":    {Latency: 10 * time.Millisecond, Jitter: j},
		"exec:wait_idle": {Latency: 50 * time.Millisecond, Jitter: j},
		"exec:restart":   {Latency: 300 * time.Millisecond, Jitter: j},
		"check:port":     {Latency: 20 * time.Millisecond, Jitter: j},
		"check:version":  {Latency: 100 * time.Millisecond, Jitter: j},
		"exec:repool":    {Latency: 10 * time.Millisecond, Jitter: j},
		sim.OpPrune:      {Latency: 10 * time.Millisecond, Jitter: j},
		sim.OpRestore:    {Latency: 20 * time.Millisecond, Jitter: j},
		sim.OpReadFile:   {Latency: 5 * time.Millisecond, Jitter: j},
		sim.OpExec:       {Latency: 10 * time.Millisecond, Jitter: j},
		sim.OpCheck:      {Latency: 20 * time.Millisecond, Jitter: j},
	}
}

// Result is what one simulated deploy measured.
type Result struct {
	Hosts   int           `json:"hosts"`
	Store   string        `json:"store"`
	Batches int           `json:"batches"`
	Wall    time.Duration `json:"wall_ns"`
	// Ideal is the schedule's floor: the slowest survey, the slowest
	// stage, for each batch its slowest host's promote path, and the
	// slowest prune — all with the simulated times drawn in this run.
	Ideal time.Duration `json:"ideal_ns"`
	// Replay is how long goroutines sleeping exactly the ideal schedule's
	// simulated times take on this machine right now: the floor that
	// timer and scheduler latency leave, with no controller at all.
	Replay time.Duration `json:"replay_ns"`
	// CPU is user+system time of the deploy (the whole process: the
	// controller and the simulated hosts' timers).
	CPU time.Duration `json:"cpu_ns"`
	// PeakRSS is the process's peak resident set in bytes (ru_maxrss).
	PeakRSS int64 `json:"peak_rss"`
	// GoSys is what the Go runtime had taken from the system when the
	// deploy returned; HeapInuse and StackInuse the highest heap in use
	// and goroutine stacks seen during it (sampled every 20 ms): what of
	// PeakRSS is Go's heap, its stacks, or neither (the store's C side).
	GoSys      uint64 `json:"go_sys"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Goroutines int    `json:"goroutines"`
	// Allocs and AllocBytes are the heap allocations made during the
	// deploy (the whole process): steadier than wall or CPU time on a
	// shared machine, and what the garbage collector's work follows.
	Allocs     uint64 `json:"allocs"`
	AllocBytes uint64 `json:"alloc_bytes"`
	ExitCode   int    `json:"exit_code"`
	Summary    string `json:"summary"`
	Steps      int    `json:"journal_entries"`
	Events     int64  `json:"events"`
	// Writes is how many journal writes (Append or AppendBatch calls)
	// the deploy made, and StoreTime how long they took in all.
	Writes    int64         `json:"journal_writes"`
	StoreTime time.Duration `json:"store_ns"`
}

// Overhead is the share of the wall time above the ideal schedule.
func (r Result) Overhead() float64 {
	if r.Ideal <= 0 {
		return 0
	}
	return float64(r.Wall-r.Ideal) / float64(r.Ideal)
}

// Run sets up a simulated fleet of o.Hosts hosts and deploys one release
// to it through runner.Deploy with a real store.
func Run(ctx context.Context, o Options) (Result, error) {
	res := Result{Hosts: o.Hosts, Store: o.Store}
	if o.Ops == nil {
		o.Ops = DefaultOps()
	}
	spec, rel, err := setup(ctx, o)
	if err != nil {
		return res, err
	}
	var st drover.Store
	switch o.Store {
	case "file":
		st, err = file.Open(spec.StateDir)
	default:
		st, err = sqlite.Open(filepath.Join(spec.StateDir, sqlite.FileName))
	}
	if err != nil {
		return res, err
	}
	defer st.Close()
	st = &timedStore{Store: st}
	fleet := sim.New(sim.Config{Seed: o.Seed, Ops: o.Ops, Scale: o.Scale, Record: true})
	var sink countSink
	if o.Events == "json" {
		sink.enc = json.NewEncoder(io.Discard)
	}
	r := &runner.Runner{Spec: spec, Transport: fleet, Store: st, Events: &sink, Rotation: rotation.New(spec)}

	stopMem := watchMem(&res)
	stopWatch := func() {}
	if o.Watch != nil {
		stopWatch = o.Watch()
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	start := time.Now()
	out, err := r.Deploy(ctx, runner.DeployOptions{Release: rel})
	res.Wall = time.Since(start)
	res.CPU = cpuTime() - cpu0
	res.PeakRSS = peakRSS()
	stopMem()
	stopWatch()
	runtime.ReadMemStats(&ms1)
	res.Allocs, res.AllocBytes = ms1.Mallocs-ms0.Mallocs, ms1.TotalAlloc-ms0.TotalAlloc
	if err != nil {
		return res, err
	}
	res.ExitCode, res.Summary = out.ExitCode, out.Summary
	res.Events = sink.n
	res.Writes, res.StoreTime = st.(*timedStore).n, st.(*timedStore).d
	if j, err := st.Journal(ctx, out.DeployID); err == nil {
		res.Steps = len(j)
	}
	recs := fleet.Records()
	res.Ideal, res.Batches = ideal(spec, recs, o.Scale)
	res.Replay = replay(ctx, spec, recs, o.Scale)
	if o.Breakdown != nil {
		fmt.Fprintf(o.Breakdown, "Deploy called -> deploy_start: %s\n", sink.first.Sub(start).Round(time.Millisecond))
		sink.breakdown(o.Breakdown, spec, recs, o.Scale)
		fmt.Fprintf(o.Breakdown, "last repool -> Deploy returned: %s\n", start.Add(res.Wall).Sub(latest(sink.repool)).Round(time.Millisecond))
	}
	return res, nil
}

// setup writes a release and a drover.yaml for o under o.Dir and loads it
// the way the CLI does.
func setup(ctx context.Context, o Options) (*drover.Spec, *drover.Release, error) {
	src := filepath.Join(o.Dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(src, "app.conf.tmpl"), []byte("port={{.Host.Vars.port}}\nversion={{.Release.Version}}\n"), 0o644); err != nil {
		return nil, nil, err
	}
	rel, err := release.Build(ctx, src, release.BuildOptions{Service: "sim", Version: "2.0.0", Out: filepath.Join(o.Dir, "sim-2.0.0.tar.gz")})
	if err != nil {
		return nil, nil, err
	}
	var y strings.Builder
	canary := max(1, o.Hosts*o.CanaryPct/100)
	fmt.Fprintf(&y, `service: sim
deploy_root: /srv/sim
state_dir: %s
stage_parallelism: %d
hooks:
  depool: "depool {{.Host.Name}}"
  wait_idle: "wait_idle {{.Host.Name}}"
  restart: "restart {{.Root}}"
  repool: "repool {{.Host.Name}}"
config_files:
  - {template: app.conf.tmpl, dest: app.conf}
checks:
  - {name: port, type: tcp, address: "127.0.0.1:{{.Host.Vars.port}}", timeout: 10s}
  - {name: version, type: http, url: "http://127.0.0.1:{{.Host.Vars.port}}/version", expect_status: 200, expect_body: "{{.Release.Version}}", timeout: 10s}
groups:
  - name: canary
    batch: "100%%"
    allow_all_at_once: true
    failure_limit: 0
    hosts:
`, filepath.Join(o.Dir, "state"), o.Hosts)
	for i := range canary {
		fmt.Fprintf(&y, "      - %s\n", hostName(i))
	}
	fmt.Fprintf(&y, `  - name: default
    hosts: ["h*"]
    batch: "%d%%"
    failure_limit: "10%%"
hosts:
`, o.BatchPct)
	for i := range o.Hosts {
		fmt.Fprintf(&y, "  - {name: %s, address: /fleet/%s, vars: {port: %d}}\n", hostName(i), hostName(i), 20000+i%40000)
	}
	path := filepath.Join(o.Dir, "drover.yaml")
	if err := os.WriteFile(path, []byte(y.String()), 0o644); err != nil {
		return nil, nil, err
	}
	spec, err := config.Load(path, "")
	if err != nil {
		return nil, nil, err
	}
	return spec, rel, nil
}

func hostName(i int) string { return fmt.Sprintf("h%05d", i) }

// promotePath are the operations of a host's promote path.
var promotePath = map[string]bool{
	"exec:depool": true, "exec:wait_idle": true, sim.OpPromote: true, "exec:restart": true,
	"check:port": true, "check:version": true, "exec:repool": true,
}

// ideal is the floor of the schedule the deploy follows, from the
// simulated times each host drew: the survey (open, state) and the stage
// run every host at once (stage_parallelism is the fleet), so each costs
// its slowest host; each batch of each group costs its slowest host's
// promote path; prune costs its slowest host. Scaled by scale, as slept.
func ideal(spec *drover.Spec, recs map[string][]sim.Record, scale float64) (time.Duration, int) {
	type phases struct{ survey, stage, promote, prune time.Duration }
	per := make(map[string]phases, len(recs))
	for name, rs := range recs {
		var p phases
		for _, r := range rs {
			switch {
			case r.Op == sim.OpOpen || r.Op == sim.OpState:
				p.survey += r.Sim
			case r.Op == sim.OpStage:
				p.stage += r.Sim
			case promotePath[r.Op]:
				p.promote += r.Sim
			case r.Op == sim.OpPrune:
				p.prune += r.Sim
			}
		}
		per[name] = p
	}
	var survey, stage, prune, promote time.Duration
	for _, p := range per {
		survey, stage, prune = max(survey, p.survey), max(stage, p.stage), max(prune, p.prune)
	}
	batches := 0
	for _, g := range spec.Groups {
		for i := 0; i < len(g.Hosts); i += g.Batch {
			var slowest time.Duration
			for _, h := range g.Hosts[i:min(i+g.Batch, len(g.Hosts))] {
				slowest = max(slowest, per[h].promote)
			}
			promote += slowest
			batches++
		}
	}
	total := survey + stage + promote + prune
	return time.Duration(float64(total) * scale), batches
}

// replay sleeps the schedule ideal sums up: every host of the survey, the
// stage and the prune at once, the batches one after the other, each
// host's calls one after the other in its own goroutine.
func replay(ctx context.Context, spec *drover.Spec, recs map[string][]sim.Record, scale float64) time.Duration {
	phase := func(names []string, keep func(op string) bool) {
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range recs[n] {
					if keep(r.Op) {
						t := time.NewTimer(time.Duration(float64(r.Sim) * scale))
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
						}
					}
				}
			}()
		}
		wg.Wait()
	}
	var all []string
	for _, h := range spec.Hosts {
		all = append(all, h.Name)
	}
	start := time.Now()
	phase(all, func(op string) bool { return op == sim.OpOpen || op == sim.OpState })
	phase(all, func(op string) bool { return op == sim.OpStage })
	for _, g := range spec.Groups {
		for i := 0; i < len(g.Hosts); i += g.Batch {
			phase(g.Hosts[i:min(i+g.Batch, len(g.Hosts))], func(op string) bool { return promotePath[op] })
		}
	}
	phase(all, func(op string) bool { return op == sim.OpPrune })
	return time.Since(start)
}

// countSink counts events and, like --output json, encodes each. It
// keeps when each host's depool started and its repool ended, for the
// per-batch breakdown (Breakdown).
type countSink struct {
	mu  sync.Mutex
	enc *json.Encoder
	n   int64

	first, stageEnd time.Time
	depool, repool  map[string]time.Time
}

func (s *countSink) Emit(e drover.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.enc != nil {
		s.enc.Encode(e)
	}
	if s.depool == nil {
		s.depool, s.repool = map[string]time.Time{}, map[string]time.Time{}
	}
	switch {
	case e.Kind == drover.EventDeployStart:
		s.first = e.Time
	case e.Kind == drover.EventStageDone:
		s.stageEnd = e.Time
	case e.Kind == drover.EventStepStart && e.Step == "depool" && !e.Restoring:
		s.depool[e.Host] = e.Time
	case e.Kind == drover.EventStepDone && e.Step == "repool" && !e.Restoring:
		s.repool[e.Host] = e.Time
	}
}

// breakdown prints, for each batch, how long it took from its first
// depool to its last repool against its slowest host's simulated path,
// and the gap before it.
func (s *countSink) breakdown(w io.Writer, spec *drover.Spec, recs map[string][]sim.Record, scale float64) {
	fmt.Fprintf(w, "deploy_start -> stage_done: %s\n", s.stageEnd.Sub(s.first).Round(time.Millisecond))
	prev := s.stageEnd
	for _, g := range spec.Groups {
		for i := 0; i < len(g.Hosts); i += g.Batch {
			var start, end time.Time
			var slowest time.Duration
			for _, h := range g.Hosts[i:min(i+g.Batch, len(g.Hosts))] {
				if d := s.depool[h]; start.IsZero() || d.Before(start) {
					start = d
				}
				if r := s.repool[h]; r.After(end) {
					end = r
				}
				var p time.Duration
				for _, r := range recs[h] {
					if promotePath[r.Op] {
						p += r.Sim
					}
				}
				slowest = max(slowest, p)
			}
			slowest = time.Duration(float64(slowest) * scale)
			took := end.Sub(start)
			fmt.Fprintf(w, "%s batch %d: gap %s, took %s, slowest host %s, over %s\n", g.Name, i/g.Batch+1,
				start.Sub(prev).Round(time.Millisecond), took.Round(time.Millisecond), slowest.Round(time.Millisecond), (took - slowest).Round(time.Millisecond))
			prev = end
		}
	}
}

// watchMem samples the Go runtime's memory into res until stopped.
func watchMem(res *Result) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		res.GoSys = ms.Sys
		res.HeapInuse = max(res.HeapInuse, ms.HeapInuse)
		res.StackInuse = max(res.StackInuse, ms.StackInuse)
		res.Goroutines = max(res.Goroutines, runtime.NumGoroutine())
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() { close(done); <-finished }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is ru_maxrss in bytes (Linux reports KiB).
func peakRSS() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss * 1024
}

// timedStore counts journal writes and the time they take.
type timedStore struct {
	drover.Store
	mu sync.Mutex
	n  int64
	d  time.Duration
}

func (s *timedStore) add(start time.Time) {
	d := time.Since(start)
	s.mu.Lock()
	s.n++
	s.d += d
	s.mu.Unlock()
}

func (s *timedStore) Append(ctx context.Context, id string, e drover.JournalEntry) error {
	defer s.add(time.Now())
	return s.Store.Append(ctx, id, e)
}

// AppendBatch passes batches on when the store takes them, else appends
// entry by entry as the runner would.
func (s *timedStore) AppendBatch(ctx context.Context, id string, es []drover.JournalEntry) error {
	defer s.add(time.Now())
	if b, ok := s.Store.(interface {
		AppendBatch(context.Context, string, []drover.JournalEntry) error
	}); ok {
		return b.AppendBatch(ctx, id, es)
	}
	for _, e := range es {
		if err := s.Store.Append(ctx, id, e); err != nil {
			return err
		}
	}
	return nil
}

func latest(m map[string]time.Time) time.Time {
	var t time.Time
	for _, v := range m {
		if v.After(t) {
			t = v
		}
	}
	return t
}
