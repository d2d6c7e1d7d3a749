package runner

import (
	"cmp"
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
//
// drive returns an EINTERNAL error, after every step it started has
// finished, when the machine can no longer be trusted (it rejected a result
// or stalled): a bug, reported as a verdict that needs a person (see
// report), never a crash that leaves steps running and hosts half-done.
func (r *Runner) drive(ctx context.Context, deployID string, m *rollout.Machine, run stepFunc, timeoutOf func(rollout.Action) time.Duration) error {
	// Room for one result per host (a host runs one step at a time), so a
	// finished step's goroutine hands its result over and exits instead
	// of waiting for the loop, which is busy deciding and journaling
	// while thousands finish together: each waiting goroutine kept the
	// stack its step grew, ~130 MB with 10,000 hosts staging (bench/sim).
	results := make(chan rollout.Result, len(r.Spec.Hosts))
	running := 0 // steps launched and not yet reported
	stepCtx := context.WithoutCancel(ctx)
	started := map[string]time.Time{}
	// groupOf and restoring complete step_done with what the core's
	// result does not carry: the host's group and the path it is on.
	groupOf := map[string]string{}
	restoring := map[string]bool{}

	// Journal writes go through one writer goroutine, one write at a
	// time. A write holds the PhaseDone entries of the steps that finished
	// since the last one and the PhaseStart entries of the steps their
	// results let begin: a hundred hosts finishing a step together cost
	// one write (one fsync), not two hundred. What depends on a write —
	// its steps starting, the step_done, note and step_start events,
	// in that order — waits until it is durable, so every step is still
	// journaled before it runs and before anything reports it done.
	// Meanwhile the loop goes on taking results and deciding, into the
	// next write: the store's work is off the path of the steps.
	type write struct {
		entries []drover.JournalEntry
		events  []drover.Event
		launch  []rollout.Action
	}
	var next, inWrite write
	writing := false
	writes := make(chan []drover.JournalEntry)
	written := make(chan error)
	writerDone := make(chan struct{})
	// Fencing (fence.go): with a lock that can be lost, journal writes are
	// cut short the moment it is, and a refused write starts no step.
	fence := lockOf(ctx)
	var lost <-chan struct{}
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	if fence != nil {
		lost = fence.Lost()
		lostOnce := lost
		go func() {
			select {
			case <-lostOnce:
				wcancel()
			case <-wctx.Done():
			}
		}()
	}
	frozen := false
	go func() {
		defer close(writerDone)
		for es := range writes {
			written <- r.journalBatch(wctx, deployID, es, fence)
		}
	}()
	// Every return below is made with no write in flight.
	defer func() {
		close(writes)
		<-writerDone
	}()
	// freeze stops the rollout without a rollback: the lock is lost.
	freeze := func(cause error) {
		if frozen {
			return
		}
		frozen, lost = true, nil
		m.Freeze(r.now(), r.lostReason(ctx, fence, cause)+"; the lock's holder recovers this deploy")
	}
	// release emits a durable write's events and starts its steps. With
	// the lock lost — the write was refused, or this process's clock says
	// the lease may have expired (a pause) — the steps never start.
	release := func(w write) error {
		if fence != nil && len(w.launch) > 0 && !fence.Held() {
			freeze(nil)
		}
		if frozen && len(w.launch) > 0 {
			for _, e := range w.events {
				if e.Kind != drover.EventStepStart {
					r.emit(e)
				}
			}
			return notRun(m, r.now(), w.launch)
		}
		for _, e := range w.events {
			r.emit(e)
		}
		for _, a := range w.launch {
			started[a.Host+"/"+string(a.Step)] = r.now()
			running++
			go func() {
				actx, cancel := context.WithTimeout(stepCtx, timeoutOf(a))
				defer cancel()
				res := safeRun(actx, run, a)
				results <- res
			}()
		}
		return nil
	}
	// submit hands the next write to the writer when it is free; one
	// with nothing to journal (notes alone) is released at once, in turn.
	// Frozen, nothing is journaled: every write would be refused.
	submit := func() error {
		if writing {
			return nil
		}
		if len(next.entries) == 0 || frozen {
			err := release(next)
			next = write{}
			return err
		}
		inWrite, next = next, write{}
		writing = true
		writes <- inWrite.entries
		return nil
	}
	// collect takes a finished step's result: its journal entry and event
	// go into the next write, the machine learns the outcome now.
	collect := func(res rollout.Result) error {
		running--
		key := res.Host + "/" + string(res.Step)
		elapsed := r.now().Sub(started[key])
		delete(started, key)
		next.entries = append(next.entries, drover.JournalEntry{At: r.now(), Host: res.Host, Step: string(res.Step), Phase: drover.PhaseDone, Outcome: string(res.Outcome), Reason: res.Reason, Elapsed: elapsed, Output: outputTail(res), Restoring: restoring[res.Host]})
		next.events = append(next.events, drover.Event{Deploy: deployID, Kind: drover.EventStepDone, Group: groupOf[res.Host], Host: res.Host, Step: string(res.Step), Restoring: restoring[res.Host], Outcome: string(res.Outcome), Message: res.Reason, Elapsed: elapsed})
		return m.Report(r.now(), res)
	}

	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	interrupted := ctx.Done()
	// halts are reasons to halt found outside any step: a background
	// analysis that failed, an abort from another process (analysis.go).
	halts := haltsOf(ctx)
	for {
		rd := m.Ready(r.now())
		for _, n := range rd.Notes {
			next.events = r.appendNote(next.events, deployID, n)
		}
		for _, a := range rd.Actions {
			next.entries = append(next.entries, drover.JournalEntry{At: r.now(), Host: a.Host, Step: string(a.Step), Phase: drover.PhaseStart, Restoring: a.Restoring})
			next.events = append(next.events, drover.Event{Deploy: deployID, Kind: drover.EventStepStart, Group: a.Group, Host: a.Host, Step: string(a.Step), Restoring: a.Restoring, Timeout: timeoutOf(a)})
			next.launch = append(next.launch, a)
			groupOf[a.Host] = a.Group
			restoring[a.Host] = a.Restoring
		}
		if err := submit(); err != nil {
			return r.abandon(ctx, deployID, err, running, results)
		}
		if m.Done() && running == 0 && !writing {
			for _, n := range m.Ready(r.now()).Notes {
				r.emitNote(deployID, n)
			}
			return nil
		}
		// A bake time: the core wants to be asked again at Wake even if
		// no step finishes before.
		var wake <-chan time.Time
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if !rd.Wake.IsZero() {
			timer = time.NewTimer(max(rd.Wake.Sub(r.now()), 0))
			wake = timer.C
		}
		if running == 0 && !writing && wake == nil {
			// Nothing running, nothing to start, yet not done: a bug in
			// the core. Stop here; the caller reports a verdict that needs
			// a person rather than hanging forever.
			err := drover.Errorf(drover.EINTERNAL, "the rollout stalled with nothing in flight")
			r.emit(drover.Event{Deploy: deployID, Kind: drover.EventNotice, Message: "internal error: " + err.Message + "; the hosts need a person"})
			return err
		}
		var res rollout.Result
		select {
		case res = <-results:
		case werr := <-written:
			writing = false
			if isLockLost(werr, fence) {
				freeze(werr)
			}
			err := release(inWrite)
			inWrite = write{}
			if err != nil {
				return r.abandon(ctx, deployID, err, running, results)
			}
			continue
		case <-lost:
			freeze(nil)
			continue
		case <-wake:
			continue
		case reason := <-halts:
			halts = nil
			m.Halt(r.now(), reason)
			continue
		case <-interrupted:
			// Once: the abort is decided, what remains is to
			// let steps finish and roll back.
			interrupted = nil
			m.Abort(r.now(), "interrupted: "+context.Cause(ctx).Error())
			continue
		}
		err := collect(res)
		// Every other step that finished meanwhile goes into the same
		// write.
		for more := err == nil; more; {
			select {
			case res = <-results:
				err = collect(res)
				more = err == nil
			default:
				more = false
			}
		}
		if err != nil {
			// What was decided before the machine rejected a result is
			// journaled and goes on; nothing more is decided.
			if writing {
				if isLockLost(<-written, fence) {
					freeze(nil)
				}
				writing = false
				release(inWrite)
			}
			if !frozen {
				r.journalBatch(wctx, deployID, next.entries, fence)
			}
			release(next)
			return r.abandon(ctx, deployID, err, running, results)
		}
	}
}

// journalBatch journals es in one write when the store can, else entry by
// entry (see journal), on ctx as it is: drive's writes are cut short when
// the lock is lost. A failed write is reported and returned; one refused
// because the lock was lost (fence.go) is only returned, and ends the
// batch: drive freezes and says why.
func (r *Runner) journalBatch(ctx context.Context, deployID string, es []drover.JournalEntry, fence drover.LosableLock) error {
	if len(es) == 0 {
		return nil
	}
	b, ok := r.Store.(drover.BatchAppender)
	if !ok || len(es) == 1 {
		var first error
		for _, e := range es {
			err := r.Store.Append(ctx, deployID, e)
			if isLockLost(err, fence) {
				return err
			}
			if err != nil {
				r.emit(drover.Event{Deploy: deployID, Kind: drover.EventNotice, Host: e.Host, Step: e.Step, Message: "journal write failed: " + err.Error()})
				first = cmp.Or(first, err)
			}
		}
		return first
	}
	err := b.AppendBatch(ctx, deployID, es)
	if err != nil && !isLockLost(err, fence) {
		r.emit(drover.Event{Deploy: deployID, Kind: drover.EventNotice, Message: fmt.Sprintf("journal write of %d steps failed: %v", len(es), err)})
	}
	return err
}

// abandon ends a drive whose machine rejected a result: the machine's view
// of the hosts is wrong from here on, so nothing more is started, not even
// a rollback it would decide. Steps in flight are waited for (their
// goroutines are drive's) and journaled, so that the journal still says
// what every host went through.
func (r *Runner) abandon(ctx context.Context, deployID string, cause error, inflight int, results <-chan rollout.Result) error {
	err := &drover.Error{Code: drover.EINTERNAL, Message: "the rollout rejected a step result", Err: cause}
	r.emit(drover.Event{Deploy: deployID, Kind: drover.EventNotice, Message: "internal error: " + err.Error() + "; starting no more steps, the hosts need a person"})
	for ; inflight > 0; inflight-- {
		res := <-results
		r.journal(ctx, deployID, drover.JournalEntry{At: r.now(), Host: res.Host, Step: string(res.Step), Phase: drover.PhaseDone, Outcome: string(res.Outcome), Reason: res.Reason})
		r.emit(drover.Event{Deploy: deployID, Kind: drover.EventStepDone, Host: res.Host, Step: string(res.Step), Outcome: string(res.Outcome), Message: res.Reason})
	}
	return err
}

// report is m's outcome after drive returned err: a drive stopped by an
// internal error needs a person, whatever the machine had decided so far.
func report(m *rollout.Machine, err error) rollout.Report {
	rep := m.Outcome()
	if err != nil {
		rep.Verdict = rollout.NeedsPerson
		if rep.HaltReason != "" {
			rep.HaltReason += "; "
		}
		rep.HaltReason += err.Error()
	}
	return rep
}

func safeRun(ctx context.Context, run stepFunc, a rollout.Action) (res rollout.Result) {
	defer func() {
		if p := recover(); p != nil {
			res = rollout.Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: rollout.Failed, Reason: fmt.Sprintf("internal error: %v", p)}
		}
	}()
	return run(ctx, a)
}

// journal appends to the store. A journal that cannot be written is not a
// reason to leave hosts half-done mid-step, so the failure is reported and
// the deploy goes on; recovery then falls back to reading host state.
func (r *Runner) journal(ctx context.Context, deployID string, e drover.JournalEntry) {
	if err := r.Store.Append(context.WithoutCancel(ctx), deployID, e); err != nil {
		r.emit(drover.Event{Deploy: deployID, Kind: drover.EventNotice, Host: e.Host, Step: e.Step, Message: "journal write failed: " + err.Error()})
	}
}

// noteEvents maps the core's note kinds to event kinds. Event kinds are a
// versioned contract (drover.EventSchema); a note kind the runner does not
// know becomes a notice instead of leaking into the JSON as a kind no
// consumer was told about. The core's verdict note is not passed on:
// finish reports the run's verdict once, with its outcome and summary.
var noteEvents = map[rollout.NoteKind]string{
	rollout.NoteStageStart:     drover.EventStageStart,
	rollout.NoteStageDone:      drover.EventStageDone,
	rollout.NoteGroupStart:     drover.EventGroupStart,
	rollout.NoteGroupDone:      drover.EventGroupDone,
	rollout.NoteHostDone:       drover.EventHostDone,
	rollout.NoteHostFailed:     drover.EventHostFailed,
	rollout.NoteHostRestored:   drover.EventHostRestored,
	rollout.NoteHostStuck:      drover.EventHostStuck,
	rollout.NoteHalt:           drover.EventHalt,
	rollout.NoteAbort:          drover.EventAbort,
	rollout.NoteRollbackStart:  drover.EventRollback,
	rollout.NoteHostRolledBack: drover.EventHostRolledBack,
	rollout.NoteGateStart:      drover.EventGateStart,
	rollout.NoteGateDone:       drover.EventGateDone,
	rollout.NoteGateFailed:     drover.EventGateFailed,
	rollout.NoteGateSkipped:    drover.EventGateSkipped,
}

func (r *Runner) emitNote(deployID string, n rollout.Note) {
	if n.Kind != rollout.NoteVerdict {
		r.emit(r.noteEvent(deployID, n))
	}
}

// appendNote appends the event of a core's note to evs.
func (r *Runner) appendNote(evs []drover.Event, deployID string, n rollout.Note) []drover.Event {
	if n.Kind == rollout.NoteVerdict {
		return evs
	}
	return append(evs, r.noteEvent(deployID, n))
}

// noteEvent is the event of a core's note.
func (r *Runner) noteEvent(deployID string, n rollout.Note) drover.Event {
	kind, ok := noteEvents[n.Kind]
	if !ok {
		kind = drover.EventNotice
	}
	return drover.Event{Time: n.Time, Deploy: deployID, Kind: kind, Group: n.Group, Host: n.Host, Gate: n.Gate, Message: n.Message}
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

// outputTail is what the journal keeps as a failed step's output: the
// reason carries the hook's or check's own words (rollout.Result has no
// separate output), cut to drover.MaxOutputTail at a UTF-8 boundary.
func outputTail(res rollout.Result) string {
	if res.Outcome == rollout.OK {
		return ""
	}
	s := res.Reason
	if len(s) <= drover.MaxOutputTail {
		return s
	}
	s = s[len(s)-drover.MaxOutputTail:]
	for i := 0; i < len(s) && i < 4; i++ {
		if s[i]&0xc0 != 0x80 {
			return s[i:]
		}
	}
	return s
}
