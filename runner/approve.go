package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"drover"
	"drover/rollout"
)

// This file is the approval gate (approve: manual) and the abort watcher.
//
// A group with approve: manual stops the deploy, once its hosts are done
// and baked, until a person decides: `drover approve` or `drover abort`
// from any process of the service — a second terminal, a CI job — or an
// answer at a prompt when drover runs in a terminal; whichever comes first
// wins. Without a terminal the gate waits for the other process: that is
// the point of it (a CI deploy paused for a human). The decision travels
// through the state store (drover.Approvals), which every drover process
// of the service already shares; the gate polls it. No decision within the
// group's approve_timeout aborts: a deploy nobody approved does not go on,
// and does not stay half-done either.
//
// `drover abort` works on any running deploy, waiting or not: the abort
// watcher polls for it between steps and halts the deploy through the
// loop, so everything switched rolls back.

// approvalPoll is how often a waiting gate and the abort watcher read the
// store: fast enough that an answer feels immediate, cheap enough (one
// small file read) to run for an hour.
const approvalPoll = 200 * time.Millisecond

// ErrNoTerminal is what Runner.AskApproval returns when there is no one to
// ask here; the gate then waits for another process only.
var ErrNoTerminal = errors.New("no terminal to ask")

// approveGate is group g's approval gate.
func (w *canaryWatch) approveGate(g drover.Group) groupGate {
	timeout := g.ApproveTimeout
	if timeout <= 0 {
		timeout = drover.DefaultApproveTimeout
	}
	return groupGate{
		plan: rollout.Gate{Name: GateApprove, Kind: rollout.GateRun}, kind: "approve",
		timeout: timeout + gateSlack,
		run: func(ctx context.Context) error {
			return w.awaitApproval(ctx, g, timeout)
		},
	}
}

// awaitApproval waits for a decision about group g's gate.
func (w *canaryWatch) awaitApproval(ctx context.Context, g drover.Group, timeout time.Duration) error {
	ap := w.r.Approvals
	id := w.x.deployID
	if ap == nil {
		return drover.Errorf(drover.EFAILED, "group %s needs an approval and the state store cannot record one", g.Name).
			WithHint("use a state store that supports approvals (store: file)")
	}
	gate := drover.ApprovalGate(g.Name)
	if err := w.requestApproval(ctx, g, gate, timeout); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	answers, done := w.prompt(wctx, g)
	defer func() { cancel(); <-done }()

	tick := time.NewTicker(approvalPoll)
	defer tick.Stop()
	for {
		select {
		case a := <-answers:
			answers = nil // one prompt, one answer
			if a.err != nil {
				// No terminal, or the prompt broke: wait for another
				// process. A prompt ended by the wait's own end is
				// reported by the case below.
				if !errors.Is(a.err, ErrNoTerminal) && wctx.Err() == nil {
					w.r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Group: g.Name, Message: "approval prompt failed: " + a.err.Error() + "; waiting for drover approve"})
				}
				continue
			}
			return w.promptDecision(ctx, g, gate, a.yes)
		case <-tick.C:
			d, err := ap.Decision(wctx, id, gate)
			if err != nil {
				if wctx.Err() == nil {
					w.r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Group: g.Name, Message: "reading approvals: " + err.Error()})
				}
				continue
			}
			if d != nil {
				return decided(g, d)
			}
		case <-w.halted:
			return drover.Errorf(drover.EFAILED, "the deploy halted while group %s waited for approval", g.Name)
		case <-w.parent.Done():
			return drover.Errorf(drover.EFAILED, "interrupted while group %s waited for approval", g.Name)
		case <-wctx.Done():
			if ctx.Err() != nil {
				return drover.Errorf(drover.ETIMEOUT, "group %s: the approval gate ran out of time", g.Name)
			}
			// Recorded, so `drover approve` now says there is nothing
			// to approve rather than approving a gate nobody waits at.
			// The abort watcher reads this record too; it must not
			// halt the deploy in the gate's name first, as "aborted
			// by drover", hiding the timeout and its hint.
			w.timedOut.Store(true)
			ap.Decide(context.WithoutCancel(ctx), drover.ApprovalDecision{DeployID: id, Verdict: drover.VerdictAbort, By: "drover", At: w.r.now(), Message: "approval timed out"})
			return drover.Errorf(drover.ETIMEOUT, "group %s: no approval within %s (approve_timeout); aborting", g.Name, timeout).
				WithHint("run drover approve while the gate waits, or raise approve_timeout")
		}
	}
}

// requestApproval records that group g's gate waits until timeout from
// now, and says so.
func (w *canaryWatch) requestApproval(ctx context.Context, g drover.Group, gate string, timeout time.Duration) error {
	id := w.x.deployID
	now := w.r.now()
	until := now.Add(timeout)
	req := drover.ApprovalRequest{DeployID: id, Key: Key(w.x.spec), Group: g.Name, Gate: gate, At: now, Until: until}
	if err := w.r.Approvals.RequestApproval(ctx, req); err != nil {
		return fmt.Errorf("recording the approval request: %w", err)
	}
	w.r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Group: g.Name,
		Message: fmt.Sprintf("group %s waits for approval until %s: run `drover approve %s` to go on or `drover abort %s` to roll back",
			g.Name, until.Format("15:04:05"), id, id)})
	return nil
}

// promptAnswer is a person's answer at the terminal.
type promptAnswer struct {
	yes bool
	err error
}

// prompt asks a person at the terminal, beside the polling: whichever
// answers first wins, and the other is told to stop (ctx) and waited for
// (done is closed when the prompt returned; at once without AskApproval).
func (w *canaryWatch) prompt(ctx context.Context, g drover.Group) (<-chan promptAnswer, <-chan struct{}) {
	answers := make(chan promptAnswer, 1)
	done := make(chan struct{})
	if w.r.AskApproval == nil {
		close(done)
		return answers, done
	}
	go func() {
		defer close(done)
		yes, err := w.r.AskApproval(ctx, fmt.Sprintf("group %s is done. Approve deploy %s to go on? (no rolls every host back)", g.Name, w.x.deployID))
		answers <- promptAnswer{yes, err}
	}()
	return answers, done
}

// promptDecision records the answer given at the prompt, so that history
// and other processes see it; the answer stands even if the store
// refuses.
func (w *canaryWatch) promptDecision(ctx context.Context, g drover.Group, gate string, yes bool) error {
	user, machine := w.r.who()
	d := drover.ApprovalDecision{DeployID: w.x.deployID, Verdict: drover.VerdictAbort, By: user + "@" + machine + " (prompt)", At: w.r.now()}
	if yes {
		d.Verdict, d.Gate = drover.VerdictApprove, gate
	}
	if err := w.r.Approvals.Decide(context.WithoutCancel(ctx), d); err != nil {
		w.r.emit(drover.Event{Deploy: w.x.deployID, Kind: drover.EventNotice, Group: g.Name, Message: "could not record the decision: " + err.Error()})
	}
	return decided(g, &d)
}

// decided turns a decision into the gate's result.
func decided(g drover.Group, d *drover.ApprovalDecision) error {
	if d.Verdict == drover.VerdictApprove {
		return nil
	}
	msg := fmt.Sprintf("aborted by %s at group %s", d.By, g.Name)
	if d.Message != "" {
		msg += ": " + d.Message
	}
	return drover.Errorf(drover.EFAILED, "%s", msg)
}

// goAbortWatcher starts the goroutine that halts the deploy when someone
// runs `drover abort` for it from another process.
func (w *canaryWatch) goAbortWatcher() {
	ap := w.r.Approvals
	if ap == nil {
		return
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(approvalPoll)
		defer t.Stop()
		for {
			select {
			case <-w.ctx.Done():
				return
			case <-w.halted:
				return
			case <-t.C:
			}
			d, err := ap.Decision(w.ctx, w.x.deployID, "")
			if err != nil || d == nil || d.Verdict != drover.VerdictAbort {
				// A store that cannot be read now is read again at the
				// next tick; the deploy does not stop for it.
				continue
			}
			if w.timedOut.Load() {
				// The abort is the approval gate's own timeout, which
				// fails the gate and halts the deploy with its reason.
				return
			}
			reason := "aborted by " + d.By
			if d.Message != "" {
				reason += ": " + d.Message
			}
			w.halt(reason)
			return
		}
	}()
}
