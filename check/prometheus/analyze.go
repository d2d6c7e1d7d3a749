package prometheus

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"drover"
	"drover/internal/stats"
)

var _ drover.Analyzer = (*Analyzer)(nil)

// Analyzer evaluates drover.AnalysisSpecs against Prometheus.
type Analyzer struct {
	Client Client
}

// MinBaselineSamples is how many canary samples a baseline comparison
// needs before it judges. With fewer, even a canary far above the fleet
// cannot reach significance (3 against 3 has a smallest p of 1/20), so a
// pass would mean "not enough data", which is reported as such.
const MinBaselineSamples = 4

// MinTrendPoints is how many points a series needs for a slope.
const MinTrendPoints = 3

// Analyze evaluates a once; see drover.Analyzer.
func (z *Analyzer) Analyze(ctx context.Context, a drover.AnalysisSpec, in drover.AnalysisInput) (drover.AnalysisResult, error) {
	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}
	if a.HostLabel == "" {
		a.HostLabel = drover.DefaultAnalysisHostLabel
	}
	if len(in.Queries) == 0 {
		return drover.AnalysisResult{}, drover.Errorf(drover.EINVALID, "analysis %s: no query", a.Name)
	}
	switch a.Kind {
	case drover.AnalysisThreshold:
		return z.threshold(ctx, a, in)
	case drover.AnalysisFreshness:
		return z.freshness(ctx, a, in)
	case drover.AnalysisTrend:
		return z.trend(ctx, a, in)
	case drover.AnalysisBaseline:
		return z.baseline(ctx, a, in)
	}
	return drover.AnalysisResult{}, drover.Errorf(drover.EINVALID, "analysis %s: unknown kind %q", a.Name, a.Kind)
}

// hostSeries is a series attributed to a host ("" for a series without the
// host label: an aggregate judged as it is).
type hostSeries struct {
	host string
	Series
}

// canarySeries runs fetch for every query and keeps the series of the
// canary hosts: a per-host query's series belong to its host; a shared
// query's series are kept when their host label names a canary host, or
// when they have no host label at all. It returns the hosts (or queries)
// that gave no data.
func canarySeries(ctx context.Context, a drover.AnalysisSpec, in drover.AnalysisInput, fetch func(ctx context.Context, q string) ([]Series, error)) ([]hostSeries, []string, error) {
	canary := map[string]bool{}
	for _, h := range in.Canary {
		canary[h] = true
	}
	var out []hostSeries
	var missing []string
	for _, q := range in.Queries {
		ss, err := fetch(ctx, q.Query)
		if err != nil {
			return nil, nil, err
		}
		ss = dropNaN(ss)
		if q.Host != "" {
			if len(ss) == 0 {
				missing = append(missing, q.Host)
			}
			for _, s := range ss {
				out = append(out, hostSeries{q.Host, s})
			}
			continue
		}
		seen := map[string]bool{}
		labelled := false
		for _, s := range ss {
			h, ok := s.Labels[a.HostLabel]
			switch {
			case !ok:
				out = append(out, hostSeries{"", s})
			case canary[h]:
				labelled = true
				seen[h] = true
				out = append(out, hostSeries{h, s})
			default:
				labelled = true
			}
		}
		if len(ss) == 0 {
			missing = append(missing, "every host")
			continue
		}
		if labelled {
			// A shared query that labels hosts must answer for each
			// canary host: one canary silent while the others report
			// is a canary nobody is watching.
			for _, h := range in.Canary {
				if !seen[h] {
					missing = append(missing, h)
				}
			}
		}
	}
	return out, missing, nil
}

// dropNaN removes NaN points, and series left without points.
func dropNaN(ss []Series) []Series {
	out := ss[:0]
	for _, s := range ss {
		pts := s.Points[:0]
		for _, p := range s.Points {
			if !math.IsNaN(p.V) {
				pts = append(pts, p)
			}
		}
		s.Points = pts
		if len(pts) > 0 {
			out = append(out, s)
		}
	}
	return out
}

func noData(a drover.AnalysisSpec, in drover.AnalysisInput, missing []string, why string) drover.AnalysisResult {
	return drover.AnalysisResult{Status: drover.AnalysisNoData,
		Message: fmt.Sprintf("%s: no data for %s (%s) from %s", a.Name, strings.Join(missing, ", "), why, queryText(in))}
}

func queryText(in drover.AnalysisInput) string {
	q := in.Queries[0].Query
	if len(in.Queries) > 1 {
		return fmt.Sprintf("query %q (and %d more hosts)", q, len(in.Queries)-1)
	}
	return fmt.Sprintf("query %q", q)
}

func label(s hostSeries) string {
	if s.host != "" {
		return s.host
	}
	if len(s.Labels) == 0 {
		return "value"
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.Quote(s.Labels[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func (z *Analyzer) threshold(ctx context.Context, a drover.AnalysisSpec, in drover.AnalysisInput) (drover.AnalysisResult, error) {
	ss, missing, err := canarySeries(ctx, a, in, func(ctx context.Context, q string) ([]Series, error) {
		return z.Client.Query(ctx, a.Prometheus, q, in.Now)
	})
	if err != nil {
		return drover.AnalysisResult{}, err
	}
	if len(missing) > 0 {
		return noData(a, in, missing, "the query returned no series"), nil
	}
	var values, bad []string
	for _, s := range ss {
		v := s.Points[len(s.Points)-1].V
		values = append(values, label(s)+"="+num(v))
		switch {
		case a.Max != nil && v > *a.Max:
			bad = append(bad, fmt.Sprintf("%s=%s above max %s", label(s), num(v), num(*a.Max)))
		case a.Min != nil && v < *a.Min:
			bad = append(bad, fmt.Sprintf("%s=%s below min %s", label(s), num(v), num(*a.Min)))
		}
	}
	if len(bad) > 0 {
		return drover.AnalysisResult{Status: drover.AnalysisFail,
			Message: fmt.Sprintf("%s: %s; %s", a.Name, strings.Join(bad, ", "), queryText(in))}, nil
	}
	return drover.AnalysisResult{Status: drover.AnalysisPass,
		Message: fmt.Sprintf("%s: %s within %s", a.Name, strings.Join(values, ", "), bounds(a.Min, a.Max))}, nil
}

func bounds(lo, hi *float64) string {
	switch {
	case lo != nil && hi != nil:
		return fmt.Sprintf("[%s, %s]", num(*lo), num(*hi))
	case hi != nil:
		return "max " + num(*hi)
	case lo != nil:
		return "min " + num(*lo)
	}
	return "no bounds"
}

// freshness asks for the time of each series' newest sample with PromQL's
// timestamp(): for a series selector that is when it was last scraped.
func (z *Analyzer) freshness(ctx context.Context, a drover.AnalysisSpec, in drover.AnalysisInput) (drover.AnalysisResult, error) {
	ss, missing, err := canarySeries(ctx, a, in, func(ctx context.Context, q string) ([]Series, error) {
		return z.Client.Query(ctx, a.Prometheus, "timestamp("+q+")", in.Now)
	})
	if err != nil {
		return drover.AnalysisResult{}, err
	}
	if len(missing) > 0 {
		return noData(a, in, missing, "the query returned no series"), nil
	}
	var stale, ages []string
	for _, s := range ss {
		ts := s.Points[len(s.Points)-1].V
		age := in.Now.Sub(time.Unix(0, int64(ts*1e9))).Round(100 * time.Millisecond)
		ages = append(ages, fmt.Sprintf("%s %s old", label(s), age))
		if age > a.MaxAge {
			stale = append(stale, fmt.Sprintf("%s: newest sample %s old", label(s), age))
		}
	}
	if len(stale) > 0 {
		return drover.AnalysisResult{Status: drover.AnalysisFail,
			Message: fmt.Sprintf("%s: stale data, %s (max_age %s); %s", a.Name, strings.Join(stale, ", "), a.MaxAge, queryText(in))}, nil
	}
	return drover.AnalysisResult{Status: drover.AnalysisPass,
		Message: fmt.Sprintf("%s: %s (max_age %s)", a.Name, strings.Join(ages, ", "), a.MaxAge)}, nil
}

// window returns the range a range query covers: the analysis window
// ending now, but starting no earlier than in.Since, and at least one
// step long.
func window(a drover.AnalysisSpec, in drover.AnalysisInput) (start, end time.Time, step time.Duration) {
	step = a.Step
	if step <= 0 {
		step = max(time.Second, a.Interval/2)
	}
	end = in.Now
	win := a.Window
	if win <= 0 {
		win = drover.DefaultAnalysisWindow
	}
	start = end.Add(-win)
	if in.Since.After(start) {
		start = in.Since
	}
	if end.Sub(start) < step {
		start = end.Add(-step)
	}
	return start, end, step
}

func (z *Analyzer) trend(ctx context.Context, a drover.AnalysisSpec, in drover.AnalysisInput) (drover.AnalysisResult, error) {
	start, end, step := window(a, in)
	ss, missing, err := canarySeries(ctx, a, in, func(ctx context.Context, q string) ([]Series, error) {
		return z.Client.QueryRange(ctx, a.Prometheus, q, start, end, step)
	})
	if err != nil {
		return drover.AnalysisResult{}, err
	}
	if len(missing) > 0 {
		return noData(a, in, missing, "the query returned no series"), nil
	}
	var slopes, bad, few []string
	for _, s := range ss {
		if len(s.Points) < MinTrendPoints {
			few = append(few, fmt.Sprintf("%s (%d points)", label(s), len(s.Points)))
			continue
		}
		xs := make([]float64, len(s.Points))
		ys := make([]float64, len(s.Points))
		for i, p := range s.Points {
			xs[i] = float64(p.T.UnixNano()) / 1e9
			ys[i] = p.V
		}
		l, err := stats.LeastSquares(xs, ys)
		if err != nil {
			few = append(few, label(s))
			continue
		}
		perMin := l.Slope * 60
		slopes = append(slopes, fmt.Sprintf("%s %s/min over %d points", label(s), num(perMin), l.N))
		switch {
		case a.MaxSlope != nil && perMin > *a.MaxSlope:
			bad = append(bad, fmt.Sprintf("%s rising %s/min (max_slope %s)", label(s), num(perMin), num(*a.MaxSlope)))
		case a.MinSlope != nil && perMin < *a.MinSlope:
			bad = append(bad, fmt.Sprintf("%s falling %s/min (min_slope %s)", label(s), num(perMin), num(*a.MinSlope)))
		}
	}
	if len(bad) > 0 {
		return drover.AnalysisResult{Status: drover.AnalysisFail,
			Message: fmt.Sprintf("%s: %s over %s; %s", a.Name, strings.Join(bad, ", "), end.Sub(start).Round(time.Second), queryText(in))}, nil
	}
	if len(few) > 0 {
		return noData(a, in, few, fmt.Sprintf("fewer than %d points in the window", MinTrendPoints)), nil
	}
	return drover.AnalysisResult{Status: drover.AnalysisPass, Message: fmt.Sprintf("%s: %s", a.Name, strings.Join(slopes, ", "))}, nil
}

// baseline compares the canary hosts' samples over the window with the
// baseline hosts' samples over the same window. The baseline is first
// moved by the tolerance (×(1+r) or +a), then a one-sided Mann–Whitney U
// test asks whether the canary is still larger (smaller, with Decrease):
// the canary fails only when it is significantly worse by more than the
// allowed amount — noise does not fail a deploy, and neither does a real
// but tolerated difference.
func (z *Analyzer) baseline(ctx context.Context, a drover.AnalysisSpec, in drover.AnalysisInput) (drover.AnalysisResult, error) {
	if len(in.Queries) != 1 || in.Queries[0].Host != "" {
		return drover.AnalysisResult{}, drover.Errorf(drover.EINVALID, "analysis %s: a baseline query must cover every host (do not use .Host in it)", a.Name)
	}
	start, end, step := window(a, in)
	q := in.Queries[0].Query
	ss, err := z.Client.QueryRange(ctx, a.Prometheus, q, start, end, step)
	if err != nil {
		return drover.AnalysisResult{}, err
	}
	ss = dropNaN(ss)
	canary, base := map[string]bool{}, map[string]bool{}
	for _, h := range in.Canary {
		canary[h] = true
	}
	for _, h := range in.Baseline {
		base[h] = true
	}
	var x, y []float64
	seen := map[string]bool{}
	for _, s := range ss {
		h, ok := s.Labels[a.HostLabel]
		if !ok {
			return drover.AnalysisResult{}, drover.Errorf(drover.EINVALID, "analysis %s: a series of query %q has no %q label, so it belongs to neither the canary nor the baseline; keep the label (e.g. sum by (%s) (...))", a.Name, q, a.HostLabel, a.HostLabel)
		}
		for _, p := range s.Points {
			switch {
			case canary[h]:
				x = append(x, p.V)
			case base[h]:
				y = append(y, p.V)
			}
		}
		seen[h] = true
	}
	var missing []string
	for _, h := range in.Canary {
		if !seen[h] {
			missing = append(missing, h)
		}
	}
	switch {
	case len(missing) > 0:
		return noData(a, in, missing, "the query returned no series"), nil
	case len(y) == 0:
		return noData(a, in, []string{"the baseline hosts"}, "no baseline series"), nil
	case len(x) < MinBaselineSamples:
		return noData(a, in, []string{"the canary"}, fmt.Sprintf("%d samples, at least %d needed", len(x), MinBaselineSamples)), nil
	}
	shifted := make([]float64, len(y))
	for i, v := range y {
		shifted[i] = tolerate(a, v)
	}
	alt := stats.Greater
	worse := "above"
	if a.Decrease {
		alt, worse = stats.Less, "below"
	}
	r, err := stats.MannWhitney(x, shifted, alt)
	if err != nil {
		return drover.AnalysisResult{}, drover.Errorf(drover.EINTERNAL, "analysis %s: %v", a.Name, err)
	}
	alpha := a.Significance
	if alpha <= 0 {
		alpha = drover.DefaultAnalysisSignificance
	}
	desc := fmt.Sprintf("canary median %s (%d samples) vs baseline median %s (%d samples), allowed %s; Mann-Whitney U=%s p=%.4g",
		num(stats.Median(x)), len(x), num(stats.Median(y)), len(y), allowance(a), num(r.U), r.P)
	if r.P < alpha {
		return drover.AnalysisResult{Status: drover.AnalysisFail,
			Message: fmt.Sprintf("%s: canary significantly %s baseline: %s < %v over %s; query %q", a.Name, worse, desc, alpha, end.Sub(start).Round(time.Second), q)}, nil
	}
	return drover.AnalysisResult{Status: drover.AnalysisPass, Message: fmt.Sprintf("%s: %s >= %v", a.Name, desc, alpha)}, nil
}

// tolerate moves a baseline value by the allowed difference.
func tolerate(a drover.AnalysisSpec, v float64) float64 {
	d := a.MaxIncrease
	if a.IncreaseRelative {
		d = math.Abs(v) * a.MaxIncrease
	}
	if a.Decrease {
		return v - d
	}
	return v + d
}

func allowance(a drover.AnalysisSpec) string {
	sign := "+"
	if a.Decrease {
		sign = "-"
	}
	if a.IncreaseRelative {
		return sign + strconv.FormatFloat(a.MaxIncrease*100, 'g', 4, 64) + "%"
	}
	return sign + num(a.MaxIncrease)
}
