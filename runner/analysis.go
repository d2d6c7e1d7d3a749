package runner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"drover"
	"drover/rollout"
)

// This file is canary analysis: deciding from metrics whether a deploy goes
// on after a group (drover.yaml: wait:, analysis:, approve:).
//
// The gates of a group, in order:
//
//	analysis start   (run)  the group's analyses begin, every interval
//	bake             (wait) the group's wait: the core's own timer
//	approve          (run)  approve: manual, see approve.go
//	analysis         (run)  one more evaluation of every analysis: the verdict
//
// While the group bakes (and waits for a person), every analysis is
// evaluated in the background every Interval: a failure halts the deploy at
// once — a canary serving 20% errors is not left to serve them for the rest
// of a five-minute bake. Missing data is tolerated until the verdict (a
// restarted service has no rate() for its first scrapes); at the verdict
// and afterwards it fails, unless the analysis says on_no_data: pass.
//
// After the verdict, threshold, trend and freshness analyses go on in the
// background through the later groups until the deploy ends: a memory leak
// shows after ten minutes, not two. Baseline comparisons stop at the
// verdict: once the next group switches, "the rest of the fleet" is no
// longer the old release.
//
// A background failure cannot report as a step: it goes to the loop as a
// halt (Machine.Halt), through canaryWatch.halts, which drive selects on.

// canaryWatch runs beside one deploy's loop: the analyses its gates start,
// and the watcher of abort requests from other processes (approve.go). Its
// goroutines end when the deploy halts or stop is called, and stop waits
// for them.
type canaryWatch struct {
	x *executor
	r *Runner
	// halts carries the first halt reason to drive (buffered: a sender
	// never waits for the loop).
	halts    chan string
	haltOnce sync.Once
	// halted is closed once a halt was sent: long gates (an approval)
	// stop waiting, and analyses stop evaluating.
	halted chan struct{}
	// timedOut is set by an approval gate that ran out of time, before
	// it records its abort (approve.go).
	timedOut atomic.Bool
	// parent is the deploy's context (Ctrl-C); ctx ends the goroutines.
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// planned is every host of the groups planned so far, in order: by
	// the time a group's analysis starts, none of them is the baseline.
	planned []string

	mu     sync.Mutex
	groups map[string]*groupAnalysis
}

// groupAnalysis is the state of one group's analyses.
type groupAnalysis struct {
	group    drover.Group
	canary   []string
	baseline []string
	since    time.Time
	// verdict is closed when the group's analysis gate passed: missing
	// data fails from then on, and baseline comparisons stop.
	verdict chan struct{}
}

// newCanaryWatch returns the watch of a deploy; start it before drive.
func (x *executor) newCanaryWatch() *canaryWatch {
	return &canaryWatch{x: x, r: x.r, halts: make(chan string, 1), halted: make(chan struct{}), groups: map[string]*groupAnalysis{}}
}

// start begins the watch's own goroutines (the abort watcher) and returns
// the channel of reasons to halt, for drive.
func (w *canaryWatch) start(ctx context.Context) <-chan string {
	w.parent = ctx
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.goAbortWatcher()
	return w.halts
}

// stop ends every goroutine of the watch and waits for them.
func (w *canaryWatch) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.wg.Wait()
}

// halt asks drive to halt the deploy; the first reason wins.
func (w *canaryWatch) halt(reason string) {
	w.haltOnce.Do(func() {
		w.halts <- reason
		close(w.halted)
	})
}

// Gate names of canary analysis.
const (
	GateAnalysisStart = "analysis start"
	GateBake          = "bake"
	GateAnalysis      = "analysis"
	GateApprove       = drover.GateApprove
)

// gateSlack is added to the bound of a run gate that evaluates analyses:
// each query is bounded by its own timeout.
const gateSlack = 5 * time.Second

// gates returns the canary gates of group g: see the top of this file.
// Groups must be asked in deploy order.
func (w *canaryWatch) gates(g drover.Group, hosts []string) []groupGate {
	analyses := append(slices.Clone(w.x.spec.Analysis), g.Analysis...)
	w.planned = append(w.planned, hosts...)
	done := map[string]bool{}
	for _, h := range w.planned {
		done[h] = true
	}
	// The baseline is every host this deploy has not switched by then:
	// later groups, and hosts outside --limit.
	var baseline []string
	for _, h := range w.x.spec.Hosts {
		if !done[h.Name] {
			baseline = append(baseline, h.Name)
		}
	}
	// A comparison with the rest of the fleet needs a rest of the fleet:
	// after the last group there is none, and "no baseline" must not
	// fail closed a deploy whose every other analysis passed.
	var skipped []string
	if len(baseline) == 0 {
		kept := analyses[:0]
		for _, a := range analyses {
			if a.Kind == drover.AnalysisBaseline {
				skipped = append(skipped, a.Name)
			} else {
				kept = append(kept, a)
			}
		}
		analyses = kept
	}
	var out []groupGate
	if len(analyses) > 0 || len(skipped) > 0 {
		out = append(out, groupGate{
			plan: rollout.Gate{Name: GateAnalysisStart, Kind: rollout.GateRun}, kind: "analysis",
			timeout: time.Minute,
			run: func(ctx context.Context) error {
				return w.startAnalyses(g, hosts, baseline, analyses, skipped)
			},
		})
	}
	if g.Wait > 0 {
		out = append(out, groupGate{plan: rollout.Gate{Name: GateBake, Kind: rollout.GateWait, Wait: g.Wait}, kind: "wait"})
	}
	if g.Approve == drover.ApproveManual {
		out = append(out, w.approveGate(g))
	}
	if len(analyses) > 0 {
		var bound time.Duration
		for _, a := range analyses {
			// Every attempt of the grace, each bounded by the timeout.
			bound += a.InitialDelay + (verdictGrace+1)*(analysisTimeout(a)+analysisInterval(a)) + gateSlack
		}
		out = append(out, groupGate{
			plan: rollout.Gate{Name: GateAnalysis, Kind: rollout.GateRun}, kind: "analysis",
			timeout: bound,
			run: func(ctx context.Context) error {
				return w.verdict(ctx, g.Name, analyses)
			},
		})
	}
	return out
}

func analysisTimeout(a drover.AnalysisSpec) time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return drover.DefaultAnalysisTimeout
}

func analysisInterval(a drover.AnalysisSpec) time.Duration {
	if a.Interval > 0 {
		return a.Interval
	}
	return drover.DefaultAnalysisInterval
}

// startAnalyses begins the analyses of a group whose hosts are done.
func (w *canaryWatch) startAnalyses(g drover.Group, hosts, baseline []string, analyses []drover.AnalysisSpec, skipped []string) error {
	if w.r.Analyzer == nil {
		return drover.Errorf(drover.EFAILED, "group %s has analyses and this drover has no metrics analyzer", g.Name)
	}
	w.mu.Lock()
	ga := &groupAnalysis{group: g, canary: hosts, baseline: baseline, since: w.r.now(), verdict: make(chan struct{})}
	w.groups[g.Name] = ga
	w.mu.Unlock()

	names := make([]string, len(analyses))
	for i, a := range analyses {
		names[i] = a.Name
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.watchAnalysis(ga, a)
		}()
	}
	msg := fmt.Sprintf("analysis of %s (%s) against %d baseline hosts: %s", g.Name, strings.Join(hosts, ", "), len(baseline), strings.Join(names, ", "))
	if len(names) == 0 {
		msg = fmt.Sprintf("analysis of %s (%s):", g.Name, strings.Join(hosts, ", "))
	}
	if len(skipped) > 0 {
		msg += fmt.Sprintf("; not %s: no host is left to compare with", strings.Join(skipped, ", "))
	}
	w.r.emit(drover.Event{Deploy: w.x.deployID, Kind: drover.EventNotice, Group: g.Name, Message: msg})
	return nil
}

// watchAnalysis evaluates a every interval until the deploy ends or halts
// (baseline comparisons: until the group's verdict).
func (w *canaryWatch) watchAnalysis(ga *groupAnalysis, a drover.AnalysisSpec) {
	if !w.initialDelay(w.ctx, ga, a) {
		return
	}
	t := time.NewTicker(analysisInterval(a))
	defer t.Stop()
	verdict := ga.verdict
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.halted:
			return
		case <-verdict:
			if a.Kind == drover.AnalysisBaseline {
				return
			}
			verdict = nil
			continue
		case <-t.C:
		}
		// Missing data is "not yet" until the verdict, and fails after.
		o, msg, ev := w.evaluate(w.ctx, ga, a)
		halting := o == judgedFail || (o == judgedMissing && isClosed(ga.verdict))
		if w.ctx.Err() != nil {
			return // the deploy ended while the query ran
		}
		ev.Halted = halting && !isClosed(w.halted)
		w.record(ev)
		if halting {
			w.halt(msg)
			return
		}
	}
}

// initialDelay waits until a's initial_delay has passed since the group's
// hosts were done, measured with the runner's clock, and says whether the
// analysis should go on (false: the deploy ended or halted meanwhile).
// Nothing is evaluated before: the query's window may still hold the
// samples of the release this deploy replaced — the errors of a bad
// release just rolled back would halt the healthy one after it.
func (w *canaryWatch) initialDelay(ctx context.Context, ga *groupAnalysis, a drover.AnalysisSpec) bool {
	d := ga.since.Add(a.InitialDelay).Sub(w.r.now())
	if a.InitialDelay <= 0 || d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-w.halted:
		return false
	case <-t.C:
		return true
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// verdictGrace is how many intervals the verdict waits for an analysis
// whose data has not arrived: a group without a bake reaches its verdict
// a moment after its last restart, before a rate over its new process can
// have two scrapes. Past the grace, missing data fails.
const verdictGrace = 3

// verdict is the group's analysis gate: every analysis once more, missing
// data failing once the grace is over. It returns every failure, not only
// the first.
func (w *canaryWatch) verdict(ctx context.Context, group string, analyses []drover.AnalysisSpec) error {
	w.mu.Lock()
	ga := w.groups[group]
	w.mu.Unlock()
	if ga == nil {
		return drover.Errorf(drover.EINTERNAL, "analysis of group %s was never started", group)
	}
	var fails []string
	for _, a := range analyses {
		if !w.initialDelay(ctx, ga, a) {
			if ctx.Err() != nil {
				return drover.Errorf(drover.ETIMEOUT, "analysis %s of group %s: the verdict ran out of time during initial_delay %s", a.Name, group, a.InitialDelay)
			}
			return drover.Errorf(drover.EFAILED, "the deploy halted during the analysis of group %s", group)
		}
		deadline := w.r.now().Add(verdictGrace * analysisInterval(a))
		for {
			o, msg, ev := w.evaluate(ctx, ga, a)
			ev.Verdict = true
			if o == judgedPass {
				w.record(ev)
				w.r.emit(drover.Event{Deploy: w.x.deployID, Kind: drover.EventNotice, Group: group, Message: "analysis passed: " + msg})
				break
			}
			if o == judgedFail || !w.r.now().Before(deadline) {
				// The gate fails with it: this result halts the deploy.
				ev.Halted = !isClosed(w.halted)
				w.record(ev)
				fails = append(fails, msg)
				break
			}
			w.record(ev)
			select {
			case <-ctx.Done():
				return drover.Errorf(drover.ETIMEOUT, "analysis %s of group %s: the verdict ran out of time", a.Name, group)
			case <-w.halted:
				return drover.Errorf(drover.EFAILED, "the deploy halted during the analysis of group %s", group)
			case <-time.After(analysisInterval(a)):
			}
		}
	}
	if len(fails) > 0 {
		return drover.Errorf(drover.EFAILED, "%s", strings.Join(fails, "; "))
	}
	close(ga.verdict)
	return nil
}

// judgement is the outcome of one evaluation.
type judgement int

const (
	judgedPass judgement = iota
	judgedFail
	judgedMissing // no data (or the metrics could not be read)
)

// evaluate runs one analysis once. The message says why it failed, or
// what was missing, or (a pass) what was seen. on_no_data: pass turns
// missing data into a pass here. The evaluation is for the caller to
// record once it knows whether it halts the deploy.
func (w *canaryWatch) evaluate(ctx context.Context, ga *groupAnalysis, a drover.AnalysisSpec) (judgement, string, drover.AnalysisEval) {
	ev := drover.AnalysisEval{At: w.r.now(), Name: a.Name, Group: ga.group.Name, Kind: a.Kind,
		Canary: ga.canary, Baseline: ga.baseline, Since: ga.since, Max: a.Max, Min: a.Min}
	if a.Kind == drover.AnalysisBaseline || a.Kind == drover.AnalysisTrend {
		ev.Window = a.Window
		if ev.Window <= 0 {
			ev.Window = drover.DefaultAnalysisWindow
		}
	}
	o, msg := w.judge(ctx, ga, a, ev.At)
	ev.Status, ev.Message = drover.AnalysisPass, msg
	switch o {
	case judgedFail:
		ev.Status = drover.AnalysisFail
	case judgedMissing:
		ev.Status = drover.AnalysisNoData
	}
	return o, msg, ev
}

// record journals one evaluation and reports it as an analysis event:
// `drover show` and the dashboard's canary chart read them back.
func (w *canaryWatch) record(ev drover.AnalysisEval) {
	outcome := string(rollout.OK)
	switch ev.Status {
	case drover.AnalysisFail:
		outcome = string(rollout.Failed)
	case drover.AnalysisNoData:
		outcome = drover.AnalysisNoData
	}
	w.r.journal(w.parent, w.x.deployID, drover.JournalEntry{At: ev.At, Step: drover.StepAnalysis, Phase: "done", Outcome: outcome, Reason: ev.Message, Analysis: &ev})
	w.r.emit(drover.Event{Time: ev.At, Deploy: w.x.deployID, Kind: drover.EventAnalysis, Group: ev.Group, Message: ev.Message, Analysis: &ev})
}

// judge is one evaluation's outcome and message.
func (w *canaryWatch) judge(ctx context.Context, ga *groupAnalysis, a drover.AnalysisSpec, now time.Time) (judgement, string) {
	where := fmt.Sprintf("analysis %s of group %s", a.Name, ga.group.Name)
	queries, err := w.queries(ga, a)
	if err != nil {
		return judgedFail, where + ": " + err.Error()
	}
	actx, cancel := context.WithTimeout(ctx, analysisTimeout(a))
	defer cancel()
	in := drover.AnalysisInput{Queries: queries, Canary: ga.canary, Baseline: ga.baseline, Since: ga.since, Now: now}
	res, err := w.r.Analyzer.Analyze(actx, a, in)
	if err != nil {
		if drover.ErrorCode(err) == drover.EINVALID {
			// A query the analysis can never answer is not missing
			// data: waiting for the verdict would only delay the halt.
			return judgedFail, where + ": " + err.Error()
		}
		res = drover.AnalysisResult{Status: drover.AnalysisNoData, Message: "metrics unavailable: " + err.Error()}
	}
	switch {
	case res.Status == drover.AnalysisPass:
		return judgedPass, res.Message
	case res.Status == drover.AnalysisFail:
		return judgedFail, where + " failed: " + res.Message
	case a.OnNoData == "pass":
		return judgedPass, "without data (on_no_data: pass): " + res.Message
	}
	// Fail closed: a canary whose metrics stopped is not a healthy one.
	return judgedMissing, where + " failed closed: " + res.Message + " (set on_no_data: pass to accept missing data)"
}

// queries renders a's query for each canary host; when every rendering is
// the same, the query does not depend on the host and runs once.
func (w *canaryWatch) queries(ga *groupAnalysis, a drover.AnalysisSpec) ([]drover.AnalysisQuery, error) {
	grp := drover.NewAnalysisGroup(ga.group.Name, ga.canary)
	out := make([]drover.AnalysisQuery, 0, len(ga.canary))
	same := true
	for _, name := range ga.canary {
		h, ok := w.x.spec.Host(name)
		if !ok {
			return nil, drover.Errorf(drover.EINTERNAL, "unknown host %s", name)
		}
		data := drover.AnalysisData{TemplateData: drover.NewTemplateData(w.x.spec, h, w.x.release.ID(), w.x.release.Version()), Group: grp}
		q, err := drover.Render("analysis "+a.Name+" query", a.Query, data)
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && q != out[0].Query {
			same = false
		}
		out = append(out, drover.AnalysisQuery{Host: name, Query: q})
	}
	if same && len(out) > 0 {
		return []drover.AnalysisQuery{{Query: out[0].Query}}, nil
	}
	return out, nil
}

// planHosts are the names of a group plan's hosts.
func planHosts(gp rollout.GroupPlan) []string {
	out := make([]string, len(gp.Hosts))
	for i, h := range gp.Hosts {
		out[i] = h.Name
	}
	return out
}
