package runner

import (
	"context"
	"sync"
	"testing"

	"drover"
)

// batchStore is a recStore whose Store journals in batches: each batch is
// logged, entry by entry, once it is durable, and its size is kept.
type batchStore struct {
	*recStore
	mu    sync.Mutex
	sizes []int
}

func (s *batchStore) AppendBatch(ctx context.Context, id string, es []drover.JournalEntry) error {
	err := s.recStore.Store.(drover.BatchAppender).AppendBatch(ctx, id, es)
	if err == nil {
		for _, e := range es {
			s.log.add(call{Op: opAppend, Arg: id, Host: e.Host, Entry: e})
		}
		s.mu.Lock()
		s.sizes = append(s.sizes, len(es))
		s.mu.Unlock()
	}
	return err
}

// TestJournalBatches: with a store that takes batches, the steps that
// start together are journaled in one write, and still every host call
// lies between its step's durable "start" and "done" entries.
func TestJournalBatches(t *testing.T) {
	spec := testSpec(8)
	spec.StageParallelism = 8
	e := newEnv(t, spec)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	bs := &batchStore{recStore: e.store}
	e.r.Store = bs
	// h05 fails its check: within the limit, restored — every kind of
	// step, and results that arrive together.
	e.fleet.Fail("h05", opCheck, 1, drover.Errorf(drover.EFAILED, "503 from /health"))
	mark := e.log.mark()
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d (%s), want %d", out.ExitCode, out.Summary, drover.ExitPartial)
	}
	checkJournalOrder(t, e.log, out.DeployID, mark)
	entries := len(e.journal(out.DeployID))
	bs.mu.Lock()
	sizes := bs.sizes
	bs.mu.Unlock()
	writes, batched := 0, 0
	for _, n := range sizes {
		writes++
		batched += n
	}
	if batched >= entries || writes == 0 {
		t.Fatalf("%d entries, %d of them in %d batches: want the rest appended one by one", entries, batched, writes)
	}
	// All 8 hosts stage at once (stage_parallelism 8): one write holds
	// their 8 "start" entries.
	if sizes[0] < 8 {
		t.Errorf("first batch holds %d entries, want every host's stage start", sizes[0])
	}
}
