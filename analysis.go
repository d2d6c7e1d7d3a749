package drover

import (
	"context"
	"regexp"
	"strings"
	"time"
)

// Canary analysis: deciding from metrics whether a deploy goes on. After a
// group's hosts are done, the runner evaluates the group's analyses (and
// the spec's top-level ones) every Interval while the group bakes, once
// more as the group's gate, and then in the background until the deploy
// ends. A failure halts the deploy and everything switched rolls back; the
// reason names the query, the values and the threshold.
//
// Missing data fails (unless OnNoData is "pass"): a canary whose metrics
// stopped arriving is not a healthy canary, and passing it because nothing
// was seen is how a broken release reaches the whole fleet.

// Analysis kinds.
const (
	// AnalysisThreshold: every value of the query is within Max and Min.
	AnalysisThreshold = "threshold"
	// AnalysisBaseline: the canary hosts' values over the window are not
	// significantly above (or below) the other hosts' by more than the
	// tolerance (Mann–Whitney U).
	AnalysisBaseline = "baseline"
	// AnalysisTrend: the least-squares slope of each series over the
	// window is within MaxSlope and MinSlope (per minute).
	AnalysisTrend = "trend"
	// AnalysisFreshness: every series has a sample no older than MaxAge.
	AnalysisFreshness = "freshness"
)

// Defaults of an analysis.
const (
	DefaultAnalysisInterval     = 10 * time.Second
	DefaultAnalysisWindow       = 2 * time.Minute
	DefaultAnalysisTimeout      = 10 * time.Second
	DefaultAnalysisHostLabel    = "host"
	DefaultAnalysisSignificance = 0.05
	DefaultApproveTimeout       = time.Hour
)

// Approval modes of a group (Group.Approve).
const (
	ApproveNone   = ""
	ApproveManual = "manual"
)

// AnalysisSpec is one metric analysis, still holding its query template.
type AnalysisSpec struct {
	Name string
	// Kind is AnalysisThreshold, AnalysisBaseline, AnalysisTrend or
	// AnalysisFreshness.
	Kind string
	// Prometheus is the base URL of the Prometheus HTTP API.
	Prometheus string
	// Query is a PromQL template (see AnalysisData). A query whose text
	// differs per host is evaluated once per analysed host.
	Query string
	// Interval is how often the analysis is evaluated.
	Interval time.Duration
	// InitialDelay is how long after the group's hosts are done the
	// first evaluation may run (as Argo Rollouts' initialDelay): none
	// before. A rate() over a window still holds the samples of the
	// release that was just rolled back; evaluating it at once halts a
	// healthy release for its predecessor's errors.
	InitialDelay time.Duration
	// Window is the range of range queries (baseline, trend).
	Window time.Duration
	// Step is the resolution of range queries; 0 means Interval/2, at
	// least one second.
	Step time.Duration
	// Timeout bounds one evaluation.
	Timeout time.Duration
	// HostLabel is the label that names a series' host.
	HostLabel string
	// Threshold bounds.
	Max, Min *float64
	// Baseline: the canary may exceed the baseline by MaxIncrease — a
	// fraction of the baseline when IncreaseRelative ("10%"), else an
	// absolute amount — before a significant difference fails it. With
	// Decrease, lower is worse: the canary may fall below by as much.
	MaxIncrease      float64
	IncreaseRelative bool
	Decrease         bool
	// Significance is the level below which a p-value is significant.
	Significance float64
	// Trend bounds, in units per minute.
	MaxSlope, MinSlope *float64
	// MaxAge is how old the newest sample of a series may be (freshness).
	MaxAge time.Duration
	// OnNoData is "fail" (the default) or "pass".
	OnNoData string
}

// Analysis statuses.
const (
	AnalysisPass   = "pass"
	AnalysisFail   = "fail"
	AnalysisNoData = "no_data"
)

// AnalysisQuery is a query rendered for the hosts it judges: Host is ""
// when one query covers every host.
type AnalysisQuery struct {
	Host  string
	Query string
}

// AnalysisInput is what one evaluation of an analysis needs.
type AnalysisInput struct {
	Queries []AnalysisQuery
	// Canary are the hosts being judged; Baseline the hosts they are
	// compared with (baseline analyses).
	Canary, Baseline []string
	// Since is the earliest sample time of interest: when the hosts
	// judged finished switching. Range queries start no earlier, so a
	// window never mixes the old release's samples into the canary's.
	Since time.Time
	Now   time.Time
}

// AnalysisResult is the verdict of one evaluation.
type AnalysisResult struct {
	// Status is AnalysisPass, AnalysisFail or AnalysisNoData.
	Status string
	// Message says what was seen: the query, the values, the threshold.
	Message string
}

// AnalysisEval is one evaluation of an analysis during a deploy, as events
// (EventAnalysis) carry it and the journal keeps it: what was judged, when,
// and how it came out.
type AnalysisEval struct {
	At    time.Time `json:"at"`
	Name  string    `json:"name"`
	Group string    `json:"group"`
	Kind  string    `json:"kind"`
	// Status is AnalysisPass, AnalysisFail or AnalysisNoData.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// Verdict: evaluated as the group's analysis gate rather than in the
	// background.
	Verdict bool `json:"verdict,omitempty"`
	// Halted: this evaluation stopped the deploy.
	Halted bool `json:"halted,omitempty"`
	// Canary are the hosts judged, Baseline the hosts not switched yet;
	// Since is when the canary hosts were done (the window's earliest
	// start).
	Canary   []string  `json:"canary"`
	Baseline []string  `json:"baseline,omitempty"`
	Since    time.Time `json:"since"`
	// Window is the range of range queries (baseline, trend), 0 for
	// instant ones.
	Window time.Duration `json:"window_ns,omitempty"`
	// Max and Min are a threshold analysis's bounds.
	Max *float64 `json:"max,omitempty"`
	Min *float64 `json:"min,omitempty"`
}

// AnalysisSeries is one host's metric over a range, for a chart.
type AnalysisSeries struct {
	Host   string        `json:"host"`
	Points []SeriesPoint `json:"points"`
}

// SeriesPoint is one sample: Unix milliseconds and a value.
type SeriesPoint struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// SeriesReader reads an analysis's metric over a range, per host: the
// dashboard's canary chart. check/prometheus's Analyzer implements it.
type SeriesReader interface {
	// Series runs the queries over [start, end] every step and returns
	// each series that names a host (by a.HostLabel, or the query's own
	// host). EFAILED/ETIMEOUT when the metrics cannot be read.
	Series(ctx context.Context, a AnalysisSpec, queries []AnalysisQuery, start, end time.Time, step time.Duration) ([]AnalysisSeries, error)
}

// Analyzer evaluates analyses; check/prometheus implements it against a
// Prometheus server's HTTP API.
type Analyzer interface {
	// Analyze evaluates a once. An error means the metrics could not be
	// read (server unreachable, query refused: EFAILED, ETIMEOUT); the
	// caller treats it like missing data.
	Analyze(ctx context.Context, a AnalysisSpec, in AnalysisInput) (AnalysisResult, error)
}

// AnalysisData is what analysis query templates see: .Host (empty unless
// the query is rendered per host), .Release, .Service, .Env, and .Group —
// the group's name, its hosts, and .Group.HostRegex, the host names as a
// regexp alternation for a PromQL =~ matcher (PromQL anchors it).
type AnalysisData struct {
	TemplateData
	Group AnalysisGroup
}

// AnalysisGroup is .Group in analysis templates.
type AnalysisGroup struct {
	Name      string
	Hosts     []string
	HostRegex string
}

// NewAnalysisGroup returns .Group for a group's hosts.
func NewAnalysisGroup(name string, hosts []string) AnalysisGroup {
	q := make([]string, len(hosts))
	for i, h := range hosts {
		q[i] = regexp.QuoteMeta(h)
	}
	return AnalysisGroup{Name: name, Hosts: hosts, HostRegex: strings.Join(q, "|")}
}
