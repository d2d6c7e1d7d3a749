package drover

import (
	"context"
	"time"
)

// Approvals records what people decide about a running deploy from any
// drover process of the service — a second terminal, a CI job: approving a
// gate that waits for a person (approve: manual), or aborting the deploy.
// The running deploy polls it. It lives with the journal (the state
// store) because that is the one place every drover process of a service
// already shares. store/file implements it; a Store that does not cannot
// run approval gates.
type Approvals interface {
	// RequestApproval records that a deploy waits for a person at a
	// gate. ENOTFOUND when the deploy was never begun.
	RequestApproval(ctx context.Context, r ApprovalRequest) error
	// Decide records a decision about a deploy. ENOTFOUND when the
	// deploy does not exist; EINVALID when it has finished (the decision
	// would be about nothing), or an approval names no gate.
	Decide(ctx context.Context, d ApprovalDecision) error
	// Decision returns the decision that applies to a deploy's gate: an
	// abort of the deploy, whatever the gate, else the first approval of
	// that gate; nil when there is none yet. Gate "" asks only about an
	// abort. ENOTFOUND when the deploy does not exist.
	Decision(ctx context.Context, deployID, gate string) (*ApprovalDecision, error)
	// Pending lists the gates that unfinished deploys of key wait at and
	// nobody has decided yet, oldest first. EINVALID for a bad key.
	Pending(ctx context.Context, key string) ([]ApprovalRequest, error)
}

// ApprovalRequest is a deploy waiting for a person at a gate.
type ApprovalRequest struct {
	DeployID string    `json:"deploy"`
	Key      string    `json:"key"`
	Group    string    `json:"group"`
	Gate     string    `json:"gate"`
	At       time.Time `json:"at"`
	// Until is when the gate gives up waiting (and the deploy aborts).
	Until time.Time `json:"until"`
}

// Approval verdicts.
const (
	VerdictApprove = "approve"
	VerdictAbort   = "abort"
)

// ApprovalDecision is what a person decided.
type ApprovalDecision struct {
	DeployID string `json:"deploy"`
	// Verdict is VerdictApprove (one gate) or VerdictAbort (the deploy).
	Verdict string `json:"verdict"`
	// Gate is the gate approved; "" for an abort.
	Gate    string    `json:"gate,omitempty"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Message string    `json:"message,omitempty"`
}

// ApprovalGate names a group's approval gate in Approvals: gates of
// different groups of one deploy are approved one by one.
func ApprovalGate(group string) string { return group + "/approve" }
