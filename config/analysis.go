package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/template"

	"drover"
)

// This file validates canary analysis: groups[].wait, groups[].approve,
// groups[].approve_timeout, and analysis: (top level, applied after every
// group, and per group). An analysis judges one kind of thing, told by the
// keys it sets: max/min (threshold), max_increase or max_decrease
// (baseline), max_slope/min_slope (trend), max_age (freshness); kind: may
// say it outright and must then agree with them.

// AnalysisFile is one entry of analysis.
type AnalysisFile struct {
	Name       string `yaml:"name"`
	Kind       string `yaml:"kind"`
	Prometheus string `yaml:"prometheus"`
	Query      string `yaml:"query"`
	Interval   string `yaml:"interval"`
	// InitialDelay: no evaluation before it (after the group's hosts
	// are done).
	InitialDelay string `yaml:"initial_delay"`
	Window       string `yaml:"window"`
	Step         string `yaml:"step"`
	Timeout      string `yaml:"timeout"`
	HostLabel    string `yaml:"host_label"`
	// Threshold.
	Max *float64 `yaml:"max"`
	Min *float64 `yaml:"min"`
	// Baseline: "10%" of the baseline, or an absolute amount.
	MaxIncrease  string   `yaml:"max_increase"`
	MaxDecrease  string   `yaml:"max_decrease"`
	Significance *float64 `yaml:"significance"`
	// Trend, per minute.
	MaxSlope *float64 `yaml:"max_slope"`
	MinSlope *float64 `yaml:"min_slope"`
	// Freshness.
	MaxAge   string `yaml:"max_age"`
	OnNoData string `yaml:"on_no_data"`
}

const analysisKindsHint = "set max/min (threshold), max_increase or max_decrease (baseline against the rest of the fleet), " +
	"max_slope/min_slope (trend, per minute) or max_age (freshness)"

// checkAnalyses validates a list of analyses at at and returns them with
// defaults applied. Their query templates are executed per group by
// checkAnalysisTemplates, once the group's hosts are known.
func (f *File) checkAnalyses(ps *problems, at keyPath, list []AnalysisFile) []drover.AnalysisSpec {
	var out []drover.AnalysisSpec
	names := map[string]keyPath{}
	for i, a := range list {
		out = append(out, f.checkAnalysis(ps, at.with(i), a, names))
	}
	return out
}

func (f *File) checkAnalysis(ps *problems, at keyPath, a AnalysisFile, names map[string]keyPath) drover.AnalysisSpec {
	s := drover.AnalysisSpec{
		Name: a.Name, Prometheus: a.Prometheus, Query: a.Query, HostLabel: a.HostLabel,
		Max: a.Max, Min: a.Min, MaxSlope: a.MaxSlope, MinSlope: a.MinSlope,
		Interval:     f.duration(ps, at.with("interval"), a.Interval, drover.DefaultAnalysisInterval),
		InitialDelay: f.nonNegativeDuration(ps, at.with("initial_delay"), a.InitialDelay, 0),
		Window:       f.duration(ps, at.with("window"), a.Window, drover.DefaultAnalysisWindow),
		Timeout:      f.duration(ps, at.with("timeout"), a.Timeout, drover.DefaultAnalysisTimeout),
		Significance: drover.DefaultAnalysisSignificance,
		OnNoData:     "fail",
	}
	if a.Step != "" {
		s.Step = f.duration(ps, at.with("step"), a.Step, 0)
	}
	if s.HostLabel == "" {
		s.HostLabel = drover.DefaultAnalysisHostLabel
	}
	switch j, dup := names[a.Name]; {
	case a.Name == "":
		ps.add(at, "name the analysis, e.g. name: errors; names appear in halt reasons", "%s.name: required", at)
	case !validName.MatchString(a.Name):
		ps.add(at.with("name"), nameRule, "%s.name: %q is not a valid name", at, a.Name)
	case dup:
		ps.add(at.with("name"), "give each analysis its own name", "%s.name: %q is already the name of %s", at, a.Name, j)
	default:
		names[a.Name] = at
	}
	if a.Prometheus == "" {
		ps.add(at, "give the base URL of the Prometheus server, e.g. prometheus: http://prometheus:9090", "%s.prometheus: required", at)
	} else if u, err := url.Parse(a.Prometheus); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.add(at.with("prometheus"), "write an http(s) URL, e.g. http://prometheus:9090", "%s.prometheus: %q is not an http(s) URL", at, a.Prometheus)
	}
	if a.Query == "" {
		ps.add(at, "write the PromQL query, e.g. query: 'sum by (host) (rate(http_requests_total{code=~\"5..\"}[1m]))'", "%s.query: required", at)
	} else if _, err := template.New("q").Option("missingkey=error").Funcs(templateFuncs).Parse(a.Query); err != nil {
		ps.add(at.with("query"), "fix the template syntax: actions look like {{.Host.Name}}", "%s.query: template does not parse: %v", at, err)
	}

	// The kind, from the keys set.
	var kinds []string
	var kindKey = map[string]string{}
	add := func(kind, key string, set bool) {
		if !set {
			return
		}
		if _, ok := kindKey[kind]; !ok {
			kinds = append(kinds, kind)
			kindKey[kind] = key
		}
	}
	add(drover.AnalysisThreshold, "max", a.Max != nil)
	add(drover.AnalysisThreshold, "min", a.Min != nil)
	add(drover.AnalysisBaseline, "max_increase", a.MaxIncrease != "")
	add(drover.AnalysisBaseline, "max_decrease", a.MaxDecrease != "")
	add(drover.AnalysisTrend, "max_slope", a.MaxSlope != nil)
	add(drover.AnalysisTrend, "min_slope", a.MinSlope != nil)
	add(drover.AnalysisFreshness, "max_age", a.MaxAge != "")
	switch {
	case a.Kind != "" && a.Kind != drover.AnalysisThreshold && a.Kind != drover.AnalysisBaseline && a.Kind != drover.AnalysisTrend && a.Kind != drover.AnalysisFreshness:
		ps.add(at.with("kind"), "use threshold, baseline, trend or freshness, or leave kind out: the keys set say it", "%s.kind: %q is not an analysis kind", at, a.Kind)
	case len(kinds) == 0:
		ps.add(at, analysisKindsHint, "%s: says nothing to judge", at)
	case len(kinds) > 1:
		ps.add(at.with(kindKey[kinds[1]]), "split it into two analyses, one per kind; "+analysisKindsHint,
			"%s: %s (%s) and %s (%s) are different kinds of analysis", at, kindKey[kinds[0]], kinds[0], kindKey[kinds[1]], kinds[1])
	case a.Kind != "" && a.Kind != kinds[0]:
		ps.add(at.with("kind"), fmt.Sprintf("remove %s, or make the kind %s", kindKey[kinds[0]], kinds[0]),
			"%s.kind: %s, but %s is a key of a %s analysis", at, a.Kind, kindKey[kinds[0]], kinds[0])
	default:
		s.Kind = kinds[0]
	}
	if a.Max != nil && a.Min != nil && *a.Min > *a.Max {
		ps.add(at.with("min"), "min must not be above max", "%s.min: %v is above max %v: nothing can pass", at, *a.Min, *a.Max)
	}
	if a.MaxSlope != nil && a.MinSlope != nil && *a.MinSlope > *a.MaxSlope {
		ps.add(at.with("min_slope"), "min_slope must not be above max_slope", "%s.min_slope: %v is above max_slope %v", at, *a.MinSlope, *a.MaxSlope)
	}
	if a.MaxIncrease != "" && a.MaxDecrease != "" {
		ps.add(at.with("max_decrease"), "keep one: max_increase when higher is worse (errors, latency), max_decrease when lower is worse (success ratio)",
			"%s: max_increase and max_decrease are both set", at)
	}
	tol, tolKey := a.MaxIncrease, "max_increase"
	if a.MaxDecrease != "" && a.MaxIncrease == "" {
		tol, tolKey, s.Decrease = a.MaxDecrease, "max_decrease", true
	}
	if tol != "" {
		v, rel, err := parseTolerance(tol)
		if err != nil {
			ps.add(at.with(tolKey), `write a share of the baseline like "10%" or an amount like 0.01`, "%s.%s: %v", at, tolKey, err)
		}
		s.MaxIncrease, s.IncreaseRelative = v, rel
	}
	if a.Significance != nil {
		s.Significance = *a.Significance
		if *a.Significance <= 0 || *a.Significance >= 1 {
			ps.add(at.with("significance"), "use a level between 0 and 1, e.g. 0.05; leave it out for 0.05", "%s.significance: %v is not between 0 and 1", at, *a.Significance)
		}
	}
	if a.Significance != nil && s.Kind != "" && s.Kind != drover.AnalysisBaseline {
		ps.add(at.with("significance"), "remove significance: only baseline analyses test significance", "%s.significance: only baseline analyses use significance", at)
	}
	if a.MaxAge != "" {
		s.MaxAge = f.duration(ps, at.with("max_age"), a.MaxAge, 0)
	}
	switch a.OnNoData {
	case "", "fail":
	case "pass":
		s.OnNoData = "pass"
	default:
		ps.add(at.with("on_no_data"), "use fail (the default: missing metrics stop the deploy) or pass", "%s.on_no_data: %q is not fail or pass", at, a.OnNoData)
	}
	return s
}

// parseTolerance reads "10%" (a share of the baseline) or "0.01".
func parseTolerance(s string) (v float64, relative bool, err error) {
	t := strings.TrimSpace(s)
	t, relative = strings.CutSuffix(t, "%")
	v, perr := strconv.ParseFloat(strings.TrimSpace(t), 64)
	switch {
	case perr != nil:
		return 0, false, fmt.Errorf("%q is not a number or a percentage", s)
	case v < 0:
		return 0, false, fmt.Errorf("%q is negative", s)
	}
	if relative {
		v /= 100
	}
	return v, relative, nil
}

// checkGroupCanary validates a group's wait, approve and approve_timeout
// and sets them on g.
func (f *File) checkGroupCanary(ps *problems, gat keyPath, gf GroupFile, g *drover.Group) {
	if gf.Wait != "" {
		g.Wait = f.duration(ps, gat.with("wait"), gf.Wait, 0)
	}
	switch gf.Approve {
	case "":
	case drover.ApproveManual:
		g.Approve = drover.ApproveManual
		g.ApproveTimeout = f.duration(ps, gat.with("approve_timeout"), gf.ApproveTimeout, drover.DefaultApproveTimeout)
	default:
		ps.add(gat.with("approve"), "use approve: manual (wait for drover approve), or leave it out", "%s.approve: %q is not manual", gat, gf.Approve)
	}
	if gf.ApproveTimeout != "" && gf.Approve == "" {
		ps.add(gat.with("approve_timeout"), "add approve: manual, or remove approve_timeout", "%s.approve_timeout: set without approve: manual", gat)
	}
	g.Analysis = f.checkAnalyses(ps, gat.with("analysis"), gf.Analysis)
}

// checkAnalysisTemplates executes the query templates of the group's
// analyses and of the top-level ones for every host of group g, as the
// runner will. A baseline query must be the same for every host: it
// covers the canary and the baseline at once.
func (f *File) checkAnalysisTemplates(ps *problems, s *drover.Spec, gat keyPath, g drover.Group) {
	check := func(at keyPath, a drover.AnalysisSpec) {
		if a.Query == "" || len(g.Hosts) == 0 {
			return
		}
		grp := drover.NewAnalysisGroup(g.Name, g.Hosts)
		first := ""
		for i, name := range g.Hosts {
			h, _ := s.Host(name)
			data := drover.AnalysisData{TemplateData: drover.NewTemplateData(s, h, "RELEASE-ID", "VERSION"), Group: grp}
			q, err := drover.Render(at.String(), a.Query, data)
			if err != nil {
				ps.add(at.with("query"), "templates see .Host.Name, .Host.Address, .Host.Vars, .Group.Name, .Group.Hosts, .Group.HostRegex, .Release, .Service and .Env",
					"%s.query: template fails for host %s of group %s: %s", at, name, g.Name, execReason(err))
				return
			}
			if i == 0 {
				first = q
			} else if q != first && a.Kind == drover.AnalysisBaseline {
				ps.add(at.with("query"), "use one query for every host, grouped by the host label, e.g. sum by (host) (...); drover splits canary from baseline",
					"%s.query: a baseline query must not depend on the host (.Host): it covers the canary and the baseline at once", at)
				return
			}
		}
	}
	for i, a := range s.Analysis {
		check(p("analysis", i), a)
	}
	for i, a := range g.Analysis {
		check(gat.with("analysis", i), a)
	}
}
