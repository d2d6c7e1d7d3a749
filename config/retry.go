package config

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"drover"
)

// RetryFile is the retry block: a rule for every host step, and rules per
// step under steps: that replace the parts they set.
//
//	retry:
//	  attempts: 3
//	  backoff: 1s
//	  max_backoff: 30s
//	  on: [unreachable, timeout, exit]
//	  steps:
//	    restart: {attempts: 5, on: [exit]}
type RetryFile struct {
	Attempts   *int                     `yaml:"attempts"`
	Backoff    string                   `yaml:"backoff"`
	MaxBackoff string                   `yaml:"max_backoff"`
	On         []string                 `yaml:"on"`
	Steps      map[string]RetryRuleFile `yaml:"steps"`
}

// RetryRuleFile is one entry of retry.steps.
type RetryRuleFile struct {
	Attempts   *int     `yaml:"attempts"`
	Backoff    string   `yaml:"backoff"`
	MaxBackoff string   `yaml:"max_backoff"`
	On         []string `yaml:"on"`
}

// retrySteps are the steps a retry rule may name: the host steps of the
// deploy and restore paths, as events and the journal name them.
var retrySteps = []string{"stage", "depool", "switch", "restart", "check", "repool", "restore"}

var retryOutcomes = []string{drover.RetryUnreachable, drover.RetryTimeout, drover.RetryExit}

// maxRetryAttempts bounds attempts: a step's timeout grows with them, and
// a thousand tries of a restart is a loop nobody meant.
const maxRetryAttempts = 100

// checkRetry validates the retry block and returns the policy.
// Without a retry block the policy is the zero value: every step once.
func (f *File) checkRetry(ps *problems) drover.RetryPolicy {
	if f.Retry.Attempts == nil && f.Retry.Backoff == "" && f.Retry.MaxBackoff == "" && f.Retry.On == nil && f.Retry.Steps == nil {
		return drover.RetryPolicy{}
	}
	def := drover.RetryRule{
		Attempts:   drover.DefaultRetryAttempts,
		Backoff:    drover.DefaultRetryBackoff,
		MaxBackoff: drover.DefaultRetryMaxBackoff,
		On:         slices.Clone(drover.DefaultRetryOn),
	}
	at := p("retry")
	pol := drover.RetryPolicy{Default: f.retryRule(ps, at, def, RetryRuleFile{
		Attempts: f.Retry.Attempts, Backoff: f.Retry.Backoff, MaxBackoff: f.Retry.MaxBackoff, On: f.Retry.On,
	})}
	for _, step := range sortedKeys(f.Retry.Steps) {
		sat := at.with("steps", step)
		if !slices.Contains(retrySteps, step) {
			hint := "steps are: " + strings.Join(retrySteps, ", ")
			if step == "promote" {
				hint = `the promote step is called "switch"; ` + hint
			}
			ps.add(sat, hint, "retry.steps.%s: %q is not a host step", step, step)
			continue
		}
		if pol.Steps == nil {
			pol.Steps = map[string]drover.RetryRule{}
		}
		pol.Steps[step] = f.retryRule(ps, sat, pol.Default, f.Retry.Steps[step])
	}
	return pol
}

// retryRule is rf on top of def, validated at at.
func (f *File) retryRule(ps *problems, at keyPath, def drover.RetryRule, rf RetryRuleFile) drover.RetryRule {
	r := def
	if rf.Attempts != nil {
		r.Attempts = *rf.Attempts
		if r.Attempts < 1 || r.Attempts > maxRetryAttempts {
			ps.add(at.with("attempts"), "use 1 (try once) to "+strconv.Itoa(maxRetryAttempts),
				"%s.attempts: %d is out of range", at, r.Attempts)
			r.Attempts = def.Attempts
		}
	}
	r.Backoff = f.duration(ps, at.with("backoff"), rf.Backoff, def.Backoff)
	r.MaxBackoff = f.duration(ps, at.with("max_backoff"), rf.MaxBackoff, def.MaxBackoff)
	if rf.Backoff != "" && rf.MaxBackoff != "" && r.MaxBackoff < r.Backoff {
		ps.add(at.with("max_backoff"), "make max_backoff at least backoff",
			"%s.max_backoff: %v is less than backoff %v", at, r.MaxBackoff, r.Backoff)
	}
	r.MaxBackoff = max(r.MaxBackoff, r.Backoff)
	if rf.On != nil {
		r.On = nil
		for i, o := range rf.On {
			if !slices.Contains(retryOutcomes, o) {
				ps.add(at.with("on", i), "retryable outcomes are: "+strings.Join(retryOutcomes, ", "),
					"%s.on[%d]: %q is not an outcome", at, i, o)
				continue
			}
			r.On = append(r.On, o)
		}
	}
	return r
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// nonNegativeDuration is duration allowing "0" (no wait).
func (f *File) nonNegativeDuration(ps *problems, at keyPath, s string, def time.Duration) time.Duration {
	if s == "0" || s == "0s" {
		return 0
	}
	return f.duration(ps, at, s, def)
}
