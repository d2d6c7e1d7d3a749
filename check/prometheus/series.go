package prometheus

import (
	"context"
	"math"
	"time"

	"drover"
)

var _ drover.SeriesReader = (*Analyzer)(nil)

// MaxChartPoints bounds the points of one chart: a range query is asked at
// a step that gives at most this many per series, so a day-long deploy
// does not send the browser a sample per second.
const MaxChartPoints = 600

// MaxChartSeries bounds the series of one chart; a query that answers
// more is cut (the first hosts' series are kept).
const MaxChartSeries = 200

// Series reads the queries over [start, end] for a chart; see
// drover.SeriesReader. A per-host query's series belong to its host; a
// shared query's series to the host its HostLabel names (series without
// it are left out: a chart draws hosts).
func (z *Analyzer) Series(ctx context.Context, a drover.AnalysisSpec, queries []drover.AnalysisQuery, start, end time.Time, step time.Duration) ([]drover.AnalysisSeries, error) {
	// One bound for the whole chart, as for one evaluation: a viewer's
	// page must not hold a request open on a slow metrics server.
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = drover.DefaultAnalysisTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if a.HostLabel == "" {
		a.HostLabel = drover.DefaultAnalysisHostLabel
	}
	if !end.After(start) {
		return nil, drover.Errorf(drover.EINVALID, "analysis %s: chart range %s..%s is empty", a.Name, start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	step = max(step, time.Second, end.Sub(start)/MaxChartPoints)
	var out []drover.AnalysisSeries
	seen := map[string]bool{}
	for _, q := range queries {
		ss, err := z.Client.QueryRange(ctx, a.Prometheus, q.Query, start, end, step)
		if err != nil {
			return nil, err
		}
		for _, s := range dropNaN(ss) {
			host := q.Host
			if host == "" {
				host = s.Labels[a.HostLabel]
			}
			if host == "" || seen[host] || len(out) >= MaxChartSeries {
				continue
			}
			seen[host] = true
			pts := make([]drover.SeriesPoint, 0, len(s.Points))
			for _, p := range s.Points {
				if math.IsInf(p.V, 0) {
					continue
				}
				pts = append(pts, drover.SeriesPoint{T: p.T.UnixMilli(), V: p.V})
			}
			out = append(out, drover.AnalysisSeries{Host: host, Points: pts})
		}
	}
	return out, nil
}
