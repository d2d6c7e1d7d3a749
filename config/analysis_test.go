package config

import (
	"reflect"
	"testing"
	"time"

	"drover"
)

const analysisFleet = "hosts: [{name: h01, address: /f/1}, {name: h02, address: /f/2}]\ngroups:\n  - {name: canary, hosts: [h01]}\n  - {name: rest, hosts: ['*']}\n"

// an is the start of a top-level analysis entry; cases add the rest.
const an = "analysis:\n  - name: errors\n    prometheus: http://127.0.0.1:9090\n    query: 'err{host=\"{{.Host.Name}}\"}'\n"

func TestConfig_Validate_Analysis(t *testing.T) {
	const oneGroup = "hosts: [{name: h01, address: /f/1}]\n"
	runErrCases(t, []errCase{
		{"name required", top + analysisFleet + "analysis:\n  - prometheus: http://p:9090 # <-\n    query: up\n    max: 1\n", "", "analysis[0].name: required"},
		{"name duplicate", top + analysisFleet + an + "    max: 1\n  - {name: errors, prometheus: 'http://p:9090', query: up, max: 1} # <-\n", "", `"errors" is already the name of analysis[0]`},
		{"prometheus required", top + analysisFleet + "analysis:\n  - name: a # <-\n    query: up\n    max: 1\n", "", "analysis[0].prometheus: required"},
		{"prometheus url", top + analysisFleet + "analysis:\n  - name: a\n    prometheus: 'prom:9090' # <-\n    query: up\n    max: 1\n", "", `analysis[0].prometheus: "prom:9090" is not an http(s) URL`},
		{"query required", top + analysisFleet + "analysis:\n  - name: a # <-\n    prometheus: http://p:9090\n    max: 1\n", "", "analysis[0].query: required"},
		{"query parse", top + analysisFleet + "analysis:\n  - name: a\n    prometheus: http://p:9090\n    query: 'up{host=\"{{.Host.Name}\"}' # <-\n    max: 1\n", "", "analysis[0].query: template does not parse"},
		{"query exec", top + analysisFleet + "analysis:\n  - name: a\n    prometheus: http://p:9090\n    query: 'up{port=\"{{.Host.Vars.port}}\"}' # <-\n    max: 1\n", "", "analysis[0].query: template fails for host h01 of group canary"},
		{"nothing to judge", top + analysisFleet + "analysis:\n  - name: a # <-\n    prometheus: http://p:9090\n    query: up\n", "", "says nothing to judge"},
		{"two kinds", top + analysisFleet + an + "    max: 1\n    max_slope: 2 # <-\n", "", "max (threshold) and max_slope (trend) are different kinds"},
		{"kind unknown", top + analysisFleet + an + "    kind: canary # <-\n    max: 1\n", "", `analysis[0].kind: "canary" is not an analysis kind`},
		{"kind disagrees", top + analysisFleet + an + "    kind: trend # <-\n    max: 1\n", "", "analysis[0].kind: trend, but max is a key of a threshold analysis"},
		{"min above max", top + analysisFleet + an + "    max: 1\n    min: 2 # <-\n", "", "analysis[0].min: 2 is above max 1"},
		{"tolerance", top + analysisFleet + "analysis:\n  - {name: a, prometheus: 'http://p:9090', query: 'sum by (host) (x)', max_increase: lots} # <-\n", "", `analysis[0].max_increase: "lots" is not a number or a percentage`},
		{"tolerance negative", top + analysisFleet + "analysis:\n  - {name: a, prometheus: 'http://p:9090', query: 'sum by (host) (x)', max_increase: -5%} # <-\n", "", "is negative"},
		{"both directions", top + analysisFleet + "analysis:\n  - name: a\n    prometheus: http://p:9090\n    query: x\n    max_increase: 10%\n    max_decrease: 10% # <-\n", "", "max_increase and max_decrease are both set"},
		{"significance range", top + analysisFleet + "analysis:\n  - name: a\n    prometheus: http://p:9090\n    query: x\n    max_increase: 10%\n    significance: 5 # <-\n", "", "analysis[0].significance: 5 is not between 0 and 1"},
		{"significance kind", top + analysisFleet + an + "    max: 1\n    significance: 0.01 # <-\n", "", "only baseline analyses use significance"},
		{"max_age", top + analysisFleet + an + "    max_age: 30 # <-\n", "", `analysis[0].max_age: "30" is not a duration`},
		{"interval", top + analysisFleet + an + "    max: 1\n    interval: 0s # <-\n", "", `analysis[0].interval: "0s" must be more than 0`},
		{"initial_delay", top + analysisFleet + an + "    max: 1\n    initial_delay: 30 # <-\n", "", `analysis[0].initial_delay: "30" is not a duration`},
		{"initial_delay negative", top + analysisFleet + an + "    max: 1\n    initial_delay: -10s # <-\n", "", `analysis[0].initial_delay: "-10s" must be more than 0`},
		{"on_no_data", top + analysisFleet + an + "    max: 1\n    on_no_data: skip # <-\n", "", `analysis[0].on_no_data: "skip" is not fail or pass`},
		{"group analysis", top + oneGroup + "groups:\n  - name: all\n    hosts: ['*']\n    analysis:\n      - name: a # <-\n        prometheus: http://p:9090\n        query: x\n", "", "says nothing to judge"},
		{"wait", top + oneGroup + "groups:\n  - name: all\n    hosts: ['*']\n    wait: 5 # <-\n", "", `groups[0].wait: "5" is not a duration`},
		{"approve", top + oneGroup + "groups:\n  - name: all\n    hosts: ['*']\n    approve: yes # <-\n", "", `groups[0].approve: "yes" is not manual`},
		{"approve_timeout alone", top + oneGroup + "groups:\n  - name: all\n    hosts: ['*']\n    approve_timeout: 1h # <-\n", "", "groups[0].approve_timeout: set without approve: manual"},
		{"approve_timeout", top + oneGroup + "groups:\n  - name: all\n    hosts: ['*']\n    approve: manual\n    approve_timeout: soon # <-\n", "", `groups[0].approve_timeout: "soon" is not a duration`},
		{"unknown key", top + oneGroup + "groups:\n  - name: all\n    hosts: ['*']\n    analysis:\n      - name: a\n        treshold: 1 # <-\n", "", `unknown key "treshold"`},
	})
	// A baseline query that depends on the host.
	runErrCases(t, []errCase{
		{"baseline per host", top + "hosts: [{name: h01, address: /f/1}, {name: h02, address: /f/2}]\ngroups: [{name: all, hosts: ['*']}]\n" + "analysis:\n  - name: a\n    prometheus: http://p:9090\n    query: 'x{host=\"{{.Host.Name}}\"}' # <-\n    max_increase: 10%\n", "", "a baseline query must not depend on the host"},
	})
}

func TestConfig_Parse_Analysis(t *testing.T) {
	doc := top + `hosts: [{name: h01, address: /f/1}, {name: h02, address: /f/2}]
groups:
  - name: canary
    hosts: [h01]
    wait: 5m
    approve: manual
    analysis:
      - name: memory
        prometheus: http://127.0.0.1:9090
        query: 'process_resident_memory_bytes{host="{{.Host.Name}}"}'
        window: 10m
        step: 15s
        max_slope: 1048576
  - {name: rest, hosts: ['*'], approve: manual, approve_timeout: 10m}
analysis:
  - name: errors
    prometheus: http://127.0.0.1:9090/
    query: 'sum by (host) (rate(hello_http_requests_total{code=~"5.."}[1m]))'
    max_increase: 10%
    significance: 0.01
    host_label: instance
  - {name: fresh, prometheus: 'http://p:9090', query: up, max_age: 30s, on_no_data: pass, interval: 2s, timeout: 3s, initial_delay: 15s}
  - {name: success, prometheus: 'http://p:9090', query: 'sum by (host) (x)', max_decrease: 0.02, kind: baseline}
  - {name: ratio, prometheus: 'http://p:9090', query: 'x', max: 0.05, min: 0}
`
	s, err := Parse("drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	c, r := s.Groups[0], s.Groups[1]
	if c.Wait != 5*time.Minute || c.Approve != drover.ApproveManual || c.ApproveTimeout != drover.DefaultApproveTimeout {
		t.Errorf("canary %+v", c)
	}
	if r.Wait != 0 || r.Approve != drover.ApproveManual || r.ApproveTimeout != 10*time.Minute || r.Analysis != nil {
		t.Errorf("rest %+v", r)
	}
	slope, zero, max := 1048576.0, 0.0, 0.05
	wantMem := []drover.AnalysisSpec{{Name: "memory", Kind: drover.AnalysisTrend, Prometheus: "http://127.0.0.1:9090", Query: `process_resident_memory_bytes{host="{{.Host.Name}}"}`,
		Interval: drover.DefaultAnalysisInterval, Window: 10 * time.Minute, Step: 15 * time.Second, Timeout: drover.DefaultAnalysisTimeout, HostLabel: "host",
		MaxSlope: &slope, Significance: drover.DefaultAnalysisSignificance, OnNoData: "fail"}}
	if !reflect.DeepEqual(c.Analysis, wantMem) {
		t.Errorf("canary analysis\n%+v\nwant\n%+v", c.Analysis, wantMem)
	}
	def := func(a drover.AnalysisSpec) drover.AnalysisSpec {
		if a.Interval == 0 {
			a.Interval = drover.DefaultAnalysisInterval
		}
		if a.Timeout == 0 {
			a.Timeout = drover.DefaultAnalysisTimeout
		}
		if a.HostLabel == "" {
			a.HostLabel = "host"
		}
		if a.Significance == 0 {
			a.Significance = drover.DefaultAnalysisSignificance
		}
		if a.OnNoData == "" {
			a.OnNoData = "fail"
		}
		a.Window = drover.DefaultAnalysisWindow
		return a
	}
	want := []drover.AnalysisSpec{
		def(drover.AnalysisSpec{Name: "errors", Kind: drover.AnalysisBaseline, Prometheus: "http://127.0.0.1:9090/", Query: `sum by (host) (rate(hello_http_requests_total{code=~"5.."}[1m]))`,
			MaxIncrease: 0.1, IncreaseRelative: true, Significance: 0.01, HostLabel: "instance"}),
		def(drover.AnalysisSpec{Name: "fresh", Kind: drover.AnalysisFreshness, Prometheus: "http://p:9090", Query: "up", MaxAge: 30 * time.Second, OnNoData: "pass", Interval: 2 * time.Second, InitialDelay: 15 * time.Second, Timeout: 3 * time.Second}),
		def(drover.AnalysisSpec{Name: "success", Kind: drover.AnalysisBaseline, Prometheus: "http://p:9090", Query: "sum by (host) (x)", MaxIncrease: 0.02, Decrease: true}),
		def(drover.AnalysisSpec{Name: "ratio", Kind: drover.AnalysisThreshold, Prometheus: "http://p:9090", Query: "x", Max: &max, Min: &zero}),
	}
	if !reflect.DeepEqual(s.Analysis, want) {
		t.Errorf("analysis\n%+v\nwant\n%+v", s.Analysis, want)
	}
}

func TestParseTolerance(t *testing.T) {
	for _, c := range []struct {
		in  string
		v   float64
		rel bool
		bad bool
	}{{"10%", 0.1, true, false}, {" 2.5 % ", 0.025, true, false}, {"0.01", 0.01, false, false}, {"0", 0, false, false}, {"x%", 0, false, true}, {"-1", 0, false, true}} {
		v, rel, err := parseTolerance(c.in)
		if (err != nil) != c.bad || (!c.bad && (v != c.v || rel != c.rel)) {
			t.Errorf("parseTolerance(%q) = %v, %v, %v", c.in, v, rel, err)
		}
	}
}
