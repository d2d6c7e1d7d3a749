package drover

import (
	"slices"
	"strings"
)

// Emergency overrides: a deploy that skips a health check, an analysis or a
// group's gate because it is known to be wrong right now (a check that
// tests a header the hotfix removes, a Prometheus that is down). An
// override always carries a reason, is recorded with the deploy (history,
// show, events, webhooks, the dashboard) and applies to that one deploy
// only: a skipped check that stayed skipped would turn an emergency into
// the quiet new normal, which is the failure this file prevents.

// Override kinds.
const (
	OverrideCheck    = "check"    // a host health check (checks:), by name
	OverrideAnalysis = "analysis" // a metric analysis (analysis:), by name
	OverrideGate     = "gate"     // a group's gate, GROUP:KIND
)

// Gate kinds --skip-gate GROUP:KIND accepts.
var GateKinds = []string{
	"smoke",     // the group's smoke tests (and, on the last group, the deploy's)
	"invariant", // invariant comparisons after the group
	"analysis",  // the group's metric analyses (their start and verdict)
	"wait",      // the group's bake time
	"approve",   // approve: manual
	"confirm",   // confirm: true
}

// Override is one skipped check, analysis or gate of one deploy.
type Override struct {
	Kind string `json:"kind"`
	// Name is the check's or analysis's name, or GROUP:KIND for a gate.
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

func (o Override) String() string { return "skip " + o.Kind + " " + o.Name }

// OverrideSummary is one line for people: "skip check version, skip gate
// web:wait (reason: ...)"; "" without overrides.
func OverrideSummary(os []Override) string {
	if len(os) == 0 {
		return ""
	}
	parts := make([]string, len(os))
	for i, o := range os {
		parts[i] = o.String()
	}
	return strings.Join(parts, ", ") + " (reason: " + os[0].Reason + ")"
}

// NewOverrides builds the overrides of one deploy from the flags'
// values and checks them against s. No reason, or a name s does not have,
// is EINVALID naming it and what s has: an override that matches nothing
// would be recorded as if it had skipped something.
func NewOverrides(s *Spec, checks, analyses, gates []string, reason string) ([]Override, error) {
	if len(checks)+len(analyses)+len(gates) == 0 {
		return nil, nil
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, Errorf(EINVALID, "an override (--skip-check, --skip-analysis, --skip-gate) needs a reason").
			WithHint(`say why with -m, e.g. -m "INC-123: check fails on the hotfix, fixed in 1.4.1"`)
	}
	var out []Override
	add := func(kind, name string) {
		o := Override{Kind: kind, Name: name, Reason: reason}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	checkNames := make([]string, 0, len(s.Checks))
	for _, c := range s.Checks {
		checkNames = append(checkNames, c.Name)
	}
	for _, n := range checks {
		if !slices.Contains(checkNames, n) {
			return nil, Errorf(EINVALID, "--skip-check %q: no such check in %s", n, s.Source).WithHint("checks: " + listOrNone(checkNames))
		}
		add(OverrideCheck, n)
	}
	var analysisNames []string
	for _, a := range s.Analysis {
		analysisNames = append(analysisNames, a.Name)
	}
	for _, g := range s.Groups {
		for _, a := range g.Analysis {
			if !slices.Contains(analysisNames, a.Name) {
				analysisNames = append(analysisNames, a.Name)
			}
		}
	}
	for _, n := range analyses {
		if !slices.Contains(analysisNames, n) {
			return nil, Errorf(EINVALID, "--skip-analysis %q: no such analysis in %s", n, s.Source).WithHint("analyses: " + listOrNone(analysisNames))
		}
		add(OverrideAnalysis, n)
	}
	groupNames := make([]string, 0, len(s.Groups))
	for _, g := range s.Groups {
		groupNames = append(groupNames, g.Name)
	}
	for _, v := range gates {
		group, kind, ok := strings.Cut(v, ":")
		if !ok {
			return nil, Errorf(EINVALID, "--skip-gate %q: want GROUP:KIND", v).WithHint("kinds: " + strings.Join(GateKinds, ", "))
		}
		if !slices.Contains(groupNames, group) {
			return nil, Errorf(EINVALID, "--skip-gate %q: no group %q in %s", v, group, s.Source).WithHint("groups: " + listOrNone(groupNames))
		}
		if !slices.Contains(GateKinds, kind) {
			return nil, Errorf(EINVALID, "--skip-gate %q: no gate kind %q", v, kind).WithHint("kinds: " + strings.Join(GateKinds, ", "))
		}
		add(OverrideGate, group+":"+kind)
	}
	return out, nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// Skips reports whether os skip the override of kind and name, and why.
func Skips(os []Override, kind, name string) (reason string, ok bool) {
	for _, o := range os {
		if o.Kind == kind && o.Name == name {
			return o.Reason, true
		}
	}
	return "", false
}

// WithOverrides returns a copy of s without the checks and analyses os
// skip; s is not changed. Gates are skipped by the decision core instead
// (rollout.Gate.Skip).
func (s *Spec) WithOverrides(os []Override) *Spec {
	if len(os) == 0 {
		return s
	}
	c := *s
	c.Checks = slices.DeleteFunc(slices.Clone(s.Checks), func(cs CheckSpec) bool {
		_, ok := Skips(os, OverrideCheck, cs.Name)
		return ok
	})
	dropAnalyses := func(as []AnalysisSpec) []AnalysisSpec {
		return slices.DeleteFunc(slices.Clone(as), func(a AnalysisSpec) bool {
			_, ok := Skips(os, OverrideAnalysis, a.Name)
			return ok
		})
	}
	c.Analysis = dropAnalyses(s.Analysis)
	c.Groups = slices.Clone(s.Groups)
	for i := range c.Groups {
		c.Groups[i].Analysis = dropAnalyses(c.Groups[i].Analysis)
	}
	return &c
}

// ValidateOverrides checks overrides that arrived already built (the
// server API): every one has a known kind and a reason, and names
// something s has.
func ValidateOverrides(s *Spec, os []Override) error {
	var checks, analyses, gates []string
	reason := ""
	for _, o := range os {
		if strings.TrimSpace(o.Reason) == "" {
			return Errorf(EINVALID, "override %s: no reason", o)
		}
		if reason != "" && o.Reason != reason {
			return Errorf(EINVALID, "overrides of one deploy carry one reason")
		}
		reason = o.Reason
		switch o.Kind {
		case OverrideCheck:
			checks = append(checks, o.Name)
		case OverrideAnalysis:
			analyses = append(analyses, o.Name)
		case OverrideGate:
			gates = append(gates, o.Name)
		default:
			return Errorf(EINVALID, "override kind %q: want check, analysis or gate", o.Kind)
		}
	}
	_, err := NewOverrides(s, checks, analyses, gates, reason)
	return err
}
