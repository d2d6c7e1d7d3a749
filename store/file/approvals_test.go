package file_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"drover"
	"drover/store/storetest"
)

func TestApprovalsContract(t *testing.T) {
	storetest.RunApprovalsContract(t, func(t *testing.T) drover.Store { return open(t) })
}

// A process killed mid-write leaves a fragment without a newline; the next
// writer (another process) must not glue its entry to it, or an abort
// typed after the crash would be lost.
func TestApprovalsTornFragment(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.Begin(ctx, storetest.Record("d-1", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestApproval(ctx, drover.ApprovalRequest{DeployID: "d-1", Key: "hello", Group: "canary", Gate: "canary/approve"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Dir(), "hello", "deploys", "d-1.approvals")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"decision":{"deploy":"d-1","verdict":"appr`)
	f.Close()
	if d, err := s.Decision(ctx, "d-1", "canary/approve"); err != nil || d != nil {
		t.Fatalf("torn fragment read as %+v, %v", d, err)
	}
	if err := s.Decide(ctx, drover.ApprovalDecision{DeployID: "d-1", Verdict: drover.VerdictAbort, By: "bob"}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Decision(ctx, "d-1", "canary/approve"); err != nil || d == nil || d.Verdict != drover.VerdictAbort {
		t.Fatalf("abort after a torn fragment: %+v, %v", d, err)
	}
}
