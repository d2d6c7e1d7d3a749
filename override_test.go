package drover

import (
	"strings"
	"testing"
)

// TestNewOverrides: every override needs a reason; an unknown check,
// analysis, group or gate kind is EINVALID naming it and listing what the
// spec has; a valid set is returned once per name.
func TestNewOverrides(t *testing.T) {
	s := &Spec{Source: "drover.yaml",
		Checks:   []CheckSpec{{Name: "up"}, {Name: "version"}},
		Analysis: []AnalysisSpec{{Name: "errors"}},
		Groups:   []Group{{Name: "canary", Analysis: []AnalysisSpec{{Name: "latency"}}}, {Name: "rest"}},
	}
	for _, tc := range []struct {
		name                    string
		checks, analyses, gates []string
		reason                  string
		want                    []string // in the error and its hint
		n                       int
	}{
		{name: "none", n: 0},
		{name: "no reason", checks: []string{"up"}, want: []string{"needs a reason", "-m"}},
		{name: "blank reason", gates: []string{"canary:wait"}, reason: "  ", want: []string{"needs a reason"}},
		{name: "unknown check", checks: []string{"vers"}, reason: "r", want: []string{`--skip-check "vers"`, "drover.yaml", "up, version"}},
		{name: "unknown analysis", analyses: []string{"p99"}, reason: "r", want: []string{`"p99"`, "errors, latency"}},
		{name: "gate without kind", gates: []string{"canary"}, reason: "r", want: []string{"GROUP:KIND", "smoke, invariant, analysis, wait, approve, confirm"}},
		{name: "unknown group", gates: []string{"web:wait"}, reason: "r", want: []string{`no group "web"`, "canary, rest"}},
		{name: "unknown kind", gates: []string{"canary:bake"}, reason: "r", want: []string{`no gate kind "bake"`, "smoke, invariant"}},
		{name: "valid", checks: []string{"up", "up"}, analyses: []string{"latency"}, gates: []string{"rest:smoke"}, reason: "INC-1", n: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewOverrides(s, tc.checks, tc.analyses, tc.gates, tc.reason)
			if len(tc.want) == 0 {
				if err != nil || len(got) != tc.n {
					t.Fatalf("got %+v, %v; want %d overrides", got, err, tc.n)
				}
				for _, o := range got {
					if o.Reason != tc.reason {
						t.Errorf("%+v lacks the reason", o)
					}
				}
				return
			}
			if ErrorCode(err) != EINVALID {
				t.Fatalf("got %+v, %v; want EINVALID", got, err)
			}
			msg := err.Error()
			if e, ok := err.(*Error); ok {
				msg += " " + e.Hint
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
	// The spec of the deploy drops what is skipped; the spec itself keeps it.
	ovs, _ := NewOverrides(s, []string{"up"}, []string{"latency"}, nil, "r")
	c := s.WithOverrides(ovs)
	if len(c.Checks) != 1 || c.Checks[0].Name != "version" || len(c.Groups[0].Analysis) != 0 || len(c.Analysis) != 1 {
		t.Errorf("WithOverrides: %+v", c)
	}
	if len(s.Checks) != 2 || len(s.Groups[0].Analysis) != 1 {
		t.Errorf("WithOverrides changed the spec: %+v", s)
	}
}
