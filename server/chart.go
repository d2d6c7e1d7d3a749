package server

import (
	"net/http"
	"time"

	"drover"
	"drover/runner"
	"drover/runview"
)

// This file serves the canary chart's data: for one analysis of one
// group of a deploy, each host's metric over the analysis window, read
// from the metrics server now, beside the evaluations the deploy made
// (from its view). The hosts are the ones the deploy judged (canary) and
// compared them with (baseline); the query is the analysis's own, rendered
// for every one of them, so that the chart shows the baseline hosts a
// per-host query never asked about.

// AnalysisChart is the answer of GET /deploys/{id}/analyses/{group}/{name}.
type AnalysisChart struct {
	*runview.Analysis
	Deploy string    `json:"deploy"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// Series are the hosts' metric, canary hosts first.
	Series []ChartSeries `json:"series"`
	// Error says why the metric could not be read (the chart then shows
	// the evaluations alone).
	Error string `json:"error,omitempty"`
}

// ChartSeries is one host's metric.
type ChartSeries struct {
	drover.AnalysisSeries
	// Role is "canary" or "baseline".
	Role string `json:"role"`
}

// minChartMargin is the least time before the canary switched a chart
// shows: the change must be visible against what came before.
const minChartMargin = 10 * time.Second

func (s *Server) handleAnalysisSeries(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r.Context())
	id, group, name := r.PathValue("id"), r.PathValue("group"), r.PathValue("name")
	svc, rec, err := s.findDeploy(r.Context(), p, id, RoleViewer)
	if err != nil {
		writeError(w, err)
		return
	}
	var view *runview.View
	var reader drover.SeriesReader
	err = s.read(svc, func(rn *runner.Runner) error {
		reader, _ = rn.Analyzer.(drover.SeriesReader)
		if s.memView(id, func(v *runview.View) { view = v }) {
			return nil
		}
		j, err := rn.Store.Journal(r.Context(), id)
		view = runview.FromRecord(rec, j)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	var an *runview.Analysis
	for _, a := range view.Analyses {
		if a.Group == group && a.Name == name {
			an = a
		}
	}
	spec, ok := analysisSpec(svc.Spec, group, name)
	if an == nil || !ok {
		writeError(w, drover.Errorf(drover.ENOTFOUND, "deploy %s has no evaluation of analysis %s of group %s", id, name, group).
			WithHint("GET /api/v1/deploys/"+id+"/view lists its analyses"))
		return
	}
	out := AnalysisChart{Analysis: an, Deploy: id, Series: []ChartSeries{}}
	out.End = an.Since.Add(time.Second)
	for _, e := range an.Evals {
		out.End = later(out.End, e.At.Add(time.Second))
	}
	// Before the switch: the analysis window, or a quarter of the time
	// judged, so that the switch sits near the left and the evaluations
	// fill the chart.
	margin := max(an.Window, minChartMargin, out.End.Sub(an.Since)/4)
	out.Start = an.Since.Add(-margin)
	if reader == nil {
		out.Error = "this server has no metrics reader"
		writeJSON(w, http.StatusOK, out)
		return
	}
	queries, err := chartQueries(svc.Spec, spec, rec, group, an)
	if err != nil {
		out.Error = err.Error()
		writeJSON(w, http.StatusOK, out)
		return
	}
	series, err := reader.Series(r.Context(), spec, queries, out.Start, out.End, 0)
	if err != nil {
		out.Error = err.Error()
	}
	canary := map[string]bool{}
	for _, h := range an.Canary {
		canary[h] = true
	}
	judged := map[string]bool{}
	for _, h := range append(an.Canary, an.Baseline...) {
		judged[h] = true
	}
	for _, role := range []string{"canary", "baseline"} {
		for _, ss := range series {
			if judged[ss.Host] && canary[ss.Host] == (role == "canary") {
				out.Series = append(out.Series, ChartSeries{AnalysisSeries: ss, Role: role})
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// memView runs fn with the in-memory view of run id, under the lock.
func (s *Server) memView(id string, fn func(*runview.View)) bool {
	s.runsMu.Lock()
	defer s.runsMu.Unlock()
	rn, ok := s.runs[id]
	if !ok || rn.views[id] == nil {
		return false
	}
	// A copy of what the chart reads: the run goes on appending.
	v := *rn.views[id].v
	v.Analyses = nil
	for _, a := range rn.views[id].v.Analyses {
		c := *a
		c.Evals = append([]runview.Eval(nil), a.Evals...)
		v.Analyses = append(v.Analyses, &c)
	}
	fn(&v)
	return true
}

// analysisSpec finds the analysis called name that group runs: its own
// or one of the spec's top-level ones.
func analysisSpec(spec *drover.Spec, group, name string) (drover.AnalysisSpec, bool) {
	for _, g := range spec.Groups {
		if g.Name != group {
			continue
		}
		for _, a := range g.Analysis {
			if a.Name == name {
				return a, true
			}
		}
	}
	for _, a := range spec.Analysis {
		if a.Name == name {
			return a, true
		}
	}
	return drover.AnalysisSpec{}, false
}

// maxChartHosts bounds the hosts one chart draws, canary hosts first.
const maxChartHosts = 50

// chartQueries renders a's query for every host judged or compared with,
// with .Group naming all of them; one query when it does not depend on
// the host.
func chartQueries(spec *drover.Spec, a drover.AnalysisSpec, rec drover.DeployRecord, group string, an *runview.Analysis) ([]drover.AnalysisQuery, error) {
	hosts := append(append([]string{}, an.Canary...), an.Baseline...)
	// A per-host query is one request per host: a chart of a thousand
	// hosts would be a thousand queries for lines nobody can tell apart.
	hosts = hosts[:min(len(hosts), maxChartHosts)]
	grp := drover.NewAnalysisGroup(group, hosts)
	var out []drover.AnalysisQuery
	same := true
	for _, name := range hosts {
		h, ok := spec.Host(name)
		if !ok {
			continue // a host since removed from drover.yaml
		}
		data := drover.AnalysisData{TemplateData: drover.NewTemplateData(spec, h, rec.Release, rec.Version), Group: grp}
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
