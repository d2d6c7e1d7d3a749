package etcd

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"drover"
)

// Approvals are keys under P/approvals/ID/, only ever added, by any
// process of the service: the deploy asking, `drover approve` / `drover
// abort` from another terminal, a server replica. Their order is etcd's
// create revision. A decision is written in a transaction that holds only
// while the deploy is unfinished.

const kindRequest = "request"

// approval is one stored request or decision.
type approval struct {
	Kind    string    `json:"kind"` // request | approve | abort
	Group   string    `json:"group,omitempty"`
	Gate    string    `json:"gate,omitempty"`
	By      string    `json:"by,omitempty"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
	Until   time.Time `json:"until,omitzero"`
}

// RequestApproval records that a deploy waits for a person at a gate.
func (s *Store) RequestApproval(ctx context.Context, r drover.ApprovalRequest) error {
	if r.Gate == "" {
		return drover.Errorf(drover.EINVALID, "approval request of deploy %s names no gate", r.DeployID)
	}
	if r.At.IsZero() {
		r.At = s.now()
	}
	return s.addApproval(ctx, r.DeployID, false, approval{Kind: kindRequest, Group: r.Group, Gate: r.Gate, At: r.At, Until: r.Until})
}

// Decide records a decision about a deploy.
func (s *Store) Decide(ctx context.Context, d drover.ApprovalDecision) error {
	switch {
	case d.Verdict == drover.VerdictApprove && d.Gate == "":
		return drover.Errorf(drover.EINVALID, "approval of deploy %s names no gate", d.DeployID)
	case d.Verdict != drover.VerdictApprove && d.Verdict != drover.VerdictAbort:
		return drover.Errorf(drover.EINVALID, "decision %q about deploy %s: want %s or %s", d.Verdict, d.DeployID, drover.VerdictApprove, drover.VerdictAbort)
	}
	if d.At.IsZero() {
		d.At = s.now()
	}
	gate := d.Gate
	if d.Verdict == drover.VerdictAbort {
		gate = ""
	}
	return s.addApproval(ctx, d.DeployID, true, approval{Kind: d.Verdict, Gate: gate, By: d.By, Message: d.Message, At: d.At})
}

// addApproval adds a key; a decision is refused for a finished deploy.
func (s *Store) addApproval(ctx context.Context, id string, decision bool, a approval) error {
	r, err := s.lookup(ctx, id)
	if err != nil {
		return err
	}
	val, err := json.Marshal(a)
	if err != nil {
		return &drover.Error{Code: drover.EINTERNAL, Message: "store: encode approval of " + id, Err: err}
	}
	put := clientv3.OpPut(s.approvalsDir(id)+s.unique(), string(val))
	var resp *clientv3.TxnResponse
	err = s.call(ctx, "record approval of "+id, func(ctx context.Context) (err error) {
		txn := s.c.Txn(ctx)
		if decision {
			txn = txn.If(clientv3.Compare(clientv3.CreateRevision(s.unfinishedKey(r)), ">", 0))
		}
		resp, err = txn.Then(put).Commit()
		return err
	})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	d, _, err := s.record(ctx, r)
	if err != nil {
		return err
	}
	return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s); nothing to %s", id, d.Outcome, a.Kind)
}

// approvals reads a deploy's approvals in the order they were written.
func (s *Store) approvals(ctx context.Context, id string) ([]approval, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, "read approvals of "+id, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.approvalsDir(id), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]approval, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var a approval
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			return nil, &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: decode " + string(kv.Key), Err: err}
		}
		out = append(out, a)
	}
	return out, nil
}

// Decision returns the decision that applies to a deploy's gate: an
// abort, whenever it came, else the first approval of gate.
func (s *Store) Decision(ctx context.Context, deployID, gate string) (*drover.ApprovalDecision, error) {
	if _, err := s.lookup(ctx, deployID); err != nil {
		return nil, err
	}
	as, err := s.approvals(ctx, deployID)
	if err != nil {
		return nil, err
	}
	var found *approval
	for i, a := range as {
		if a.Kind == drover.VerdictAbort {
			found = &as[i]
			break
		}
		if found == nil && gate != "" && a.Kind == drover.VerdictApprove && a.Gate == gate {
			found = &as[i]
		}
	}
	if found == nil {
		return nil, nil
	}
	return &drover.ApprovalDecision{DeployID: deployID, Verdict: found.Kind, Gate: found.Gate, By: found.By, At: found.At, Message: found.Message}, nil
}

// Pending lists the undecided gates of unfinished deploys of key, oldest
// first.
func (s *Store) Pending(ctx context.Context, key string) ([]drover.ApprovalRequest, error) {
	ds, err := s.Unfinished(ctx, key)
	if err != nil {
		return nil, err
	}
	out := []drover.ApprovalRequest{}
	for _, d := range ds {
		as, err := s.approvals(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		aborted := false
		approved := map[string]bool{}
		for _, a := range as {
			switch a.Kind {
			case drover.VerdictAbort:
				aborted = true
			case drover.VerdictApprove:
				approved[a.Gate] = true
			}
		}
		if aborted {
			continue
		}
		first := map[string]int{} // gate -> index in out
		for _, a := range as {
			if a.Kind != kindRequest || approved[a.Gate] {
				continue
			}
			if i, ok := first[a.Gate]; ok {
				if a.At.Before(out[i].At) {
					out[i].At, out[i].Until, out[i].Group = a.At, a.Until, a.Group
				}
				continue
			}
			first[a.Gate] = len(out)
			out = append(out, drover.ApprovalRequest{DeployID: d.ID, Key: key, Group: a.Group, Gate: a.Gate, At: a.At, Until: a.Until})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].DeployID < out[j].DeployID
	})
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
