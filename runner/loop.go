package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"drover"
	"drover/rollout"
)

// stepFunc runs one action and returns its result. It must honor ctx's
// deadline and never panic.
type stepFunc func(ctx context.Context, a rollout.Action) rollout.Result

// drive runs machine m to the end. Every action is journaled before it runs
// and after, so a crash leaves a record of which hosts may be half-switched
// or out of rotation. ctx being cancelled (Ctrl-C) aborts the deploy the
// safe way: the machine stops starting hosts, steps already running finish
// — they run under their own timeouts, not under ctx, because killing a
// switch or a restart half-way is how hosts end up in unknown states — and
// then everything this deploy switched rolls back.
func (r *Runner) drive(ctx context.Context, deployID string, m *rollout.Machine, run stepFunc, timeoutOf func(rollout.Action) time.Duration) {
	results := make(chan rollout.Result)
	inflight := 0
	aborted := false
	stepCtx := context.WithoutCancel(ctx)
	started := map[string]time.Time{}

	for {
		rd := m.Ready(r.now())
		for _, n := range rd.Notes {
			r.emitNote(deployID, n)
		}
		for _, a := range rd.Actions {
			r.journal(ctx, deployID, drover.JournalEntry{At: r.now(), Host: a.Host, Step: string(a.Step), Phase: "start"})
			r.emit(drover.Event{Deploy: deployID, Kind: drover.EventStepStart, Group: a.Group, Host: a.Host, Step: stepLabel(a)})
			started[a.Host+"/"+string(a.Step)] = r.now()
			inflight++
			go func() {
				actx, cancel := context.WithTimeout(stepCtx, timeoutOf(a))
				defer cancel()
				res := safeRun(actx, run, a)
				results <- res
			}()
		}
		if m.Done() && inflight == 0 {
			for _, n := range m.Ready(r.now()).Notes {
				r.emitNote(deployID, n)
			}
			return
		}
		if inflight == 0 {
			// Nothing running, nothing to start, yet not done: a bug in
			// the core. Stop here; the caller reports a verdict that needs
			// a person rather than hanging forever.
			r.emit(drover.Event{Deploy: deployID, Kind: drover.EventNotice, Message: "internal error: the rollout stalled with nothing in flight"})
			return
		}
		var res rollout.Result
		if aborted {
			res = <-results
		} else {
			select {
			case res = <-results:
			case <-ctx.Done():
				aborted = true
				m.Abort(r.now(), "interrupted: "+context.Cause(ctx).Error())
				continue
			}
		}
		inflight--
		key := res.Host + "/" + string(res.Step)
		elapsed := r.now().Sub(started[key])
		delete(started, key)
		r.journal(ctx, deployID, drover.JournalEntry{At: r.now(), Host: res.Host, Step: string(res.Step), Phase: "done", Outcome: string(res.Outcome), Reason: res.Reason})
		r.emit(drover.Event{Deploy: deployID, Kind: drover.EventStepDone, Host: res.Host, Step: string(res.Step), Outcome: string(res.Outcome), Message: res.Reason, Elapsed: elapsed})
		if err := m.Report(r.now(), res); err != nil {
			panic(fmt.Sprintf("rollout rejected a result it asked for: %v", err))
		}
	}
}

func safeRun(ctx context.Context, run stepFunc, a rollout.Action) (res rollout.Result) {
	defer func() {
		if p := recover(); p != nil {
			res = rollout.Result{Host: a.Host, Step: a.Step, Outcome: rollout.Failed, Reason: fmt.Sprintf("internal error: %v", p)}
		}
	}()
	return run(ctx, a)
}

func stepLabel(a rollout.Action) string {
	if a.Restoring && a.Step != rollout.StepRestore {
		return string(a.Step) + " (restoring)"
	}
	return string(a.Step)
}

// journal appends to the store. A journal that cannot be written is not a
// reason to leave hosts half-done mid-step, so the failure is reported and
// the deploy goes on; recovery then falls back to reading host state.
func (r *Runner) journal(ctx context.Context, deployID string, e drover.JournalEntry) {
	if err := r.Store.Append(context.WithoutCancel(ctx), deployID, e); err != nil {
		r.emit(drover.Event{Deploy: deployID, Kind: drover.EventNotice, Host: e.Host, Step: e.Step, Message: "journal write failed: " + err.Error()})
	}
}

func (r *Runner) emitNote(deployID string, n rollout.Note) {
	kind := n.Kind
	switch kind {
	case "group_start":
		kind = drover.EventGroupStart
	case "group_done":
		kind = drover.EventGroupDone
	case "host_failed":
		kind = drover.EventHostFailed
	case "halt":
		kind = drover.EventHalt
	case "rollback_start":
		kind = drover.EventRollback
	case "verdict":
		kind = drover.EventVerdict
	}
	r.emit(drover.Event{Time: n.Time, Deploy: deployID, Kind: kind, Group: n.Group, Host: n.Host, Message: n.Message})
}

// outcomeOf maps an error from a host operation to a step outcome: a lost
// host is "unreachable", which rollback skips and reports, not "failed".
func outcomeOf(err error) rollout.Outcome {
	if err == nil {
		return rollout.OK
	}
	if drover.ErrorCode(err) == drover.EUNREACHABLE {
		return rollout.Unreachable
	}
	return rollout.Failed
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
