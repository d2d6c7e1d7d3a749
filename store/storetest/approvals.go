package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"drover"
)

// RunApprovalsContract runs the drover.Approvals contract against fresh
// stores made by open, one per subtest. A store that does not implement
// Approvals fails: call this only for those that claim to.
func RunApprovalsContract(t *testing.T, open func(t *testing.T) drover.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, drover.Store, drover.Approvals)
	}{
		{"RequestApproveDecision", testApproveRoundTrip},
		{"AbortWins", testAbortWins},
		{"Refusals", testApprovalRefusals},
		{"PendingSkipsFinished", testPendingSkipsFinished},
		{"ConcurrentDecisions", testConcurrentDecisions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			ap, ok := s.(drover.Approvals)
			if !ok {
				t.Fatalf("%T does not implement drover.Approvals", s)
			}
			tt.fn(t, s, ap)
		})
	}
}

func begin(t *testing.T, s drover.Store, id, key string) {
	t.Helper()
	if err := s.Begin(context.Background(), Record(id, key, 0)); err != nil {
		t.Fatal(err)
	}
}

func testApproveRoundTrip(t *testing.T, s drover.Store, ap drover.Approvals) {
	ctx := context.Background()
	begin(t, s, "d-1", "hello")
	if p, err := ap.Pending(ctx, "hello"); err != nil || len(p) != 0 {
		t.Fatalf("Pending before any request = %v, %v", p, err)
	}
	req := drover.ApprovalRequest{DeployID: "d-1", Key: "hello", Group: "canary", Gate: "canary/approve", At: base, Until: base.Add(time.Hour)}
	if err := ap.RequestApproval(ctx, req); err != nil {
		t.Fatal(err)
	}
	p, err := ap.Pending(ctx, "hello")
	if err != nil || len(p) != 1 || p[0].Gate != "canary/approve" || p[0].DeployID != "d-1" || !p[0].Until.Equal(req.Until) {
		t.Fatalf("Pending = %+v, %v", p, err)
	}
	if d, err := ap.Decision(ctx, "d-1", "canary/approve"); err != nil || d != nil {
		t.Fatalf("Decision before any = %+v, %v", d, err)
	}
	if err := ap.Decide(ctx, drover.ApprovalDecision{DeployID: "d-1", Verdict: drover.VerdictApprove, Gate: "canary/approve", By: "bob@ci", At: base.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	d, err := ap.Decision(ctx, "d-1", "canary/approve")
	if err != nil || d == nil || d.Verdict != drover.VerdictApprove || d.By != "bob@ci" {
		t.Fatalf("Decision = %+v, %v", d, err)
	}
	// An approval is of one gate: the next group's gate still waits.
	if d, err := ap.Decision(ctx, "d-1", "default/approve"); err != nil || d != nil {
		t.Fatalf("other gate: %+v, %v", d, err)
	}
	if d, err := ap.Decision(ctx, "d-1", ""); err != nil || d != nil {
		t.Fatalf("abort asked: %+v, %v", d, err)
	}
	if p, err := ap.Pending(ctx, "hello"); err != nil || len(p) != 0 {
		t.Fatalf("Pending after approval = %v, %v", p, err)
	}
}

func testAbortWins(t *testing.T, s drover.Store, ap drover.Approvals) {
	ctx := context.Background()
	begin(t, s, "d-1", "hello")
	ap.RequestApproval(ctx, drover.ApprovalRequest{DeployID: "d-1", Key: "hello", Group: "canary", Gate: "canary/approve"})
	if err := ap.Decide(ctx, drover.ApprovalDecision{DeployID: "d-1", Verdict: drover.VerdictApprove, Gate: "canary/approve", By: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := ap.Decide(ctx, drover.ApprovalDecision{DeployID: "d-1", Verdict: drover.VerdictAbort, By: "b", Message: "errors up"}); err != nil {
		t.Fatal(err)
	}
	for _, gate := range []string{"", "canary/approve", "default/approve"} {
		d, err := ap.Decision(ctx, "d-1", gate)
		if err != nil || d == nil || d.Verdict != drover.VerdictAbort || d.Message != "errors up" {
			t.Errorf("gate %q: %+v, %v; want the abort", gate, d, err)
		}
	}
}

func testApprovalRefusals(t *testing.T, s drover.Store, ap drover.Approvals) {
	ctx := context.Background()
	if err := ap.RequestApproval(ctx, drover.ApprovalRequest{DeployID: "nope", Key: "hello", Gate: "g"}); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("request for unknown deploy: %v", err)
	}
	if err := ap.Decide(ctx, drover.ApprovalDecision{DeployID: "nope", Verdict: drover.VerdictAbort}); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("decide unknown deploy: %v", err)
	}
	if _, err := ap.Decision(ctx, "nope", ""); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("decision of unknown deploy: %v", err)
	}
	begin(t, s, "d-1", "hello")
	if err := ap.Decide(ctx, drover.ApprovalDecision{DeployID: "d-1", Verdict: drover.VerdictApprove}); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("approval without a gate: %v", err)
	}
	if err := s.Finish(ctx, "d-1", drover.FinishRecord{Finished: base.Add(time.Hour), Outcome: drover.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	if err := ap.Decide(ctx, drover.ApprovalDecision{DeployID: "d-1", Verdict: drover.VerdictAbort}); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("abort of a finished deploy: %v", err)
	}
	if _, err := ap.Pending(ctx, "../etc"); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("bad key: %v", err)
	}
}

func testPendingSkipsFinished(t *testing.T, s drover.Store, ap drover.Approvals) {
	ctx := context.Background()
	begin(t, s, "d-1", "hello")
	begin(t, s, "d-2", "hello/staging")
	ap.RequestApproval(ctx, drover.ApprovalRequest{DeployID: "d-1", Key: "hello", Group: "canary", Gate: "canary/approve"})
	ap.RequestApproval(ctx, drover.ApprovalRequest{DeployID: "d-2", Key: "hello/staging", Group: "canary", Gate: "canary/approve"})
	if p, _ := ap.Pending(ctx, "hello"); len(p) != 1 || p[0].DeployID != "d-1" {
		t.Fatalf("Pending(hello) = %+v: keys are separate", p)
	}
	s.Finish(ctx, "d-1", drover.FinishRecord{Finished: base.Add(time.Hour), Outcome: drover.OutcomeRolledBack, ExitCode: 1})
	if p, _ := ap.Pending(ctx, "hello"); len(p) != 0 {
		t.Fatalf("Pending after finish = %+v", p)
	}
}

// Decisions written at once by several processes (here goroutines) are all
// kept: none overwrites another.
func testConcurrentDecisions(t *testing.T, s drover.Store, ap drover.Approvals) {
	ctx := context.Background()
	begin(t, s, "d-1", "hello")
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gate := fmt.Sprintf("g%d/approve", i)
			if err := ap.RequestApproval(ctx, drover.ApprovalRequest{DeployID: "d-1", Key: "hello", Group: fmt.Sprint("g", i), Gate: gate}); err != nil {
				t.Error(err)
			}
			if err := ap.Decide(ctx, drover.ApprovalDecision{DeployID: "d-1", Verdict: drover.VerdictApprove, Gate: gate, By: "x"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if d, err := ap.Decision(ctx, "d-1", fmt.Sprintf("g%d/approve", i)); err != nil || d == nil {
			t.Errorf("gate %d: decision lost (%v)", i, err)
		}
	}
}
