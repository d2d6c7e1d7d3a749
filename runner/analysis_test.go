package runner

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

// fakeAnalyzer is a drover.Analyzer whose answer is a function of the
// analysis, its input and how often it was asked.
type fakeAnalyzer struct {
	mu     sync.Mutex
	calls  []drover.AnalysisInput
	byName map[string]int
	answer func(a drover.AnalysisSpec, in drover.AnalysisInput, n int) (drover.AnalysisResult, error)
}

func (f *fakeAnalyzer) Analyze(ctx context.Context, a drover.AnalysisSpec, in drover.AnalysisInput) (drover.AnalysisResult, error) {
	f.mu.Lock()
	if f.byName == nil {
		f.byName = map[string]int{}
	}
	f.byName[a.Name]++
	n := f.byName[a.Name]
	f.calls = append(f.calls, in)
	f.mu.Unlock()
	return f.answer(a, in, n)
}

func (f *fakeAnalyzer) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byName[name]
}

func pass(msg string) drover.AnalysisResult {
	return drover.AnalysisResult{Status: drover.AnalysisPass, Message: msg}
}

// analysisEnv is a test env on the real clock: bake times are measured
// with the clock the loop's timer uses.
func analysisEnv(t *testing.T, n int) *env {
	e := newEnv(t, testSpec(n))
	e.r.Now = time.Now
	return e
}

func errorsAnalysis() drover.AnalysisSpec {
	return drover.AnalysisSpec{Name: "errors", Kind: drover.AnalysisThreshold, Query: `err{host="{{.Host.Name}}"}`, Interval: 20 * time.Millisecond, Timeout: time.Second}
}

func promoted(e *env, host string) bool { return len(e.log.ops(host, opPromote)) > 0 }

// A failure found while the canary bakes halts at once — the bake is not
// waited out — and everything switched rolls back; the reason carries the
// analyzer's words (query, values, threshold).
func TestAnalysisFailureDuringBakeHalts(t *testing.T) {
	e := analysisEnv(t, 4)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.states()
	mark := e.log.mark()
	e.spec.Groups[0].Wait = time.Hour
	e.spec.Groups[0].Analysis = []drover.AnalysisSpec{errorsAnalysis()}
	e.r.Analyzer = &fakeAnalyzer{answer: func(a drover.AnalysisSpec, in drover.AnalysisInput, n int) (drover.AnalysisResult, error) {
		if n < 3 {
			return pass("ok"), nil
		}
		return drover.AnalysisResult{Status: drover.AnalysisFail, Message: `errors: h01=0.2 above max 0.05; query "err"`}, nil
	}}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.Verdict != rollout.RolledBack {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	if len(e.log.where(func(c call) bool { return c.Seq >= mark && c.Host == "h02" && c.Op == opPromote })) > 0 {
		t.Error("h02 was switched: the halt came after the canary group")
	}
	if want := "analysis errors of group canary failed: errors: h01=0.2 above max 0.05"; !strings.Contains(out.Summary, want) {
		t.Errorf("summary %q lacks %q", out.Summary, want)
	}
	e.wantSnapshots(before)
}

// Missing data is waited out during the bake (a restarted service has no
// rates yet) and fails closed at the verdict, unless on_no_data: pass.
func TestAnalysisNoDataFailsClosedAtVerdict(t *testing.T) {
	for _, onNoData := range []string{"", "pass"} {
		t.Run("on_no_data="+onNoData, func(t *testing.T) {
			e := analysisEnv(t, 3)
			a := errorsAnalysis()
			a.OnNoData = onNoData
			e.spec.Groups[0].Wait = 150 * time.Millisecond
			e.spec.Groups[0].Analysis = []drover.AnalysisSpec{a}
			fa := &fakeAnalyzer{answer: func(drover.AnalysisSpec, drover.AnalysisInput, int) (drover.AnalysisResult, error) {
				return drover.AnalysisResult{Status: drover.AnalysisNoData, Message: `errors: no data for h01 from query "err"`}, nil
			}}
			e.r.Analyzer = fa
			out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
			if fa.count("errors") < 2 {
				t.Errorf("analysis ran %d times; want during the bake and at the verdict", fa.count("errors"))
			}
			if onNoData == "pass" {
				if out.Verdict != rollout.Succeeded {
					t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
				}
				return
			}
			if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "failed closed: errors: no data for h01") {
				t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
			}
			if promoted(e, "h02") {
				t.Error("h02 switched although the canary had no data")
			}
		})
	}
}

// An analyzer error (Prometheus down) is missing data, not a pass.
func TestAnalysisErrorIsMissingData(t *testing.T) {
	e := analysisEnv(t, 3)
	e.spec.Analysis = []drover.AnalysisSpec{errorsAnalysis()}
	e.r.Analyzer = &fakeAnalyzer{answer: func(drover.AnalysisSpec, drover.AnalysisInput, int) (drover.AnalysisResult, error) {
		return drover.AnalysisResult{}, drover.Errorf(drover.EFAILED, "prometheus 127.0.0.1:9: connection refused")
	}}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "metrics unavailable: prometheus 127.0.0.1:9: connection refused") {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
}

// After its verdict a group's analysis goes on in the background through
// later groups: a failure there halts the deploy and rolls back every
// group, the canary included.
func TestAnalysisKeepsRunningThroughLaterGroups(t *testing.T) {
	e := analysisEnv(t, 5)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.states()
	e.spec.Groups[0].Analysis = []drover.AnalysisSpec{errorsAnalysis()}
	// h03's switch waits until the analysis has failed in the background.
	held := e.fleet.Hold("h03", opPromote)
	halted := e.events.next(drover.EventHalt)
	released := make(chan struct{})
	go func() {
		defer close(released)
		select {
		case <-halted:
		case <-time.After(time.Minute):
		}
		held.Release()
	}()
	defer func() { <-released }()
	e.r.Analyzer = &fakeAnalyzer{answer: func(a drover.AnalysisSpec, in drover.AnalysisInput, n int) (drover.AnalysisResult, error) {
		if e.fleet.State("h02").Version != "2.0.0" {
			return pass("ok"), nil
		}
		return drover.AnalysisResult{Status: drover.AnalysisFail, Message: "memory: h01 rising"}, nil
	}}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "analysis errors of group canary failed: memory: h01 rising") {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	e.wantSnapshots(before)
	for _, h := range []string{"h04", "h05"} {
		if promoted(e, h) && e.fleet.State(h).Version != "1.0.0" {
			t.Errorf("%s left on the new release", h)
		}
	}
}

// Queries are rendered per host when they name the host, once otherwise;
// the canary is the group's hosts and the baseline every other host; the
// window starts when the group finished.
func TestAnalysisInputs(t *testing.T) {
	e := analysisEnv(t, 5)
	// A canary of three hosts, h02..h04, after a first group h01.
	first := drover.Group{Name: "first", Hosts: []string{"h01"}, Batch: 1}
	canary := drover.Group{Name: "canary", Hosts: []string{"h02", "h03", "h04"}, Batch: 3}
	rest := drover.Group{Name: "rest", Hosts: []string{"h05"}, Batch: 1}
	e.spec.Groups = []drover.Group{first, canary, rest}
	for i := range e.spec.Hosts {
		e.spec.Hosts[i].Group = map[string]string{"h01": "first", "h05": "rest"}[e.spec.Hosts[i].Name]
		if e.spec.Hosts[i].Group == "" {
			e.spec.Hosts[i].Group = "canary"
		}
	}
	shared := drover.AnalysisSpec{Name: "ratio", Kind: drover.AnalysisBaseline, Query: `sum by (host) (rate(x{service="{{.Service}}",host=~"{{.Group.HostRegex}}|.*"}[1m]))`, Interval: time.Hour}
	e.spec.Groups[1].Analysis = []drover.AnalysisSpec{errorsAnalysis(), shared}
	fa := &fakeAnalyzer{answer: func(drover.AnalysisSpec, drover.AnalysisInput, int) (drover.AnalysisResult, error) {
		return pass("ok"), nil
	}}
	e.r.Analyzer = fa
	start := time.Now()
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	var perHost, once *drover.AnalysisInput
	fa.mu.Lock()
	for i := range fa.calls {
		c := &fa.calls[i]
		if len(c.Queries) > 1 {
			perHost = c
		} else {
			once = c
		}
	}
	fa.mu.Unlock()
	if perHost == nil || once == nil {
		t.Fatalf("calls %+v", fa.calls)
	}
	want := []drover.AnalysisQuery{{Host: "h02", Query: `err{host="h02"}`}, {Host: "h03", Query: `err{host="h03"}`}, {Host: "h04", Query: `err{host="h04"}`}}
	if len(perHost.Queries) != 3 || perHost.Queries[0] != want[0] || perHost.Queries[2] != want[2] {
		t.Errorf("per-host queries %+v, want %+v", perHost.Queries, want)
	}
	if once.Queries[0].Query != `sum by (host) (rate(x{service="hello",host=~"h02|h03|h04|.*"}[1m]))` || once.Queries[0].Host != "" {
		t.Errorf("shared query %+v", once.Queries)
	}
	if strings.Join(once.Canary, ",") != "h02,h03,h04" || strings.Join(once.Baseline, ",") != "h05" {
		t.Errorf("canary %v baseline %v: want the group against the hosts not switched yet", once.Canary, once.Baseline)
	}
	if once.Since.Before(start) || once.Now.Before(once.Since) {
		t.Errorf("since %v now %v", once.Since, once.Now)
	}
}

func TestAnalysisWithoutAnalyzerFails(t *testing.T) {
	e := analysisEnv(t, 2)
	e.spec.Groups[0].Analysis = []drover.AnalysisSpec{errorsAnalysis()}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "no metrics analyzer") {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
}

// A bake without analyses is the core's wait: the next group starts only
// after it.
func TestBakeWaits(t *testing.T) {
	e := analysisEnv(t, 3)
	e.spec.Groups[0].Wait = 200 * time.Millisecond
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	var bakeStart, bakeDone time.Time
	for _, ev := range e.events.all() {
		switch {
		case ev.Kind == drover.EventGateStart && strings.HasPrefix(ev.Message, "bake"):
			bakeStart = ev.Time
		case ev.Kind == drover.EventGateDone && strings.HasPrefix(ev.Message, "bake"):
			bakeDone = ev.Time
		}
	}
	if bakeStart.IsZero() || bakeDone.Sub(bakeStart) < 200*time.Millisecond {
		t.Errorf("bake from %v to %v, want at least 200ms", bakeStart, bakeDone)
	}
	h01 := e.log.ops("h01", opCheck)
	h02 := e.log.ops("h02", opPromote)
	if len(h01) == 0 || len(h02) == 0 || h02[0].Seq < h01[0].Seq {
		t.Errorf("h02 switched before the canary was done")
	}
}

// After the last group there is no rest of the fleet: a baseline
// comparison is left out (and said so), not failed closed for want of a
// baseline.
func TestAnalysisBaselineSkippedWithoutBaseline(t *testing.T) {
	e := analysisEnv(t, 3)
	base := drover.AnalysisSpec{Name: "vs-fleet", Kind: drover.AnalysisBaseline, Query: "x", Interval: 20 * time.Millisecond}
	e.spec.Analysis = []drover.AnalysisSpec{base}
	fa := &fakeAnalyzer{answer: func(a drover.AnalysisSpec, in drover.AnalysisInput, n int) (drover.AnalysisResult, error) {
		if len(in.Baseline) == 0 {
			return drover.AnalysisResult{Status: drover.AnalysisNoData, Message: "no baseline"}, nil
		}
		return pass("ok"), nil
	}}
	e.r.Analyzer = fa
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.Verdict != rollout.Succeeded {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	fa.mu.Lock()
	for _, c := range fa.calls {
		if strings.Join(c.Canary, ",") != "h01" {
			t.Errorf("evaluated for %v: the last group has no baseline", c.Canary)
		}
	}
	fa.mu.Unlock()
	var said bool
	for _, ev := range e.events.all() {
		said = said || strings.Contains(ev.Message, "not vs-fleet: no host is left to compare with")
	}
	if !said {
		t.Error("no notice that the comparison was left out")
	}
}

// A group without a bake reaches its verdict a moment after its last
// restart: data arriving within the grace passes; data that never comes
// fails closed once the grace is over.
func TestAnalysisVerdictGrace(t *testing.T) {
	e := analysisEnv(t, 2)
	e.spec.Groups[0].Analysis = []drover.AnalysisSpec{errorsAnalysis()}
	e.r.Analyzer = &fakeAnalyzer{answer: func(a drover.AnalysisSpec, in drover.AnalysisInput, n int) (drover.AnalysisResult, error) {
		if n < 3 {
			return drover.AnalysisResult{Status: drover.AnalysisNoData, Message: "no data yet"}, nil
		}
		return pass("ok"), nil
	}}
	if out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")}); out.Verdict != rollout.Succeeded {
		t.Fatalf("data within the grace: verdict %s: %s", out.Verdict, out.Summary)
	}
}

// TestAnalysisInitialDelay is the halt of a healthy release right after a
// bad one had been rolled back: the query's rate window still held the bad
// release's errors. The fake analyzer answers as such a query does —
// failing while its window reaches back before the hosts were switched —
// so without initial_delay the healthy release halts, and with an
// initial_delay of the window nothing is evaluated before it and the
// deploy succeeds.
func TestAnalysisInitialDelay(t *testing.T) {
	const window = 300 * time.Millisecond
	for _, delay := range []time.Duration{0, window} {
		t.Run(delay.String(), func(t *testing.T) {
			e := analysisEnv(t, 2)
			a := errorsAnalysis()
			a.InitialDelay = delay
			e.spec.Groups[0].Analysis = []drover.AnalysisSpec{a}
			fa := &fakeAnalyzer{answer: func(a drover.AnalysisSpec, in drover.AnalysisInput, n int) (drover.AnalysisResult, error) {
				if in.Now.Sub(in.Since) < window {
					return drover.AnalysisResult{Status: drover.AnalysisFail, Message: "errors: h01=0.4 above max 0.05 (the previous release's errors, still in the window)"}, nil
				}
				return pass("ok"), nil
			}}
			e.r.Analyzer = fa
			out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
			if delay == 0 {
				if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "still in the window") {
					t.Fatalf("without initial_delay the window's old errors should halt it: %s %s", out.Verdict, out.Summary)
				}
				return
			}
			if out.Verdict != rollout.Succeeded {
				t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
			}
			fa.mu.Lock()
			defer fa.mu.Unlock()
			if len(fa.calls) == 0 {
				t.Fatal("never evaluated")
			}
			for _, in := range fa.calls {
				if got := in.Now.Sub(in.Since); got < delay {
					t.Errorf("evaluated %v after the hosts were done, before initial_delay %v", got, delay)
				}
			}
		})
	}
}
