package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"drover"
	"drover/rollout"
)

// Per-step retries (drover.yaml retry:). A host step that ends with a
// retryable outcome — the host was unreachable, the attempt timed out, a
// command or check ran and failed — is tried again after a capped,
// jittered, growing backoff, up to the rule's attempts. Each attempt is
// journaled as its own start/done pair, so `drover show` lists every try
// and why it failed; the machine in package rollout only ever sees the
// step's last result.
//
// A switch that got as far as moving the current link is not retried: the
// host is on the new release, and only the restore path may move it again.
//
// Retries are composed once, here. stage_retries is the stage step's rule
// when retry: gives stage a single attempt; it used to be a loop of its
// own inside the stage step, under the step's rule, so that retry:
// {attempts: 3} with the default stage_retries made up to nine transfers
// to a host that was down, and a step timeout nobody had configured.

// Stage transfer retries (stage_retries): the first wait and its cap.
const (
	stageBackoff    = 200 * time.Millisecond
	stageMaxBackoff = 10 * time.Second
)

// timeout bounds every attempt of a step and the waits between them.
func (x *executor) timeout(a rollout.Action) time.Duration {
	base := x.baseTimeout(a)
	rule := x.retryRule(a)
	if rule.Attempts <= 1 {
		return base
	}
	total := base * time.Duration(rule.Attempts)
	for n := 1; n < rule.Attempts; n++ {
		total += retryBackoff(rule, n)
	}
	return total
}

func (x *executor) retryRule(a rollout.Action) drover.RetryRule {
	if a.Step == rollout.StepGate {
		return drover.RetryRule{Attempts: 1}
	}
	rule := x.spec.Retry.Rule(string(a.Step))
	if a.Step == rollout.StepStage && rule.Attempts <= 1 && x.spec.StageRetries > 0 {
		// Only transfer problems: a release that fails validation will
		// fail it again, and retrying hides the reason.
		return drover.RetryRule{Attempts: 1 + x.spec.StageRetries, Backoff: stageBackoff, MaxBackoff: stageMaxBackoff,
			On: []string{drover.RetryUnreachable, drover.RetryTimeout}}
	}
	return rule
}

// retrying runs a.Step under its retry rule.
//
// Its frames are kept small, the bookkeeping of a failed attempt in calls
// of its own: every host's step goroutine waits on its host from inside
// it, and with 10,000 hosts staging at once each byte of frame here is
// 10 KB of the controller's memory — past ~3 KB in all, every staging
// goroutine needs an 8 KB stack instead of 4 KB (bench/sim,
// TestStagingStacks).
func (x *executor) retrying(ctx context.Context, a *rollout.Action) error {
	attempts := x.retryAttempts(a)
	if attempts <= 1 {
		return x.step(ctx, a)
	}
	for attempt := 1; ; attempt++ {
		err, timedOut := x.attempt(ctx, a)
		if err == nil {
			return nil
		}
		if !x.retryAfter(ctx, a, attempt, err, timedOut) {
			return err
		}
	}
}

// retryAttempts is how many attempts a's retry rule allows.
//
//go:noinline
func (x *executor) retryAttempts(a *rollout.Action) int {
	return x.retryRule(*a).Attempts
}

// attempt runs one attempt of a, under the step's own timeout; timedOut
// is whether that timeout (not ctx's) ended it.
func (x *executor) attempt(ctx context.Context, a *rollout.Action) (err error, timedOut bool) {
	actx, cancel := context.WithTimeout(ctx, x.attemptTimeout(a))
	defer cancel()
	err = x.step(actx, a)
	return err, actx.Err() != nil && ctx.Err() == nil
}

//go:noinline
func (x *executor) attemptTimeout(a *rollout.Action) time.Duration { return x.baseTimeout(*a) }

// retryAfter decides whether a failed attempt of a is tried again and, if
// so, journals it, says so and waits the backoff; false: the step ends
// with err.
//
//go:noinline
func (x *executor) retryAfter(ctx context.Context, a *rollout.Action, attempt int, err error, timedOut bool) bool {
	rule := x.retryRule(*a)
	kind := retryKind(err, timedOut)
	if attempt >= rule.Attempts || kind == "" || !rule.Retries(kind) || ctx.Err() != nil || x.switched(*a) || x.unknown[a.Host] != nil {
		return false
	}
	if kind == drover.RetryUnreachable || kind == drover.RetryTimeout {
		x.conns.drop(a.Host)
	}
	wait := x.backoff(rule, attempt)
	reason := fmt.Sprintf("attempt %d of %d (%s): %v; retrying in %s", attempt, rule.Attempts, kind, err, wait.Round(time.Millisecond))
	x.r.journal(ctx, x.deployID, drover.JournalEntry{At: x.r.now(), Host: a.Host, Step: string(a.Step), Phase: drover.PhaseDone, Outcome: string(outcomeOf(err)), Reason: reason, Output: tail(err.Error(), drover.MaxOutputTail), Restoring: a.Restoring})
	x.notice(a.Host, string(a.Step), "retrying "+string(a.Step)+" after "+reason)
	if x.r.sleep(ctx, wait) != nil {
		return false
	}
	x.r.journal(ctx, x.deployID, drover.JournalEntry{At: x.r.now(), Host: a.Host, Step: string(a.Step), Phase: drover.PhaseStart, Restoring: a.Restoring})
	return true
}

// switched reports whether a switch step moved the host's current link:
// such a host is not switched again by a retry.
func (x *executor) switched(a rollout.Action) bool {
	if a.Step != rollout.StepSwitch || a.Restoring {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	cur, ok := x.current[a.Host]
	return ok && cur != "" && cur == x.slots[a.Host].Slot
}

// retryKind classifies a failed attempt: "" for a failure no retry can
// help (bad input, a bug).
func retryKind(err error, timedOut bool) string {
	if timedOut || errors.Is(err, context.DeadlineExceeded) {
		return drover.RetryTimeout
	}
	switch drover.ErrorCode(err) {
	case drover.EUNREACHABLE:
		return drover.RetryUnreachable
	case drover.ETIMEOUT:
		return drover.RetryTimeout
	case drover.EFAILED:
		return drover.RetryExit
	}
	return ""
}

// retryBackoff is the longest wait after attempt n (1-based): Backoff
// doubled n-1 times, capped at MaxBackoff.
func retryBackoff(r drover.RetryRule, n int) time.Duration {
	b := r.Backoff
	for i := 1; i < n && b < r.MaxBackoff; i++ {
		b *= 2
	}
	if r.MaxBackoff > 0 {
		b = min(b, r.MaxBackoff)
	}
	return max(b, 0)
}

// backoff is the wait after attempt n under rule: retryBackoff with
// jitter, drawn from [d/2, d) with the deploy's seeded source, so hosts
// that failed together do not retry in lockstep against the same
// bottleneck, and a test replays the same waits.
func (x *executor) backoff(rule drover.RetryRule, n int) time.Duration {
	d := retryBackoff(rule, n)
	if d <= 1 {
		return d
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return d/2 + time.Duration(x.rng.Int64N(int64(d-d/2)))
}
