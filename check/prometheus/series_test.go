package prometheus

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"drover"
)

// Series: a shared query's series go to the host their label names (a
// series without one is left out), a per-host query's to its host; NaN
// points are dropped; a long range is asked at a step that keeps the
// points under MaxChartPoints.
func TestSeries(t *testing.T) {
	f := &fakeProm{t: t, answer: func(path, q string, form map[string]string) []Series {
		if path != "/api/v1/query_range" {
			t.Errorf("asked %s, want a range query", path)
		}
		if q == "per-host h02" {
			return []Series{{Labels: map[string]string{}, Points: points(3, time.Second, func(i int) float64 { return 2 })}}
		}
		return []Series{
			host("h01", points(4, time.Second, func(i int) float64 {
				if i == 1 {
					return nan()
				}
				return float64(i)
			})),
			{Labels: map[string]string{"job": "x"}, Points: points(2, time.Second, func(int) float64 { return 9 })},
		}
	}}
	url := f.start()
	z := &Analyzer{}
	a := drover.AnalysisSpec{Name: "errors", Prometheus: url}
	ss, err := z.Series(context.Background(), a, []drover.AnalysisQuery{{Query: "shared"}, {Host: "h02", Query: "per-host h02"}}, now.Add(-time.Hour), now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 || ss[0].Host != "h01" || len(ss[0].Points) != 3 || ss[1].Host != "h02" || len(ss[1].Points) != 3 {
		t.Fatalf("series %+v, want h01 (3 points, NaN dropped) and h02 (3)", ss)
	}
	// An hour at most MaxChartPoints points: a step of 6s.
	for _, asked := range f.asked {
		if !strings.Contains(asked, "query_range") {
			t.Errorf("asked %q", asked)
		}
	}
	step := 0.0
	f.answer = func(path, q string, form map[string]string) []Series {
		step, _ = strconv.ParseFloat(form["step"], 64)
		return nil
	}
	if _, err := z.Series(context.Background(), a, []drover.AnalysisQuery{{Query: "q"}}, now.Add(-time.Hour), now, 0); err != nil {
		t.Fatal(err)
	}
	if step < time.Hour.Seconds()/MaxChartPoints {
		t.Errorf("step %vs over an hour: more than %d points", step, MaxChartPoints)
	}
	if _, err := z.Series(context.Background(), a, []drover.AnalysisQuery{{Query: "q"}}, now, now, 0); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("empty range: %v, want EINVALID", err)
	}
}
