package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"drover"
)

// fakeProm answers the Prometheus HTTP API from a function of the request,
// as the real server's JSON: what the analyses see is exactly the wire
// format (the end-to-end tests in cmd/drover use a real Prometheus).
type fakeProm struct {
	t *testing.T
	// answer returns the series for one query; nil means no series.
	answer func(path, query string, form map[string]string) []Series
	asked  []string
}

func (f *fakeProm) start() string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		q := r.PostForm.Get("query")
		f.asked = append(f.asked, r.URL.Path+" "+q)
		if q == "syntax error(" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:14: parse error: unclosed left parenthesis"}`)
			return
		}
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		ss := f.answer(r.URL.Path, q, form)
		typ := "matrix"
		if r.URL.Path == "/api/v1/query" {
			typ = "vector"
		}
		var result []map[string]any
		for _, s := range ss {
			e := map[string]any{"metric": s.Labels}
			var pts [][]any
			for _, p := range s.Points {
				pts = append(pts, []any{float64(p.T.UnixMilli()) / 1000, strconv.FormatFloat(p.V, 'f', -1, 64)})
			}
			if typ == "vector" {
				e["value"] = pts[len(pts)-1]
			} else {
				e["values"] = pts
			}
			result = append(result, e)
		}
		if result == nil {
			result = []map[string]any{}
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": typ, "result": result}})
	}))
	f.t.Cleanup(srv.Close)
	return srv.URL
}

var now = time.Unix(1_700_000_000, 0)

// points returns n points ending at now, every step, with values v(i).
func points(n int, step time.Duration, v func(i int) float64) []Point {
	out := make([]Point, n)
	for i := range out {
		out[i] = Point{T: now.Add(-time.Duration(n-1-i) * step), V: v(i)}
	}
	return out
}

func host(h string, pts []Point) Series {
	return Series{Labels: map[string]string{"host": h}, Points: pts}
}

func ptr(v float64) *float64 { return &v }

func analyze(t *testing.T, url string, a drover.AnalysisSpec, in drover.AnalysisInput) drover.AnalysisResult {
	t.Helper()
	a.Prometheus = url
	if in.Now.IsZero() {
		in.Now = now
	}
	z := &Analyzer{}
	r, err := z.Analyze(context.Background(), a, in)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	return r
}

func oneQuery(q string) []drover.AnalysisQuery { return []drover.AnalysisQuery{{Query: q}} }

func TestThreshold(t *testing.T) {
	f := &fakeProm{t: t, answer: func(_, q string, _ map[string]string) []Series {
		return []Series{
			host("h01", points(1, time.Second, func(int) float64 { return 0.2 })),
			host("h02", points(1, time.Second, func(int) float64 { return 0.01 })),
			host("h03", points(1, time.Second, func(int) float64 { return 0.5 })), // not judged
		}
	}}
	url := f.start()
	a := drover.AnalysisSpec{Name: "errors", Kind: drover.AnalysisThreshold, Max: ptr(0.05)}
	r := analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("err_ratio"), Canary: []string{"h01", "h02"}})
	if r.Status != drover.AnalysisFail {
		t.Fatalf("status %s: %s", r.Status, r.Message)
	}
	for _, want := range []string{"h01=0.2 above max 0.05", `query "err_ratio"`} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message %q lacks %q", r.Message, want)
		}
	}
	if strings.Contains(r.Message, "h03") || strings.Contains(r.Message, "h02=0.01 above") {
		t.Errorf("message judges hosts it must not: %q", r.Message)
	}
	r = analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("err_ratio"), Canary: []string{"h02"}})
	if r.Status != drover.AnalysisPass {
		t.Fatalf("h02 alone: %s: %s", r.Status, r.Message)
	}
	a.Max, a.Min = nil, ptr(0.1)
	r = analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("err_ratio"), Canary: []string{"h02"}})
	if r.Status != drover.AnalysisFail || !strings.Contains(r.Message, "below min 0.1") {
		t.Fatalf("min: %s: %s", r.Status, r.Message)
	}
}

// A canary host without a series is missing data, even when the other
// canary hosts report: that host is not being watched.
func TestThresholdMissingHostIsNoData(t *testing.T) {
	f := &fakeProm{t: t, answer: func(_, q string, _ map[string]string) []Series {
		return []Series{host("h01", points(1, time.Second, func(int) float64 { return 0 }))}
	}}
	url := f.start()
	a := drover.AnalysisSpec{Name: "errors", Kind: drover.AnalysisThreshold, Max: ptr(0.05)}
	r := analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("err_ratio"), Canary: []string{"h01", "h02"}})
	if r.Status != drover.AnalysisNoData || !strings.Contains(r.Message, "no data for h02") {
		t.Fatalf("%s: %s", r.Status, r.Message)
	}
}

// A per-host query judges the host it was rendered for; NaN (0/0) is no
// data.
func TestThresholdPerHostAndNaN(t *testing.T) {
	f := &fakeProm{t: t, answer: func(_, q string, _ map[string]string) []Series {
		v := map[string]float64{`r{host="h01"}`: 0.01, `r{host="h02"}`: nan()}[q]
		return []Series{{Labels: map[string]string{}, Points: points(1, time.Second, func(int) float64 { return v })}}
	}}
	url := f.start()
	a := drover.AnalysisSpec{Name: "errors", Kind: drover.AnalysisThreshold, Max: ptr(0.05)}
	in := drover.AnalysisInput{Queries: []drover.AnalysisQuery{{Host: "h01", Query: `r{host="h01"}`}, {Host: "h02", Query: `r{host="h02"}`}}, Canary: []string{"h01", "h02"}}
	r := analyze(t, url, a, in)
	if r.Status != drover.AnalysisNoData || !strings.Contains(r.Message, "no data for h02") {
		t.Fatalf("%s: %s", r.Status, r.Message)
	}
	in.Queries, in.Canary = in.Queries[:1], in.Canary[:1]
	if r := analyze(t, url, a, in); r.Status != drover.AnalysisPass || !strings.Contains(r.Message, "h01=0.01") {
		t.Fatalf("%s: %s", r.Status, r.Message)
	}
}

func nan() float64 { v, _ := strconv.ParseFloat("NaN", 64); return v }

func fleetSeries(canaryErr float64) func(string, string, map[string]string) []Series {
	return func(path, q string, form map[string]string) []Series {
		var out []Series
		for i, h := range []string{"h01", "h02", "h03", "h04", "h05", "h06"} {
			base := 0.0
			if h == "h01" {
				base = canaryErr
			}
			out = append(out, host(h, points(20, time.Second, func(k int) float64 {
				return base + float64((i+k)%3)*0.001 // small noise
			})))
		}
		return out
	}
}

func TestBaseline(t *testing.T) {
	bad := &fakeProm{t: t, answer: fleetSeries(0.2)}
	a := drover.AnalysisSpec{Name: "errors", Kind: drover.AnalysisBaseline, MaxIncrease: 0.1, IncreaseRelative: true, Window: 20 * time.Second}
	in := drover.AnalysisInput{Queries: oneQuery("err"), Canary: []string{"h01"}, Baseline: []string{"h02", "h03", "h04", "h05", "h06"}}
	r := analyze(t, bad.start(), a, in)
	if r.Status != drover.AnalysisFail {
		t.Fatalf("20%% errors: %s: %s", r.Status, r.Message)
	}
	for _, want := range []string{"significantly above baseline", "canary median 0.201", "baseline median 0.001", "allowed +10%", "Mann-Whitney"} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message %q lacks %q", r.Message, want)
		}
	}
	if !strings.Contains(bad.asked[0], "/api/v1/query_range") {
		t.Errorf("asked %v, want a range query", bad.asked)
	}

	good := &fakeProm{t: t, answer: fleetSeries(0)}
	if r := analyze(t, good.start(), a, in); r.Status != drover.AnalysisPass {
		t.Fatalf("healthy: %s: %s", r.Status, r.Message)
	}

	// Within the tolerance: 0.2 against 0.2 allowed +0.05 absolute.
	a.MaxIncrease, a.IncreaseRelative = 0.05, false
	level := &fakeProm{t: t, answer: func(p, q string, f map[string]string) []Series {
		ss := fleetSeries(0)(p, q, f)
		for i := range ss {
			for k := range ss[i].Points {
				ss[i].Points[k].V += 0.2
			}
		}
		ss[0].Points[0].V += 0.03
		return ss
	}}
	if r := analyze(t, level.start(), a, in); r.Status != drover.AnalysisPass {
		t.Fatalf("within tolerance: %s: %s", r.Status, r.Message)
	}

	// Lower is worse: a success ratio dropping.
	a = drover.AnalysisSpec{Name: "success", Kind: drover.AnalysisBaseline, MaxIncrease: 0.01, Decrease: true}
	drop := &fakeProm{t: t, answer: func(p, q string, f map[string]string) []Series {
		ss := fleetSeries(-0.2)(p, q, f)
		return ss
	}}
	if r := analyze(t, drop.start(), a, in); r.Status != drover.AnalysisFail || !strings.Contains(r.Message, "below baseline") {
		t.Fatalf("decrease: %s: %s", r.Status, r.Message)
	}
}

func TestBaselineWindowStartsAtSince(t *testing.T) {
	f := &fakeProm{t: t, answer: func(_, _ string, form map[string]string) []Series {
		start, _ := strconv.ParseFloat(form["start"], 64)
		if int64(start) != now.Add(-30*time.Second).Unix() {
			t.Errorf("range starts at %v, want since (now-30s)", form["start"])
		}
		return fleetSeries(0)("", "", nil)
	}}
	a := drover.AnalysisSpec{Name: "errors", Kind: drover.AnalysisBaseline, Window: 2 * time.Minute, Step: time.Second}
	analyze(t, f.start(), a, drover.AnalysisInput{Queries: oneQuery("err"), Canary: []string{"h01"}, Baseline: []string{"h02"}, Since: now.Add(-30 * time.Second)})
}

func TestBaselineNoData(t *testing.T) {
	a := drover.AnalysisSpec{Name: "errors", Kind: drover.AnalysisBaseline}
	in := drover.AnalysisInput{Queries: oneQuery("err"), Canary: []string{"h01"}, Baseline: []string{"h02"}}
	onlyBase := &fakeProm{t: t, answer: func(string, string, map[string]string) []Series {
		return []Series{host("h02", points(10, time.Second, func(int) float64 { return 0 }))}
	}}
	if r := analyze(t, onlyBase.start(), a, in); r.Status != drover.AnalysisNoData || !strings.Contains(r.Message, "no data for h01") {
		t.Fatalf("canary silent: %s: %s", r.Status, r.Message)
	}
	onlyCanary := &fakeProm{t: t, answer: func(string, string, map[string]string) []Series {
		return []Series{host("h01", points(10, time.Second, func(int) float64 { return 0.2 }))}
	}}
	if r := analyze(t, onlyCanary.start(), a, in); r.Status != drover.AnalysisNoData || !strings.Contains(r.Message, "baseline") {
		t.Fatalf("no baseline: %s: %s", r.Status, r.Message)
	}
	few := &fakeProm{t: t, answer: func(string, string, map[string]string) []Series {
		return []Series{host("h01", points(2, time.Second, func(int) float64 { return 0.9 })), host("h02", points(10, time.Second, func(int) float64 { return 0 }))}
	}}
	if r := analyze(t, few.start(), a, in); r.Status != drover.AnalysisNoData || !strings.Contains(r.Message, "2 samples") {
		t.Fatalf("too few: %s: %s", r.Status, r.Message)
	}
	unlabelled := &fakeProm{t: t, answer: func(string, string, map[string]string) []Series {
		return []Series{{Labels: map[string]string{}, Points: points(10, time.Second, func(int) float64 { return 0 })}}
	}}
	a.Prometheus = unlabelled.start()
	if _, err := (&Analyzer{}).Analyze(context.Background(), a, drover.AnalysisInput{Queries: oneQuery("err"), Canary: []string{"h01"}, Now: now}); err == nil || !strings.Contains(err.Error(), `no "host" label`) {
		t.Fatalf("unlabelled series: err = %v", err)
	}
}

func TestTrend(t *testing.T) {
	// Memory growing 1 MiB every 10s = 6 MiB/min on h01; flat on h02.
	f := &fakeProm{t: t, answer: func(string, string, map[string]string) []Series {
		return []Series{
			host("h01", points(13, 5*time.Second, func(i int) float64 { return 50e6 + float64(i)*(1<<20)/2 })),
			host("h02", points(13, 5*time.Second, func(int) float64 { return 50e6 })),
		}
	}}
	url := f.start()
	a := drover.AnalysisSpec{Name: "memory", Kind: drover.AnalysisTrend, MaxSlope: ptr(1 << 20), Window: time.Minute, Step: 5 * time.Second}
	r := analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("rss"), Canary: []string{"h01", "h02"}})
	if r.Status != drover.AnalysisFail || !strings.Contains(r.Message, "h01 rising 6.291e+06/min (max_slope 1.049e+06)") || strings.Contains(r.Message, "h02 rising") {
		t.Fatalf("%s: %s", r.Status, r.Message)
	}
	r = analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("rss"), Canary: []string{"h02"}})
	if r.Status != drover.AnalysisPass || !strings.Contains(r.Message, "h02 0/min over 13 points") {
		t.Fatalf("flat: %s: %s", r.Status, r.Message)
	}
	a.MaxSlope, a.MinSlope = nil, ptr(0)
	few := &fakeProm{t: t, answer: func(string, string, map[string]string) []Series {
		return []Series{host("h01", points(2, 5*time.Second, func(i int) float64 { return float64(i) }))}
	}}
	if r := analyze(t, few.start(), a, drover.AnalysisInput{Queries: oneQuery("rss"), Canary: []string{"h01"}}); r.Status != drover.AnalysisNoData {
		t.Fatalf("two points: %s: %s", r.Status, r.Message)
	}
}

func TestFreshness(t *testing.T) {
	f := &fakeProm{t: t, answer: func(_, q string, _ map[string]string) []Series {
		if !strings.HasPrefix(q, "timestamp(") {
			t.Errorf("query %q, want timestamp(...)", q)
		}
		return []Series{
			host("h01", points(1, time.Second, func(int) float64 { return float64(now.Add(-2 * time.Second).Unix()) })),
			host("h02", points(1, time.Second, func(int) float64 { return float64(now.Add(-90 * time.Second).Unix()) })),
		}
	}}
	url := f.start()
	a := drover.AnalysisSpec{Name: "scraped", Kind: drover.AnalysisFreshness, MaxAge: 30 * time.Second}
	r := analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("up"), Canary: []string{"h01", "h02"}})
	if r.Status != drover.AnalysisFail || !strings.Contains(r.Message, "h02: newest sample 1m30s old") {
		t.Fatalf("%s: %s", r.Status, r.Message)
	}
	if r := analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("up"), Canary: []string{"h01"}}); r.Status != drover.AnalysisPass {
		t.Fatalf("%s: %s", r.Status, r.Message)
	}
}

func TestQueryErrors(t *testing.T) {
	f := &fakeProm{t: t, answer: func(string, string, map[string]string) []Series { return nil }}
	url := f.start()
	a := drover.AnalysisSpec{Name: "x", Kind: drover.AnalysisThreshold, Max: ptr(1), Prometheus: url}
	_, err := (&Analyzer{}).Analyze(context.Background(), a, drover.AnalysisInput{Queries: oneQuery("syntax error("), Canary: []string{"h01"}, Now: now})
	if err == nil || !strings.Contains(err.Error(), "bad_data") || !strings.Contains(err.Error(), "unclosed left parenthesis") {
		t.Fatalf("err = %v", err)
	}
	r := analyze(t, url, a, drover.AnalysisInput{Queries: oneQuery("nothing"), Canary: []string{"h01"}})
	if r.Status != drover.AnalysisNoData || !strings.Contains(r.Message, `query "nothing"`) {
		t.Fatalf("%s: %s", r.Status, r.Message)
	}
	// Nothing listening.
	a.Prometheus = "http://127.0.0.1:1"
	_, err = (&Analyzer{}).Analyze(context.Background(), a, drover.AnalysisInput{Queries: oneQuery("up"), Canary: []string{"h01"}, Now: now})
	if drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), "prometheus 127.0.0.1:1") {
		t.Fatalf("unreachable: %v", err)
	}
	a.Prometheus = "ftp://x"
	if _, err := (&Analyzer{}).Analyze(context.Background(), a, drover.AnalysisInput{Queries: oneQuery("up"), Now: now}); drover.ErrorCode(err) != drover.EINVALID {
		t.Fatalf("bad url: %v", err)
	}
}

func TestParseScalarAndMatrix(t *testing.T) {
	ss, err := parseResult(apiData{ResultType: "scalar", Result: json.RawMessage(`[1700000000.5,"3.25"]`)})
	if err != nil || len(ss) != 1 || ss[0].Points[0].V != 3.25 || ss[0].Points[0].T.UnixMilli() != 1700000000500 {
		t.Fatalf("scalar: %v %v", ss, err)
	}
	ss, err = parseResult(apiData{ResultType: "matrix", Result: json.RawMessage(`[{"metric":{"host":"h01"},"values":[[1,"1"],[2,"+Inf"]]}]`)})
	if err != nil || len(ss[0].Points) != 2 || ss[0].Labels["host"] != "h01" {
		t.Fatalf("matrix: %v %v", ss, err)
	}
	if _, err := parseResult(apiData{ResultType: "string", Result: json.RawMessage(`[1,"x"]`)}); err == nil {
		t.Fatal("string result: no error")
	}
}
