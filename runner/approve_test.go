package runner

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

// approvalEnv is an env whose runner records approvals in its file store,
// as `drover approve` in another process would find them.
func approvalEnv(t *testing.T, n int) (*env, drover.Approvals) {
	e := analysisEnv(t, n)
	ap := e.store.Store.(drover.Approvals)
	e.r.Approvals = ap
	e.spec.Groups[0].Approve = drover.ApproveManual
	return e, ap
}

// deployAsync runs a deploy in a goroutine the test waits for.
func deployAsync(t *testing.T, e *env, rel *drover.Release) <-chan *Outcome {
	ch := make(chan *Outcome, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, err := e.r.Deploy(context.Background(), DeployOptions{Release: rel})
		if err != nil {
			t.Errorf("deploy: %v", err)
		}
		ch <- out
	}()
	// The deploy's goroutine is the test's: it ends before the test does.
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("the deploy goroutine did not end")
		}
	})
	return ch
}

// waitPending waits until a deploy of hello waits at a gate and returns
// the request.
func waitPending(t *testing.T, ap drover.Approvals) drover.ApprovalRequest {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		p, err := ap.Pending(context.Background(), "hello")
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > 0 {
			return p[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no deploy ever waited for approval")
	return drover.ApprovalRequest{}
}

func outcome(t *testing.T, ch <-chan *Outcome) *Outcome {
	t.Helper()
	select {
	case out := <-ch:
		return out
	case <-time.After(time.Minute):
		t.Fatal("the deploy did not end")
		return nil
	}
}

// The gate holds the deploy after the canary until another process
// approves; then the rest of the fleet follows.
func TestApproveReleasedByDecision(t *testing.T) {
	e, ap := approvalEnv(t, 3)
	ch := deployAsync(t, e, mkRelease(t, "1.0.0"))
	req := waitPending(t, ap)
	if req.Gate != "canary/approve" || req.Group != "canary" || req.Until.Sub(req.At) != drover.DefaultApproveTimeout {
		t.Errorf("request %+v", req)
	}
	if promoted(e, "h02") {
		t.Fatal("h02 switched before the approval")
	}
	if err := ap.Decide(context.Background(), drover.ApprovalDecision{DeployID: req.DeployID, Verdict: drover.VerdictApprove, Gate: req.Gate, By: "bob@ci"}); err != nil {
		t.Fatal(err)
	}
	out := outcome(t, ch)
	if out.Verdict != rollout.Succeeded {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	var notice string
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventNotice && strings.Contains(ev.Message, "waits for approval") {
			notice = ev.Message
		}
	}
	if !strings.Contains(notice, "drover approve "+req.DeployID) {
		t.Errorf("the waiting notice %q does not say what to run", notice)
	}
}

func TestApproveAbortRollsBack(t *testing.T) {
	e, ap := approvalEnv(t, 3)
	e.mustDeployApproved(t, ap, mkRelease(t, "1.0.0"))
	before := e.states()
	ch := deployAsync(t, e, mkRelease(t, "2.0.0"))
	req := waitPending(t, ap)
	if err := ap.Decide(context.Background(), drover.ApprovalDecision{DeployID: req.DeployID, Verdict: drover.VerdictAbort, By: "bob@ci", Message: "p99 doubled"}); err != nil {
		t.Fatal(err)
	}
	out := outcome(t, ch)
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "aborted by bob@ci") || !strings.Contains(out.Summary, "p99 doubled") {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	e.wantSnapshots(before)
}

// mustDeployApproved deploys rel, approving every gate as it opens.
func (e *env) mustDeployApproved(t *testing.T, ap drover.Approvals, rel *drover.Release) {
	t.Helper()
	ch := deployAsync(t, e, rel)
	req := waitPending(t, ap)
	ap.Decide(context.Background(), drover.ApprovalDecision{DeployID: req.DeployID, Verdict: drover.VerdictApprove, Gate: req.Gate, By: "test"})
	if out := outcome(t, ch); out.ExitCode != 0 {
		t.Fatalf("deploy %s: %s", rel.Version(), out.Summary)
	}
}

// watchedApprovals is the store's Approvals, with hooks on what the gate
// and the abort watcher read and write, so a test can order them.
type watchedApprovals struct {
	drover.Approvals
	// onDecide runs after a decision is recorded.
	onDecide func(d drover.ApprovalDecision)
	// onDecision runs after a read, with what it returned.
	onDecision func(gate string, d *drover.ApprovalDecision)
}

func (w *watchedApprovals) Decide(ctx context.Context, d drover.ApprovalDecision) error {
	err := w.Approvals.Decide(ctx, d)
	if w.onDecide != nil && err == nil {
		w.onDecide(d)
	}
	return err
}

func (w *watchedApprovals) Decision(ctx context.Context, id, gate string) (*drover.ApprovalDecision, error) {
	d, err := w.Approvals.Decision(ctx, id, gate)
	if w.onDecision != nil && err == nil {
		w.onDecision(gate, d)
	}
	return d, err
}

// No decision within approve_timeout aborts, and the gate records the
// abort so that `drover approve` finds nothing to approve. The abort
// watcher reads that record too: here it does so before the gate's
// failure reaches the loop (the order a busy machine can produce), and
// the deploy must still be halted for the timeout, not reported as
// aborted by someone.
func TestApproveTimeoutAborts(t *testing.T) {
	e, ap := approvalEnv(t, 2)
	e.spec.Groups[0].ApproveTimeout = 300 * time.Millisecond
	recorded := make(chan struct{})
	seen := make(chan struct{})
	var seenOnce sync.Once
	e.r.Approvals = &watchedApprovals{Approvals: ap,
		onDecide: func(d drover.ApprovalDecision) {
			if d.Verdict != drover.VerdictAbort {
				return
			}
			close(recorded)
			// The gate returns only once the watcher has read the
			// abort it recorded.
			waitFor(t, seen, "the abort watcher reading the timeout's abort")
		},
		onDecision: func(gate string, d *drover.ApprovalDecision) {
			select {
			case <-recorded:
				if gate == "" && d != nil {
					seenOnce.Do(func() { close(seen) })
				}
			default:
			}
		},
	}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "no approval within 300ms") {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	if p, _ := ap.Pending(context.Background(), "hello"); len(p) != 0 {
		t.Errorf("a timed-out gate is still pending: %+v", p)
	}
}

// A prompt answer wins like a decision from another process, and is
// recorded; without a terminal the gate waits for the other process.
func TestApprovePrompt(t *testing.T) {
	e, ap := approvalEnv(t, 2)
	var asked string
	e.r.AskApproval = func(ctx context.Context, q string) (bool, error) { asked = q; return true, nil }
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.Verdict != rollout.Succeeded || !strings.Contains(asked, "group canary is done") {
		t.Fatalf("verdict %s (%s), asked %q", out.Verdict, out.Summary, asked)
	}
	if d, err := ap.Decision(context.Background(), out.DeployID, "canary/approve"); err != nil || d == nil || !strings.HasSuffix(d.By, "(prompt)") {
		t.Errorf("decision recorded %+v, %v", d, err)
	}

	e.r.AskApproval = func(ctx context.Context, q string) (bool, error) { return false, nil }
	out = e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "aborted by") {
		t.Fatalf("declined: verdict %s: %s", out.Verdict, out.Summary)
	}

	// No terminal: the prompt gives up at once, the gate keeps waiting:
	// it goes on reading the store after the prompt gave up, which a
	// gate that ended would not (whatever the machine's speed).
	gaveUp := make(chan struct{})
	e.r.AskApproval = func(ctx context.Context, q string) (bool, error) {
		close(gaveUp)
		return false, ErrNoTerminal
	}
	polls := make(chan struct{}, 100)
	e.r.Approvals = &watchedApprovals{Approvals: ap, onDecision: func(gate string, d *drover.ApprovalDecision) {
		select {
		case <-gaveUp:
		default:
			return
		}
		if gate != "" && d == nil {
			select {
			case polls <- struct{}{}:
			default:
			}
		}
	}}
	ch := deployAsync(t, e, mkRelease(t, "3.0.0"))
	req := waitPending(t, ap)
	waitFor(t, gaveUp, "the prompt")
	for i := range 3 {
		select {
		case <-polls:
		case out := <-ch:
			t.Fatalf("ended without a decision: %s", out.Summary)
		case <-time.After(time.Minute):
			t.Fatalf("the gate stopped reading the store after %d reads once the prompt gave up", i)
		}
	}
	ap.Decide(context.Background(), drover.ApprovalDecision{DeployID: req.DeployID, Verdict: drover.VerdictApprove, Gate: req.Gate, By: "ci"})
	if out := outcome(t, ch); out.Verdict != rollout.Succeeded {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
}

// A prompt still open when another process answers is told to stop: the
// gate does not return before the prompt has.
func TestApprovePromptCancelledByOtherProcess(t *testing.T) {
	e, ap := approvalEnv(t, 2)
	promptDone := make(chan struct{})
	e.r.AskApproval = func(ctx context.Context, q string) (bool, error) {
		defer close(promptDone)
		<-ctx.Done()
		return false, ctx.Err()
	}
	ch := deployAsync(t, e, mkRelease(t, "1.0.0"))
	req := waitPending(t, ap)
	ap.Decide(context.Background(), drover.ApprovalDecision{DeployID: req.DeployID, Verdict: drover.VerdictApprove, Gate: req.Gate, By: "ci"})
	out := outcome(t, ch)
	select {
	case <-promptDone:
	default:
		t.Error("the deploy went on while the prompt was still asking")
	}
	if out.Verdict != rollout.Succeeded {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
}

// drover abort on a deploy that waits for nothing: the watcher halts it
// between steps and everything switched rolls back.
func TestAbortBetweenSteps(t *testing.T) {
	e, ap := approvalEnv(t, 4)
	e.spec.Groups[0].Approve = ""
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.states()
	held := e.fleet.Hold("h02", opPromote)
	ch := deployAsync(t, e, mkRelease(t, "2.0.0"))
	waitFor(t, held.entered, "h02's switch")
	unfinished, err := e.store.Unfinished(context.Background(), "hello")
	if err != nil || len(unfinished) != 1 {
		t.Fatalf("unfinished %v, %v", unfinished, err)
	}
	halted := e.events.next(drover.EventHalt)
	if err := ap.Decide(context.Background(), drover.ApprovalDecision{DeployID: unfinished[0].ID, Verdict: drover.VerdictAbort, By: "alice@ops"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, halted, "the halt")
	held.Release()
	out := outcome(t, ch)
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "aborted by alice@ops") {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	for _, h := range []string{"h03", "h04"} {
		if e.fleet.State(h).Version != "1.0.0" {
			t.Errorf("%s on %s", h, e.fleet.State(h).Version)
		}
	}
	e.wantSnapshots(before)
}

// A halt while the gate waits (a background analysis failing) ends the
// wait at once instead of holding the rollback for an hour.
func TestApproveEndsOnHalt(t *testing.T) {
	e, ap := approvalEnv(t, 2)
	e.spec.Groups[0].Analysis = []drover.AnalysisSpec{errorsAnalysis()}
	e.r.Analyzer = &fakeAnalyzer{answer: func(a drover.AnalysisSpec, in drover.AnalysisInput, n int) (drover.AnalysisResult, error) {
		if n < 5 {
			return pass("ok"), nil
		}
		return drover.AnalysisResult{Status: drover.AnalysisFail, Message: "errors: h01=0.2 above max 0.05"}, nil
	}}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "h01=0.2 above max 0.05") {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
	if p, _ := ap.Pending(context.Background(), "hello"); len(p) != 0 {
		t.Errorf("pending after the deploy ended: %+v", p)
	}
}

func TestApproveWithoutStoreFails(t *testing.T) {
	e, _ := approvalEnv(t, 2)
	e.r.Approvals = nil
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if out.Verdict != rollout.RolledBack || !strings.Contains(out.Summary, "cannot record one") {
		t.Fatalf("verdict %s: %s", out.Verdict, out.Summary)
	}
}
