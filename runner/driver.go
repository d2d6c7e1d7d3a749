package runner

import (
	"context"
	"fmt"
	"time"

	"drover"
	"drover/rollout"
)

// This file is the driver: the goroutine side of a run, around the pure
// machine in package rollout, as raft's node is around its RawNode. The
// machine decides (Ready); the driver journals what it decided, starts the
// steps once their start is durable, collects their results and feeds
// them back (Report), and turns outside events — Ctrl-C, a halt from an
// analysis or another process, a lost lock, a bake time — into the
// machine's inputs. One method per concern: decide, submit, release,
// launch, collect, freeze, abandon.

// driver runs one machine to the end.
type driver struct {
	r         *Runner
	id        string
	m         *rollout.Machine
	run       stepFunc
	timeoutOf func(rollout.Action) time.Duration
	// ctx is the run's context: its end (Ctrl-C) aborts the run. Steps run
	// on stepCtx, which it does not cancel (see drive).
	ctx     context.Context
	stepCtx context.Context
	// halts are reasons to halt found outside any step: a background
	// analysis that failed, an abort from another process (analysis.go).
	halts <-chan string

	results chan rollout.Result
	running int // steps launched and not yet reported
	started map[string]time.Time
	// groupOf and restoring complete step_done with what the core's
	// result does not carry: the host's group and the path it is on.
	groupOf   map[string]string
	restoring map[string]bool

	// Journal writes go through one writer, one write at a time. A write
	// holds the PhaseDone entries of the steps that finished since the
	// last one and the PhaseStart entries of the steps their results let
	// begin: a
	// hundred hosts finishing a step together cost one write (one fsync),
	// not two hundred. What depends on a write — its steps starting, the
	// step_done, note and step_start events, in that order — waits until
	// it is durable, so every step is still journaled before it runs and
	// before anything reports it done. Meanwhile the driver goes on taking
	// results and deciding, into next.
	jw            *journalWriter
	next, inWrite write
	writing       bool

	// Fencing (fence.go): with a lock that can be lost, a refused write
	// starts no step, and the run freezes.
	fence  drover.LosableLock
	lost   <-chan struct{}
	frozen bool

	timer *time.Timer
}

// write is one journal write and what waits for it. Its events wait as
// references to its entries and actions and become Events only when the
// write is released: held whole, the step_start events of 10,000 hosts
// staging were ~3 MB of the heap for the length of a write (bench/sim).
type write struct {
	entries []drover.JournalEntry
	events  []pendingEvent
	launch  []rollout.Action
}

// pendingEvent is one event of a write, in the order they are emitted: a
// note's event, or the event of entries[entry] — a step_start, of the
// write's next action in launch; a step_done, in group.
type pendingEvent struct {
	note  *drover.Event
	entry int
	group string
}

// each calls f with w's events in order, start telling a step_start.
func (d *driver) each(w write, f func(e drover.Event, start bool)) {
	k := 0 // the next step_start's action in w.launch
	for _, p := range w.events {
		if p.note != nil {
			f(*p.note, false)
			continue
		}
		je := w.entries[p.entry]
		if je.Phase == drover.PhaseStart {
			a := w.launch[k]
			k++
			f(drover.Event{Deploy: d.id, Kind: drover.EventStepStart, Group: a.Group, Host: a.Host, Step: string(a.Step), Restoring: a.Restoring, Timeout: d.timeoutOf(a)}, true)
			continue
		}
		f(drover.Event{Deploy: d.id, Kind: drover.EventStepDone, Group: p.group, Host: je.Host, Step: je.Step, Restoring: je.Restoring, Outcome: je.Outcome, Message: je.Reason, Elapsed: je.Elapsed}, false)
	}
}

// drive runs machine m to the end. Every action is journaled before it runs
// and after, so a crash leaves a record of which hosts may be half-switched
// or out of rotation. ctx being cancelled (Ctrl-C) aborts the deploy the
// safe way: the machine stops starting hosts, steps already running finish
// — they run under their own timeouts, not under ctx, because killing a
// switch or a restart half-way is how hosts end up in unknown states — and
// then everything this deploy switched rolls back. halts (nil: none) are
// reasons to halt found outside the steps.
//
// drive returns an EINTERNAL error, after every step it started has
// finished, when the machine can no longer be trusted (it rejected a result
// or stalled): a bug, reported as a verdict that needs a person (see
// report), never a crash that leaves steps running and hosts half-done.
func (r *Runner) drive(ctx context.Context, deployID string, m *rollout.Machine, run stepFunc, timeoutOf func(rollout.Action) time.Duration, halts <-chan string) error {
	// results has room for one result per host (a host runs one step at
	// a time), so a finished step's goroutine hands its result over and
	// exits instead of waiting for the loop, which is busy deciding and
	// journaling while thousands finish together: each waiting goroutine
	// kept the stack its step grew, ~130 MB with 10,000 hosts staging
	// (bench/sim).
	d := &driver{r: r, id: deployID, m: m, run: run, timeoutOf: timeoutOf, ctx: ctx, stepCtx: context.WithoutCancel(ctx), halts: halts,
		results: make(chan rollout.Result, len(r.Spec.Hosts)), started: map[string]time.Time{}, groupOf: map[string]string{}, restoring: map[string]bool{}}
	d.fence = lockOf(ctx)
	if d.fence != nil {
		d.lost = d.fence.Lost()
	}
	d.jw = newJournalWriter(ctx, r.Store, r.emit, deployID, d.fence)
	// Every return of loop is made with no write in flight.
	defer d.jw.close()
	defer d.stopTimer()
	return d.loop()
}

// loop asks the machine, submits what it decided and waits for the next
// input, until the machine is done and nothing is in flight.
func (d *driver) loop() error {
	interrupted := d.ctx.Done()
	for {
		wakeAt := d.decide()
		if err := d.submit(); err != nil {
			return d.abandon(err)
		}
		if d.m.Done() && d.running == 0 && !d.writing {
			for _, n := range d.m.Ready(d.r.now()).Notes {
				d.r.emitNote(d.id, n)
			}
			return nil
		}
		wake := d.arm(wakeAt)
		if d.running == 0 && !d.writing && wake == nil {
			return d.stalled()
		}
		select {
		case res := <-d.results:
			if err := d.collectAll(res); err != nil {
				return d.rejected(err)
			}
		case werr := <-d.jw.written():
			if err := d.onWritten(werr); err != nil {
				return d.abandon(err)
			}
		case <-d.lost:
			d.freeze(nil)
		case <-wake:
		case reason := <-d.halts:
			d.halts = nil
			d.m.Halt(d.r.now(), reason)
		case <-interrupted:
			// Once: the abort is decided, what remains is to let steps
			// finish and roll back.
			interrupted = nil
			d.m.Abort(d.r.now(), "interrupted: "+context.Cause(d.ctx).Error())
		}
	}
}

// decide takes the machine's notes and actions into the next write and
// returns when the machine wants to be asked again (a bake time; zero:
// only when something happens).
func (d *driver) decide() time.Time {
	rd := d.m.Ready(d.r.now())
	for _, n := range rd.Notes {
		if n.Kind != rollout.NoteVerdict {
			ev := d.r.noteEvent(d.id, n)
			d.next.events = append(d.next.events, pendingEvent{note: &ev})
		}
	}
	for _, a := range rd.Actions {
		d.next.events = append(d.next.events, pendingEvent{entry: len(d.next.entries)})
		d.next.entries = append(d.next.entries, drover.JournalEntry{At: d.r.now(), Host: a.Host, Step: string(a.Step), Phase: drover.PhaseStart, Restoring: a.Restoring})
		d.next.launch = append(d.next.launch, a)
		d.groupOf[a.Host] = a.Group
		d.restoring[a.Host] = a.Restoring
	}
	return rd.Wake
}

// arm sets the wake timer for at and returns its channel; nil when the
// machine did not ask to be woken.
func (d *driver) arm(at time.Time) <-chan time.Time {
	d.stopTimer()
	if at.IsZero() {
		return nil
	}
	d.timer = time.NewTimer(max(at.Sub(d.r.now()), 0))
	return d.timer.C
}

func (d *driver) stopTimer() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// stalled ends a run whose machine has nothing running, nothing to start,
// and is not done: a bug in the core. The caller reports a verdict that
// needs a person rather than hanging forever.
func (d *driver) stalled() error {
	err := drover.Errorf(drover.EINTERNAL, "the rollout stalled with nothing in flight")
	d.r.emit(drover.Event{Deploy: d.id, Kind: drover.EventNotice, Message: "internal error: " + err.Message + "; the hosts need a person"})
	return err
}

// submit hands the next write to the writer when it is free; one with
// nothing to journal (notes alone) is released at once, in turn. Frozen,
// nothing is journaled: every write would be refused.
func (d *driver) submit() error {
	if d.writing {
		return nil
	}
	if len(d.next.entries) == 0 || d.frozen {
		err := d.release(d.next)
		d.next = write{}
		return err
	}
	d.inWrite, d.next = d.next, write{}
	d.writing = true
	d.jw.write(d.inWrite.entries)
	return nil
}

// onWritten releases the write that just became durable, or freezes the
// run when the store refused it because the lock was lost.
func (d *driver) onWritten(werr error) error {
	d.writing = false
	switch {
	case isLockLost(werr, d.fence):
		d.freeze(werr)
	case werr != nil && drover.ErrorCode(werr) != drover.EUNREACHABLE:
		d.journalRefused(werr)
	}
	err := d.release(d.inWrite)
	d.inWrite = write{}
	return err
}

// release emits a durable write's events and starts its steps. With the
// lock lost — the write was refused, or this process's clock says the
// lease may have expired (a pause) — the steps never start.
func (d *driver) release(w write) error {
	if d.fence != nil && len(w.launch) > 0 && !d.fence.Held() {
		d.freeze(nil)
	}
	if d.frozen && len(w.launch) > 0 {
		d.each(w, func(e drover.Event, start bool) {
			if !start {
				d.r.emit(e)
			}
		})
		return notRun(d.m, d.r.now(), w.launch)
	}
	d.each(w, func(e drover.Event, _ bool) { d.r.emit(e) })
	for _, a := range w.launch {
		d.launch(a)
	}
	return nil
}

// launch starts one step in its own goroutine, under its own timeout; its
// result comes back on d.results, which only the loop reads.
func (d *driver) launch(a rollout.Action) {
	d.started[a.Host+"/"+string(a.Step)] = d.r.now()
	d.running++
	go d.runStep(&a, d.timeoutOf(a))
}

// runStep runs a under its timeout and hands its result to the loop. A
// panic in the step is its failure, not the controller's end: the loop
// still gets one result for every step it started.
func (d *driver) runStep(a *rollout.Action, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(d.stepCtx, timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			d.results <- rollout.Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: rollout.Failed, Reason: fmt.Sprintf("internal error: %v", p)}
		}
	}()
	d.results <- d.run(ctx, a)
}

// freeze stops the rollout without a rollback: the lock is lost, and its
// new holder recovers this deploy.
func (d *driver) freeze(cause error) {
	if d.frozen {
		return
	}
	d.frozen, d.lost = true, nil
	d.m.Freeze(d.r.now(), d.r.lostReason(d.ctx, d.fence, cause)+"; the lock's holder recovers this deploy")
}

// journalRefused freezes the rollout when the store refused a journal
// write — a full or read-only disk under store/sqlite or store/file, a
// corrupt database — and the steps that write was for do not start.
// Going on would take host after host forward with nothing durable to
// say where each one is: a crash then, or a second failure, leaves
// `drover resume` and the next deploy guessing from host state alone.
// Freeze, not halt: a rollback is steps too, and its journal could not be
// written either. A store that did not answer (EUNREACHABLE: etcd
// electing a new leader) is left to the lock: past its lease the write is
// refused as a lost lock and the rollout freezes there; before that the
// deploy goes on (the notice says which write was missed).
func (d *driver) journalRefused(err error) {
	if d.frozen {
		return
	}
	d.frozen, d.lost = true, nil
	d.m.Freeze(d.r.now(), "the journal cannot be written ("+err.Error()+"); once the store can be written again (a full disk under state_dir freed), run `drover resume`")
}

// collect takes a finished step's result: its journal entry and event go
// into the next write, the machine learns the outcome now.
func (d *driver) collect(res rollout.Result) error {
	d.running--
	key := res.Host + "/" + string(res.Step)
	elapsed := d.r.now().Sub(d.started[key])
	delete(d.started, key)
	d.next.events = append(d.next.events, pendingEvent{entry: len(d.next.entries), group: d.groupOf[res.Host]})
	d.next.entries = append(d.next.entries, drover.JournalEntry{At: d.r.now(), Host: res.Host, Step: string(res.Step), Phase: drover.PhaseDone, Outcome: string(res.Outcome), Reason: res.Reason, Elapsed: elapsed, Output: outputTail(res), Restoring: d.restoring[res.Host]})
	return d.m.Report(d.r.now(), res)
}

// collectAll collects res and every other step that finished meanwhile,
// so that they go into the same write.
func (d *driver) collectAll(res rollout.Result) error {
	if err := d.collect(res); err != nil {
		return err
	}
	for {
		select {
		case res := <-d.results:
			if err := d.collect(res); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// rejected ends a run whose machine rejected a result: what was decided
// before is journaled and goes on; nothing more is decided.
func (d *driver) rejected(cause error) error {
	if d.writing {
		if isLockLost(<-d.jw.written(), d.fence) {
			d.freeze(nil)
		}
		d.writing = false
		d.release(d.inWrite)
	}
	if !d.frozen {
		d.jw.writeNow(d.next.entries)
	}
	d.release(d.next)
	return d.abandon(cause)
}

// abandon ends a run whose machine can no longer be trusted: its view of
// the hosts is wrong from here on, so nothing more is started, not even a
// rollback it would decide. Steps in flight are waited for (their
// goroutines are the driver's) and journaled, so that the journal still
// says what every host went through.
func (d *driver) abandon(cause error) error {
	err := &drover.Error{Code: drover.EINTERNAL, Message: "the rollout rejected a step result", Err: cause}
	d.r.emit(drover.Event{Deploy: d.id, Kind: drover.EventNotice, Message: "internal error: " + err.Error() + "; starting no more steps, the hosts need a person"})
	for ; d.running > 0; d.running-- {
		res := <-d.results
		d.r.journal(d.ctx, d.id, drover.JournalEntry{At: d.r.now(), Host: res.Host, Step: string(res.Step), Phase: drover.PhaseDone, Outcome: string(res.Outcome), Reason: res.Reason})
		d.r.emit(drover.Event{Deploy: d.id, Kind: drover.EventStepDone, Host: res.Host, Step: string(res.Step), Outcome: string(res.Outcome), Message: res.Reason})
	}
	return err
}
