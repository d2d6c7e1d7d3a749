package etcd

import (
	"context"
	"encoding/json"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"drover"
)

// Append journals e as a new key under the deploy's journal and returns
// once etcd committed it (a quorum has it): the runner journals a step
// before running it, and an entry lost in a crash is a host left depooled
// with nothing to tell recovery. The transaction writes only while the
// deploy is unfinished, so a late entry cannot follow its outcome
// (EINVALID). An entry with no time is stamped with s.Now(); Output is cut
// to its last drover.MaxOutputTail bytes.
func (s *Store) Append(ctx context.Context, deployID string, e drover.JournalEntry) error {
	r, err := s.lookup(ctx, deployID)
	if err != nil {
		return err
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.Output = Tail(e.Output, drover.MaxOutputTail)
	val, err := json.Marshal(e)
	if err != nil {
		return &drover.Error{Code: drover.EINTERNAL, Message: "store: encode journal entry of " + deployID, Err: err}
	}
	// Fenced: written only while this process's lease owns the lock, so
	// a deployer that lost it (paused past the TTL, cut off from etcd)
	// journals no step, and the runner starts no step it did not journal.
	fence, l, err := s.fence(ctx, r.k)
	if err != nil {
		return err
	}
	var resp *clientv3.TxnResponse
	err = s.call(ctx, "append to journal of "+deployID, func(ctx context.Context) (err error) {
		resp, err = s.c.Txn(ctx).
			If(append(fence, clientv3.Compare(clientv3.CreateRevision(s.unfinishedKey(r)), ">", 0))...).
			Then(clientv3.OpPut(s.entriesDir(r)+s.unique(), string(val))).
			Else(clientv3.OpGet(s.prefix + "/locks/" + r.k)).
			Commit()
		return err
	})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	if fenceFailed(l, resp.Responses[0].GetResponseRange()) {
		return s.lostError(ctx, l)
	}
	d, _, err := s.record(ctx, r)
	if err != nil {
		return err
	}
	return drover.Errorf(drover.EINVALID, "deploy %s finished (%s); its journal is closed", deployID, d.Outcome)
}

// Journal returns the deploy's entries in the order etcd committed them;
// ENOTFOUND when there is no such deploy. One range read: a reader sees a
// prefix of the journal, never a gap.
func (s *Store) Journal(ctx context.Context, deployID string) ([]drover.JournalEntry, error) {
	r, err := s.lookup(ctx, deployID)
	if err != nil {
		return nil, err
	}
	steps, err := s.steps(ctx, "journal of "+deployID, s.entriesDir(r))
	if err != nil {
		return nil, err
	}
	out := make([]drover.JournalEntry, len(steps))
	for i, st := range steps {
		out[i] = st.JournalEntry
	}
	return out, nil
}

// steps reads the entries under dir in create-revision order.
func (s *Store) steps(ctx context.Context, what, dir string) ([]drover.StepRecord, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, what, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]drover.StepRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var st drover.StepRecord
		if err := json.Unmarshal(kv.Value, &st.JournalEntry); err != nil {
			return nil, &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: decode " + string(kv.Key), Err: err}
		}
		// .../journal/K/ID/R
		rest := string(kv.Key)[len(s.prefix)+len("/journal/"):]
		if _, rest, ok := strings.Cut(rest, "/"); ok {
			st.DeployID, _, _ = strings.Cut(rest, "/")
		}
		out = append(out, st)
	}
	return out, nil
}

// Steps implements drover.HistoryReader: one range read of the key's
// journal (or one deploy's), filtered here.
func (s *Store) Steps(ctx context.Context, q drover.StepQuery) ([]drover.StepRecord, error) {
	if err := checkKey(q.Key); err != nil {
		return nil, err
	}
	dir := s.journalDir(q.Key)
	if q.DeployID != "" {
		if err := checkID(q.DeployID); err != nil {
			return nil, err
		}
		dir += q.DeployID + "/"
	}
	all, err := s.steps(ctx, "steps of "+q.Key, dir)
	if err != nil {
		return nil, err
	}
	out := []drover.StepRecord{}
	for _, st := range all {
		switch {
		case q.Host != "" && st.Host != q.Host,
			q.Step != "" && st.Step != q.Step,
			!q.Since.IsZero() && st.At.Before(q.Since),
			q.Failed && (st.Phase != drover.PhaseDone || st.Outcome == "" || st.Outcome == "ok"):
			continue
		}
		out = append(out, st)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}
