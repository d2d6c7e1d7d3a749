package runner

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"

	"drover"
	"drover/rollout"
)

// fullStore refuses journal writes and outcomes once full is set, as
// store/sqlite and store/file do when the disk under state_dir fills.
type fullStore struct {
	refusingStore
	mu   sync.Mutex
	full bool
}

func (s *fullStore) refused() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return &drover.Error{Code: drover.EINTERNAL, Message: "store: append to journal", Err: syscall.ENOSPC}
	}
	return nil
}

// The disk under the journal fills while h02's switch runs: the switch
// finishes, and since the write of its result and of h02's next step is
// refused, no step starts on any host — no restart, no next batch, no
// rollback whose steps could not be journaled either. The verdict needs a
// person and says what to do. Once the disk has room, `drover resume`
// takes the hosts the deploy touched back. Without the freeze, the deploy
// went on through every host with no journal at all.
func TestJournalRefusedFreezes(t *testing.T) {
	spec := testSpec(4)
	spec.Groups[1].Batch = 1
	e := newEnv(t, spec)
	fs := &fullStore{}
	fs.refusingStore = refusingStore{recStore: e.store, refuse: fs.refused}
	e.r.Store = fs
	v1, v2, out, after := e.faultMidSwitch(t, func() {
		fs.mu.Lock()
		fs.full = true
		fs.mu.Unlock()
	})
	for _, c := range after {
		if changesHost(c.Op) {
			t.Errorf("after the journal was refused: %s %s %s", c.Op, c.Host, c.Arg)
		}
	}
	if out.ExitCode != drover.ExitNeedsPerson || out.Verdict != rollout.NeedsPerson {
		t.Errorf("exit %d verdict %s, want 3 needs_person", out.ExitCode, out.Verdict)
	}
	t.Logf("deploy: %s", out.Summary)
	for _, want := range []string{"the journal cannot be written", "no space left on device", "drover resume"} {
		if !strings.Contains(out.Summary, want) {
			t.Errorf("summary does not say %q:\n%s", want, out.Summary)
		}
	}
	if st := e.states()["h02"]; st.Release != v2.ID() {
		t.Errorf("h02 is on %s: its switch in flight should have finished, untouched since", st.Release)
	}
	for _, h := range []string{"h03", "h04"} {
		if st := e.states()[h]; st.Release != v1.ID() {
			t.Errorf("%s is on %s, want untouched on 1.0.0", h, st.Release)
		}
	}
	// The disk has room again: resume takes every host the deploy
	// touched back to 1.0.0, and a second resume has nothing to do.
	fs.mu.Lock()
	fs.full = false
	fs.mu.Unlock()
	outs, err := e.r.Resume(context.Background())
	if err != nil || len(outs) != 1 || outs[0].ExitCode != drover.ExitOK || outs[0].Kind != drover.KindRecover {
		t.Fatalf("resume once the journal can be written: %+v, %v", outs, err)
	}
	t.Logf("resume: %s", outs[0].Summary)
	for name, st := range e.states() {
		if st.Release != v1.ID() {
			t.Errorf("%s on %s after resume, want %s", name, st.Release, v1.ID())
		}
	}
	if outs, err = e.r.Resume(context.Background()); err != nil || len(outs) != 0 {
		t.Fatalf("second resume: %+v, %v; want nothing to do", outs, err)
	}
}
