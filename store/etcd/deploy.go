package etcd

import (
	"context"
	"encoding/json"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"drover"
)

// Begin writes the deploy's record under history/ and unfinished/ and its
// pointer under deploys/, in one transaction that refuses an ID that
// exists under any key (EINVALID): reusing one would mix two deploys'
// journals, and recovery would replay the wrong steps.
func (s *Store) Begin(ctx context.Context, d drover.DeployRecord) error {
	if err := checkID(d.ID); err != nil {
		return err
	}
	if err := checkKey(d.Key); err != nil {
		return err
	}
	if !d.Finished.IsZero() || d.Outcome != "" {
		return drover.Errorf(drover.EINVALID, "deploy %s: begin of a record that already has an outcome", d.ID)
	}
	if d.Started.IsZero() {
		d.Started = s.now()
	}
	val, err := json.Marshal(d)
	if err != nil {
		return &drover.Error{Code: drover.EINTERNAL, Message: "store: encode deploy " + d.ID, Err: err}
	}
	r := ref{k: esc(d.Key), name: recordName(d.Started, d.ID), id: d.ID}
	dk := s.deployKey(d.ID)
	fence, l, err := s.fence(ctx, r.k)
	if err != nil {
		return err
	}
	var resp *clientv3.TxnResponse
	err = s.call(ctx, "begin deploy "+d.ID, func(ctx context.Context) (err error) {
		resp, err = s.c.Txn(ctx).
			If(append(fence, clientv3.Compare(clientv3.CreateRevision(dk), "=", 0))...).
			Then(clientv3.OpPut(dk, r.String()), clientv3.OpPut(s.historyKey(r), string(val)), clientv3.OpPut(s.unfinishedKey(r), string(val))).
			Else(clientv3.OpGet(s.prefix + "/locks/" + r.k)).
			Commit()
		return err
	})
	if err != nil {
		return err
	}
	if !resp.Succeeded && fenceFailed(l, resp.Responses[0].GetResponseRange()) {
		return s.lostError(ctx, l)
	}
	if !resp.Succeeded {
		return drover.Errorf(drover.EINVALID, "deploy %s already exists", d.ID)
	}
	s.remember(r)
	return nil
}

// Finish rewrites the record with its outcome and deletes it from
// unfinished/, which closes the journal to Append, in one transaction
// that holds only if the record did not change since it was read. A second
// Finish is EINVALID: an outcome, once reported, is not rewritten.
func (s *Store) Finish(ctx context.Context, deployID string, fr drover.FinishRecord) error {
	if err := checkID(deployID); err != nil {
		return err
	}
	if fr.Outcome == "" {
		return drover.Errorf(drover.EINVALID, "finish of deploy %s without an outcome", deployID)
	}
	if fr.Finished.IsZero() {
		// A zero finish time would read as "unfinished" and send the
		// deploy to recovery again.
		fr.Finished = s.now()
	}
	r, err := s.lookup(ctx, deployID)
	if err != nil {
		return err
	}
	hk := s.historyKey(r)
	// Fenced like Append: a deployer that lost its lock must not record
	// an outcome over the recovery the new holder is running.
	fence, l, err := s.fence(ctx, r.k)
	if err != nil {
		return err
	}
	// Nothing but Finish rewrites a record, so one retry covers a
	// concurrent Finish; the loop is bounded all the same.
	for attempt := 0; attempt < 5; attempt++ {
		d, rev, err := s.record(ctx, r)
		if err != nil {
			return err
		}
		if !d.Finished.IsZero() {
			return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s)", deployID, d.Outcome)
		}
		d.Finished, d.Outcome, d.ExitCode, d.Summary = fr.Finished, fr.Outcome, fr.ExitCode, fr.Summary
		val, err := json.Marshal(d)
		if err != nil {
			return &drover.Error{Code: drover.EINTERNAL, Message: "store: encode deploy " + deployID, Err: err}
		}
		var resp *clientv3.TxnResponse
		err = s.call(ctx, "finish deploy "+deployID, func(ctx context.Context) (err error) {
			resp, err = s.c.Txn(ctx).
				If(append(fence, clientv3.Compare(clientv3.ModRevision(hk), "=", rev))...).
				Then(clientv3.OpPut(hk, string(val)), clientv3.OpDelete(s.unfinishedKey(r))).
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
	}
	return drover.Errorf(drover.EINTERNAL, "store: etcd: finish deploy %s: the record kept changing", deployID)
}

// record reads a deploy's record and the revision it was last written at.
func (s *Store) record(ctx context.Context, r ref) (drover.DeployRecord, int64, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, "read deploy "+r.id, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.historyKey(r))
		return err
	})
	if err != nil {
		return drover.DeployRecord{}, 0, err
	}
	if len(resp.Kvs) == 0 {
		return drover.DeployRecord{}, 0, &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: " + s.deployKey(r.id) + " points at " + s.historyKey(r) + ", which is missing"}
	}
	var d drover.DeployRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &d); err != nil {
		return drover.DeployRecord{}, 0, &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: decode " + s.historyKey(r), Err: err}
	}
	return d, resp.Kvs[0].ModRevision, nil
}

// Deploy returns one deploy record; ENOTFOUND when there is none.
func (s *Store) Deploy(ctx context.Context, deployID string) (drover.DeployRecord, error) {
	r, err := s.lookup(ctx, deployID)
	if err != nil {
		return drover.DeployRecord{}, err
	}
	d, _, err := s.record(ctx, r)
	if err != nil {
		return d, err
	}
	return s.relabel(ctx, d), nil
}

// relabel applies drover.RelabelHalted to a record written before the
// halted outcome existed (outcome.go); a journal that cannot be read
// leaves the record as written.
func (s *Store) relabel(ctx context.Context, d drover.DeployRecord) drover.DeployRecord {
	if !drover.MayBeLegacyHalted(d) {
		return d
	}
	j, err := s.Journal(ctx, d.ID)
	if err != nil {
		return d
	}
	return drover.RelabelHalted(d, j)
}

// Unfinished lists the deploys of key that began and never finished,
// oldest first: the order to recover them in.
func (s *Store) Unfinished(ctx context.Context, key string) ([]drover.DeployRecord, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.records(ctx, "unfinished deploys of "+key, s.unfinishedDir(key), "", false, 0, nil)
}

// History lists the deploys of key, finished or not, newest first by start
// time; limit <= 0 means all.
func (s *Store) History(ctx context.Context, key string, limit int) ([]drover.DeployRecord, error) {
	return s.Deploys(ctx, drover.DeployQuery{Key: key, Limit: limit})
}

// Deploys implements drover.HistoryReader. Record names sort by start
// time, then ID, so one range read answers it; the host filter is applied
// to what the range returns.
func (s *Store) Deploys(ctx context.Context, q drover.DeployQuery) ([]drover.DeployRecord, error) {
	if err := checkKey(q.Key); err != nil {
		return nil, err
	}
	from := ""
	if !q.Since.IsZero() {
		from = timeKey(q.Since)
	}
	var keep func(drover.DeployRecord) bool
	if q.Host != "" {
		keep = func(d drover.DeployRecord) bool {
			for _, h := range d.Hosts {
				if h.Name == q.Host {
					return true
				}
			}
			return false
		}
	}
	return s.records(ctx, "history of "+q.Key, s.historyDir(q.Key), from, true, q.Limit, keep)
}

// records reads the records under dir (from the name from on), in name
// order or reversed, keeping at most limit (<= 0: all) that keep accepts.
func (s *Store) records(ctx context.Context, what, dir, from string, newestFirst bool, limit int, keep func(drover.DeployRecord) bool) ([]drover.DeployRecord, error) {
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(dir))}
	if newestFirst {
		opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	} else {
		opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	}
	if limit > 0 && keep == nil {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	var resp *clientv3.GetResponse
	err := s.call(ctx, what, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, dir+from, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := []drover.DeployRecord{}
	for _, kv := range resp.Kvs {
		var d drover.DeployRecord
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			return nil, &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: decode " + string(kv.Key), Err: err}
		}
		if keep != nil && !keep(d) {
			continue
		}
		s.remember(ref{k: esc(d.Key), name: strings.TrimPrefix(string(kv.Key), dir), id: d.ID})
		out = append(out, s.relabel(ctx, d))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}
