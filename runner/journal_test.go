package runner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"drover"
)

// journalStore is a Store for the journal writer alone: it records
// appends, and AppendBatch when batch is set.
type journalStore struct {
	drover.Store
	mu      sync.Mutex
	appends [][]drover.JournalEntry
	// block makes every write wait for its ctx to end.
	block bool
}

func (s *journalStore) Append(ctx context.Context, id string, e drover.JournalEntry) error {
	return s.record(ctx, []drover.JournalEntry{e})
}

func (s *journalStore) record(ctx context.Context, es []drover.JournalEntry) error {
	if s.block {
		<-ctx.Done()
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appends = append(s.appends, es)
	return nil
}

// batchJournal is a journalStore that writes batches in one call.
type batchJournal struct{ *journalStore }

func (s batchJournal) AppendBatch(ctx context.Context, id string, es []drover.JournalEntry) error {
	return s.record(ctx, es)
}

// lostLock is a LosableLock a test loses by hand.
type lostLock struct {
	drover.Lock
	once sync.Once
	ch   chan struct{}
}

func (l *lostLock) Lost() <-chan struct{} { return l.ch }
func (l *lostLock) Held() bool {
	select {
	case <-l.ch:
		return false
	default:
		return true
	}
}
func (l *lostLock) TakenBy(context.Context) *drover.LockOwner { return nil }
func (l *lostLock) lose()                                     { l.once.Do(func() { close(l.ch) }) }

func entries(n int) []drover.JournalEntry {
	var es []drover.JournalEntry
	for i := range n {
		es = append(es, drover.JournalEntry{Host: hostNames(n)[i], Step: "stage", Phase: "start"})
	}
	return es
}

// TestJournalWriterBatches: a store that can append a batch gets one write
// per batch (one fsync for a hundred hosts); one that cannot gets the
// entries one by one, in order.
func TestJournalWriterBatches(t *testing.T) {
	var events []drover.Event
	emit := func(e drover.Event) { events = append(events, e) }

	js := &journalStore{}
	w := newJournalWriter(context.Background(), batchJournal{js}, emit, "d-1", nil)
	if err := w.writeNow(entries(3)); err != nil {
		t.Fatal(err)
	}
	if err := w.writeNow(nil); err != nil {
		t.Fatal(err)
	}
	w.close()
	if len(js.appends) != 1 || len(js.appends[0]) != 3 {
		t.Errorf("batch store got %d writes %v, want one of 3 entries", len(js.appends), js.appends)
	}

	one := &journalStore{}
	w = newJournalWriter(context.Background(), one, emit, "d-1", nil)
	w.write(entries(3))
	if err := <-w.written(); err != nil {
		t.Fatal(err)
	}
	w.close()
	if len(one.appends) != 3 || one.appends[2][0].Host != "h03" {
		t.Errorf("plain store got %v, want 3 writes in order", one.appends)
	}
	if len(events) != 0 {
		t.Errorf("events on good writes: %+v", events)
	}
}

// TestJournalWriterCutShortByLostLock: a write in flight when the lock is
// lost ends at once instead of waiting on a store that will refuse it, and
// a cancelled deploy context (Ctrl-C) does not cut a write short.
func TestJournalWriterCutShortByLostLock(t *testing.T) {
	js := &journalStore{block: true}
	lock := &lostLock{ch: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	w := newJournalWriter(ctx, batchJournal{js}, func(drover.Event) {}, "d-1", lock)
	defer w.close()
	w.write(entries(2))
	cancel()
	if err := w.ctx.Err(); err != nil {
		t.Fatalf("Ctrl-C ended the context of journal writes: %v", err)
	}
	lock.lose()
	select {
	case err := <-w.written():
		if !errors.Is(err, context.Canceled) || !isLockLost(err, lock) {
			t.Errorf("write after the lock was lost: %v, want it cut short and seen as lost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write in flight outlived the lost lock")
	}
}
