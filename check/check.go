// Package check runs one health check on a freshly switched host: a tcp
// dial, an http GET or a command on the host, retried at an interval until
// it passes or its timeout runs out.
//
// Why retry: a service restarted a moment ago refuses connections for a
// while; a check that judged the first refused dial would roll back every
// healthy deploy. docs/why.md#super-loop shows the alternative, a
// hand-written loop per step wrapped in a super-loop. Here the loop is
// written once: attempts soon after a failure, backing off to every
// Interval, never sleeping past the deadline, each attempt bounded by what
// is left of the timeout, and the caller's context ends it at once.
//
// Why the reason matters: the verdict carries the last failure in words an
// operator can act on ("tcp 127.0.0.1:18001: connection refused",
// "http GET http://h01/version: status 503, want 200"), because "check
// failed" at 3 a.m. sends a person hunting through logs on every host.
//
// The check runs from the machine calling Run; a command check runs on the
// host through the exec function the caller passes (usually
// drover.HostConn.Exec). A log check reads a file where Run runs, so the
// transports call Run on the host (`drover host` over ssh); see log.go.
package check

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"drover"
)

// Check types.
const (
	TypeTCP     = "tcp"
	TypeHTTP    = "http"
	TypeCommand = "command"
	TypeLog     = "log"
)

// MaxAttempt bounds one tcp or http attempt: a host that accepts the
// connection and never answers must not use up the whole timeout in one
// attempt, so that a service which recovers still gets later attempts.
// Command attempts are bounded only by what is left of the timeout: a
// smoke-test script may legitimately take longer than any fixed cap.
const MaxAttempt = 5 * time.Second

// ExecFunc runs a command on the host (`sh -c`, in the release directory).
// It returns an *drover.Error with code EUNREACHABLE when the host cannot
// be reached; a command that ran and exited non-zero is an ExecResult, not
// an error.
type ExecFunc func(ctx context.Context, command string) (drover.ExecResult, error)

// firstPause is the pause after a check's first failed attempt. A check
// runs right after a restart, when a service typically needs tens of
// milliseconds to listen: retrying only after a flat Interval (200 ms to
// seconds) left every batch waiting most of an Interval for a service
// that was already up (bench/README.md). Pauses double from firstPause
// up to Interval, so a slow service is still polled every Interval.
const firstPause = 10 * time.Millisecond

// backoff is the pause after the attempts-th failed attempt.
func backoff(attempts int, interval time.Duration) time.Duration {
	p := firstPause
	for i := 1; i < attempts && p < interval; i++ {
		p *= 2
	}
	return min(p, interval)
}

// UnreachablePrefix starts the Reason of a command check that stopped
// because the host could not be reached, so callers of Run (which returns
// no error) can still tell an unreachable host from a failed check.
const UnreachablePrefix = "unreachable: "

// Run runs the rendered check c until it passes, its timeout (default
// drover.DefaultCheckTimeout) runs out or ctx ends, pausing between
// attempts 10 ms at first, doubling up to c.Interval (default
// drover.DefaultCheckInterval). It never returns
// an error: a failing check is a result with OK false and the last
// failure's Reason. Another attempt is made only when some of the timeout
// is left after the pause before it, so a Timeout shorter than the
// Interval means a single attempt. A command check whose host was
// unreachable stops at once with a Reason starting with UnreachablePrefix;
// use RunErr to get the error itself.
func Run(ctx context.Context, c drover.CheckSpec, exec ExecFunc) drover.CheckResult {
	r, _ := RunErr(ctx, c, exec)
	return r
}

// RunErr is Run that also says why a check ended without a verdict:
//
//   - the error exec returned when it has code drover.EUNREACHABLE: the
//     host was lost, retrying a command on it is pointless and the caller
//     reports the host as unreachable, not as failed;
//   - an *drover.Error with code drover.ETIMEOUT wrapping ctx.Err() when
//     ctx ended first (the step's timeout, or the operator's Ctrl-C).
//
// In both cases the result is still filled in (Attempts, Elapsed, Reason).
// A check that ran and failed returns a nil error.
func RunErr(ctx context.Context, c drover.CheckSpec, exec ExecFunc) (drover.CheckResult, error) {
	if c.Mark {
		return markLog(c), nil
	}
	res := drover.CheckResult{Name: c.Name}
	p, bad := newProbe(c, exec)
	if bad != "" {
		res.Reason = bad
		return res, nil
	}
	if p.close != nil {
		defer p.close()
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = drover.DefaultCheckTimeout
	}
	interval := c.Interval
	if interval <= 0 {
		interval = drover.DefaultCheckInterval
	}

	start := time.Now()
	deadline := start.Add(timeout)
	var last string
	stopped := func() (drover.CheckResult, error) {
		res.Elapsed = time.Since(start)
		res.Reason = fmt.Sprintf("check stopped after %d attempt(s): %v", res.Attempts, ctx.Err())
		if last != "" {
			res.Reason += "; last failure: " + last
		}
		return res, &drover.Error{Code: drover.ETIMEOUT, Message: fmt.Sprintf("check %s ended before its verdict", c.Name), Err: ctx.Err()}
	}
	for {
		if ctx.Err() != nil {
			return stopped()
		}
		budget := time.Until(deadline)
		if p.max > 0 {
			budget = min(budget, p.max)
		}
		actx, cancel := context.WithTimeout(ctx, budget)
		reason, err := p.run(actx, budget)
		var final failNow
		// An attempt the check's own deadline cut off says only that time
		// ran out; the failure before it says what is wrong with the
		// service, so that one is kept as the reason.
		cutOff := actx.Err() != nil && !time.Now().Before(deadline) && last != ""
		cancel()
		res.Attempts++
		switch {
		case reason == "" && err == nil:
			res.OK = true
			res.Elapsed = time.Since(start)
			return res, nil
		case ctx.Err() != nil:
			// The attempt was cut short by ctx; its reason says so and
			// nothing about the service, so keep the previous one.
			return stopped()
		case errors.As(err, &final):
			res.Elapsed = time.Since(start)
			res.Reason = string(final)
			return res, nil
		case err != nil:
			res.Elapsed = time.Since(start)
			res.Reason = UnreachablePrefix + err.Error()
			return res, err
		}
		if cutOff {
			break
		}
		last = reason
		// Another pause would leave no time for the attempt after it; a
		// Timeout within one Interval means a single attempt.
		pause := backoff(res.Attempts, interval)
		if timeout <= interval || time.Until(deadline) <= pause {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return stopped()
		case <-t.C:
		}
	}
	res.Elapsed = time.Since(start)
	res.Reason = last
	return res, nil
}

// probe is one kind of check: run makes one attempt within budget and
// returns "" when it passed, else the reason it failed; a non-nil error
// means the host is unreachable and retrying is pointless.
type probe struct {
	run   func(ctx context.Context, budget time.Duration) (string, error)
	max   time.Duration // per-attempt cap; 0 = none
	close func()
}

// newProbe returns the probe for c, or the reason c cannot be run at all.
// Such checks fail without an attempt: retrying a check with no address
// until its timeout would only delay the same answer.
func newProbe(c drover.CheckSpec, exec ExecFunc) (probe, string) {
	switch c.Type {
	case TypeTCP:
		if c.Address == "" {
			return probe{}, "tcp check has no address"
		}
		return probe{run: tcpProbe(c.Address), max: MaxAttempt}, ""
	case TypeHTTP:
		if c.URL == "" {
			return probe{}, "http check has no url"
		}
		u, err := url.Parse(c.URL)
		if err != nil {
			return probe{}, fmt.Sprintf("http check url %q: %v", c.URL, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return probe{}, fmt.Sprintf("http check url %q: scheme must be http or https", c.URL)
		}
		run, closeIdle := httpProbe(c)
		return probe{run: run, max: MaxAttempt, close: closeIdle}, ""
	case TypeCommand:
		if c.Command == "" {
			return probe{}, "command check has no command"
		}
		if exec == nil {
			return probe{}, "command check has no way to run commands on the host"
		}
		return probe{run: commandProbe(c.Command, exec)}, ""
	case TypeLog:
		return newLogProbe(c)
	default:
		return probe{}, fmt.Sprintf("unknown check type %q (want tcp, http, command or log)", c.Type)
	}
}
