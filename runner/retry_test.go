package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

func checkFails(host string) error {
	return &drover.Error{Code: drover.EFAILED, Message: "up: exit 1 on " + host}
}

// TestRetryStepUntilItPasses: a check that fails twice passes on its third
// attempt; every attempt is journaled as its own start/done pair and the
// waits between them grow.
func TestRetryStepUntilItPasses(t *testing.T) {
	spec := testSpec(3)
	spec.Retry = drover.RetryPolicy{Default: drover.RetryRule{Attempts: 3, Backoff: time.Second, MaxBackoff: 10 * time.Second, On: []string{drover.RetryExit}}}
	e := newEnv(t, spec)
	e.fleet.Fail("h02", opCheck, 2, checkFails("h02"))
	out := e.mustDeploy(mkRelease(t, "1.0.0"), "")
	if out.Verdict != rollout.Succeeded {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	var phases []string
	for _, j := range e.journal(out.DeployID) {
		if j.Host == "h02" && j.Step == "check" {
			phases = append(phases, string(j.Phase)+":"+j.Outcome)
		}
	}
	if got, want := strings.Join(phases, " "), "start: done:failed start: done:failed start: done:ok"; got != want {
		t.Fatalf("h02 check journal %q, want %q", got, want)
	}
	sl := e.sleeps.all()
	if len(sl) != 2 || sl[0] < 500*time.Millisecond || sl[0] > time.Second || sl[1] < time.Second || sl[1] > 2*time.Second {
		t.Fatalf("waits between attempts %v, want one in [0.5s,1s] then one in [1s,2s]", sl)
	}
}

// TestRetryOnlyListedOutcomes: a failed check is not retried when only
// unreachable and timeout are retryable (the default), and the host fails.
func TestRetryOnlyListedOutcomes(t *testing.T) {
	spec := testSpec(3)
	spec.Retry = drover.RetryPolicy{Default: drover.RetryRule{Attempts: 3, Backoff: time.Second, MaxBackoff: time.Second, On: drover.DefaultRetryOn}}
	e := newEnv(t, spec)
	e.fleet.Fail("h02", opCheck, 1, checkFails("h02"))
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d (%s), want %d: a failed check is not retried on [unreachable timeout]", out.ExitCode, out.Summary, drover.ExitPartial)
	}
	if n := len(e.log.ops("h02", opCheck)); n != 1 {
		t.Fatalf("%d check calls on h02, want 1", n)
	}
}

// TestRetryPerStepRule: a rule under steps replaces the default for its
// step only: restart retries, check does not.
func TestRetryPerStepRule(t *testing.T) {
	spec := testSpec(2)
	spec.Retry = drover.RetryPolicy{
		Default: drover.RetryRule{Attempts: 1},
		Steps:   map[string]drover.RetryRule{"check": {Attempts: 2, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, On: []string{drover.RetryExit}}},
	}
	e := newEnv(t, spec)
	e.fleet.Fail("h02", opCheck, 1, checkFails("h02"))
	if out := e.mustDeploy(mkRelease(t, "1.0.0"), ""); out.Verdict != rollout.Succeeded {
		t.Fatalf("verdict %s", out.Verdict)
	}
	spec.Retry.Steps = map[string]drover.RetryRule{"restart": spec.Retry.Steps["check"]}
	e.fleet.Fail("h02", opCheck, 1, checkFails("h02"))
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d (%s), want %d: check has no retries of its own", out.ExitCode, out.Summary, drover.ExitPartial)
	}
}

// TestRetryNeverReswitches: a switch that moved the current link and then
// failed (after_promote) is not switched again by a retry.
func TestRetryNeverReswitches(t *testing.T) {
	spec := testSpec(2)
	spec.Hooks.AfterPromote = "after-promote {{.Host.Name}}"
	spec.Retry = drover.RetryPolicy{Default: drover.RetryRule{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, On: []string{drover.RetryExit}}}
	e := newEnv(t, spec)
	failExec(e, "after-promote h02")
	e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if n := len(e.log.ops("h02", opPromote)); n != 1 {
		t.Fatalf("%d promotes of h02, want 1", n)
	}
}

func TestRetryTimeoutCoversAttempts(t *testing.T) {
	spec := testSpec(1)
	e := newEnv(t, spec)
	x := newExecutor(e.r, newConns(e.r.Transport, spec), nil, "d-1", nil)
	a := rollout.Action{Host: "h01", Step: rollout.StepRestart}
	one := x.timeout(a)
	spec.Retry = drover.RetryPolicy{Default: drover.RetryRule{Attempts: 3, Backoff: time.Second, MaxBackoff: 2 * time.Second}}
	if got, want := x.timeout(a), 3*one+3*time.Second; got != want {
		t.Fatalf("timeout with 3 attempts %v, want %v", got, want)
	}
}

// TestStageRetriesDoNotMultiply: retry: gives stage three attempts and
// stage_retries is 2: a host that stays down is tried three times, not
// nine. The transfer retries were a loop inside the stage step, under the
// step's own retry rule, so the attempts multiplied.
func TestStageRetriesDoNotMultiply(t *testing.T) {
	spec := testSpec(3)
	spec.StageRetries = 2
	spec.Retry = drover.RetryPolicy{Steps: map[string]drover.RetryRule{"stage": {Attempts: 3, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, On: []string{drover.RetryUnreachable}}}}
	e := newEnv(t, spec)
	e.fleet.Fail("h03", opStage, -1, drover.Errorf(drover.EUNREACHABLE, "connection reset"))
	e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if n := len(e.log.ops("h03", opStage)); n != 3 {
		t.Errorf("h03 staged %d times, want 3: retry.steps.stage replaces stage_retries", n)
	}
	if n := len(e.sleeps.all()); n != 2 {
		t.Errorf("%d waits, want 2", n)
	}
	// Without retry:, stage_retries alone: 1 + 2 attempts, each journaled.
	spec.Retry = drover.RetryPolicy{}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if n := len(e.log.ops("h03", opStage)); n != 6 {
		t.Errorf("h03 staged %d times in all, want 3 more with stage_retries 2", n)
	}
	var phases []string
	for _, j := range e.journal(out.DeployID) {
		if j.Host == "h03" && j.Step == "stage" {
			phases = append(phases, string(j.Phase)+":"+j.Outcome)
		}
	}
	if got, want := strings.Join(phases, " "), "start: done:unreachable start: done:unreachable start: done:unreachable"; got != want {
		t.Errorf("h03 stage journal %q, want %q", got, want)
	}
}
