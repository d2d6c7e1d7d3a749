package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"drover"
)

// RunBatchAppenderContract runs the contract of drover.BatchAppender
// against fresh stores made by open; each store must implement it.
func RunBatchAppenderContract(t *testing.T, open func(t *testing.T) drover.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, drover.Store, drover.BatchAppender)
	}{
		{"RoundTrip", testBatchRoundTrip},
		{"AfterFinish", testBatchAfterFinish},
		{"Concurrent", testBatchConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			b, ok := s.(drover.BatchAppender)
			if !ok {
				t.Fatalf("%T does not implement drover.BatchAppender", s)
			}
			tt.fn(t, s, b)
		})
	}
}

// testBatchRoundTrip: batches and single appends interleave in order; an
// empty batch writes nothing; a batch bigger than any statement limit is
// kept whole.
func testBatchRoundTrip(t *testing.T, s drover.Store, b drover.BatchAppender) {
	ctx := context.Background()
	if err := s.Begin(ctx, Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	want := Entries(300)
	if err := b.AppendBatch(ctx, "d-1", nil); err != nil {
		t.Fatalf("empty AppendBatch: %v", err)
	}
	if err := s.Append(ctx, "d-1", want[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendBatch(ctx, "d-1", want[1:2]); err != nil {
		t.Fatalf("AppendBatch of one: %v", err)
	}
	if err := b.AppendBatch(ctx, "d-1", want[2:299]); err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	if err := s.Append(ctx, "d-1", want[299]); err != nil {
		t.Fatal(err)
	}
	got, err := s.Journal(ctx, "d-1")
	if err != nil {
		t.Fatal(err)
	}
	if !sameEntries(got, want) {
		t.Errorf("Journal after batches: %d entries, want %d in order", len(got), len(want))
	}
	if err := b.AppendBatch(ctx, "d-nope", want[:2]); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("AppendBatch to an unknown deploy: %v, want ENOTFOUND", err)
	}
}

// testBatchAfterFinish: a finished deploy's journal is closed to batches
// too, and a refused batch writes nothing.
func testBatchAfterFinish(t *testing.T, s drover.Store, b drover.BatchAppender) {
	ctx := context.Background()
	if err := s.Begin(ctx, Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	want := Entries(4)
	if err := b.AppendBatch(ctx, "d-1", want[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Finished: base.Add(time.Minute), Outcome: drover.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendBatch(ctx, "d-1", want[2:]); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("AppendBatch after Finish: %v, want EINVALID", err)
	}
	got, err := s.Journal(ctx, "d-1")
	if err != nil || !sameEntries(got, want[:2]) {
		t.Errorf("Journal after a refused batch: %+v, %v", got, err)
	}
}

// testBatchConcurrent: batches from many goroutines all land, each one's
// entries in its own order.
func testBatchConcurrent(t *testing.T, s drover.Store, b drover.BatchAppender) {
	ctx := context.Background()
	if err := s.Begin(ctx, Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	const writers, batches, per = 4, 5, 6
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				es := make([]drover.JournalEntry, per)
				for j := range es {
					es[j] = drover.JournalEntry{At: base, Host: fmt.Sprintf("w%d", w), Step: fmt.Sprintf("%d", i*per+j), Phase: drover.PhaseStart}
				}
				if err := b.AppendBatch(ctx, "d-1", es); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent AppendBatch: %v", err)
	}
	got, err := s.Journal(ctx, "d-1")
	if err != nil || len(got) != writers*batches*per {
		t.Fatalf("Journal: %d entries, %v; want %d", len(got), err, writers*batches*per)
	}
	next := map[string]int{}
	for _, e := range got {
		if e.Step != fmt.Sprint(next[e.Host]) {
			t.Fatalf("%s: step %s after %d: batches interleaved out of order", e.Host, e.Step, next[e.Host]-1)
		}
		next[e.Host]++
	}
}
