package runner

import (
	"cmp"
	"context"
	"fmt"

	"drover"
)

// journalWriter writes one run's journal in its own goroutine, one batch at
// a time, so that the store's work (an fsync, an etcd round trip) is off
// the path of the steps: the driver goes on taking results and deciding
// while a batch is written, and hands over the next batch once this one is
// durable. With a lock that can be lost (fence.go) a write in flight is cut
// short the moment the lock is lost.
//
// Its owner calls write only when no batch is in flight (after receiving
// from written), and close once; close waits for the goroutines.
type journalWriter struct {
	store    drover.Store
	emit     func(drover.Event)
	deployID string
	fence    drover.LosableLock

	ctx     context.Context
	cancel  context.CancelFunc
	in      chan []drover.JournalEntry
	out     chan error
	stopped chan struct{}
}

// newJournalWriter starts the writer of deployID's journal. Writes run on
// a context that ignores ctx's cancellation (a Ctrl-C must not cut the
// journal of the steps still running) and ends when fence is lost.
func newJournalWriter(ctx context.Context, store drover.Store, emit func(drover.Event), deployID string, fence drover.LosableLock) *journalWriter {
	w := &journalWriter{store: store, emit: emit, deployID: deployID, fence: fence,
		in: make(chan []drover.JournalEntry), out: make(chan error), stopped: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	lost := make(<-chan struct{})
	if fence != nil {
		lost = fence.Lost()
	}
	go func() {
		defer close(w.stopped)
		watch := make(chan struct{})
		go func() {
			defer close(watch)
			select {
			case <-lost:
				w.cancel()
			case <-w.ctx.Done():
			}
		}()
		for es := range w.in {
			w.out <- w.batch(w.ctx, es)
		}
		w.cancel()
		<-watch
	}()
	return w
}

// write hands es to the writer; its result arrives on written.
func (w *journalWriter) write(es []drover.JournalEntry) { w.in <- es }

// written delivers the result of the batch in flight.
func (w *journalWriter) written() <-chan error { return w.out }

// writeNow writes es and waits: for the last entries of a run that is
// ending, with no batch in flight.
func (w *journalWriter) writeNow(es []drover.JournalEntry) error {
	w.write(es)
	return <-w.out
}

// close stops the writer and waits for its goroutines. No batch may be in
// flight.
func (w *journalWriter) close() {
	close(w.in)
	<-w.stopped
}

// batch journals es in one write when the store can, else entry by entry.
// A failed write is reported and returned; one refused because the lock
// was lost (fence.go) is only returned, and ends the batch: the driver
// freezes and says why.
func (w *journalWriter) batch(ctx context.Context, es []drover.JournalEntry) error {
	if len(es) == 0 {
		return nil
	}
	b, ok := w.store.(drover.BatchAppender)
	if !ok || len(es) == 1 {
		var first error
		for _, e := range es {
			err := w.store.Append(ctx, w.deployID, e)
			if isLockLost(err, w.fence) {
				return err
			}
			if err != nil {
				w.emit(drover.Event{Deploy: w.deployID, Kind: drover.EventNotice, Host: e.Host, Step: e.Step, Message: "journal write failed: " + err.Error()})
				first = cmp.Or(first, err)
			}
		}
		return first
	}
	err := b.AppendBatch(ctx, w.deployID, es)
	if err != nil && !isLockLost(err, w.fence) {
		w.emit(drover.Event{Deploy: w.deployID, Kind: drover.EventNotice, Message: fmt.Sprintf("journal write of %d steps failed: %v", len(es), err)})
	}
	return err
}

// journal appends to the store. A journal that cannot be written is not a
// reason to leave hosts half-done mid-step, so the failure is reported and
// the deploy goes on; recovery then falls back to reading host state.
func (r *Runner) journal(ctx context.Context, deployID string, e drover.JournalEntry) {
	if err := r.Store.Append(context.WithoutCancel(ctx), deployID, e); err != nil {
		r.emit(drover.Event{Deploy: deployID, Kind: drover.EventNotice, Host: e.Host, Step: e.Step, Message: "journal write failed: " + err.Error()})
	}
}
