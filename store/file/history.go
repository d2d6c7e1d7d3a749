package file

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	"drover"
)

var _ drover.HistoryReader = (*Store)(nil)

// Deploys implements drover.HistoryReader by reading every record of the
// key: there are no indexes, which is fine for the history one machine
// accumulates (store/sqlite answers the same questions from indexes).
func (s *Store) Deploys(ctx context.Context, q drover.DeployQuery) ([]drover.DeployRecord, error) {
	all, err := s.History(ctx, q.Key, 0)
	if err != nil {
		return nil, err
	}
	out := []drover.DeployRecord{}
	for _, d := range all {
		if !q.Since.IsZero() && d.Started.Before(q.Since) {
			continue
		}
		if q.Host != "" && !slices.ContainsFunc(d.Hosts, func(h drover.DeployHost) bool { return h.Name == q.Host }) {
			continue
		}
		out = append(out, d)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// Steps implements drover.HistoryReader by reading the journals of the
// key's deploys (or of q.DeployID alone) in the order the deploys started.
func (s *Store) Steps(ctx context.Context, q drover.StepQuery) ([]drover.StepRecord, error) {
	if _, err := s.keyDir(q.Key); err != nil {
		return nil, err
	}
	var recs []drover.DeployRecord
	if q.DeployID != "" {
		d, err := s.Deploy(ctx, q.DeployID)
		if err != nil {
			return nil, err
		}
		if d.Key != q.Key {
			return []drover.StepRecord{}, nil
		}
		recs = []drover.DeployRecord{d}
	} else {
		all, err := s.History(ctx, q.Key, 0)
		if err != nil {
			return nil, err
		}
		recs = all
	}
	// History is newest first; steps are wanted in the order they ran.
	slices.SortStableFunc(recs, func(a, b drover.DeployRecord) int { return a.Started.Compare(b.Started) })
	out := []drover.StepRecord{}
	for _, d := range recs {
		j, err := s.Journal(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		for _, e := range j {
			switch {
			case q.Host != "" && e.Host != q.Host,
				q.Step != "" && e.Step != q.Step,
				!q.Since.IsZero() && e.At.Before(q.Since),
				q.Failed && (e.Phase != drover.PhaseDone || e.Outcome == "" || e.Outcome == "ok"):
				continue
			}
			out = append(out, drover.StepRecord{DeployID: d.ID, JournalEntry: e})
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// LockHolder implements drover.HistoryReader: the holder the lock file
// names. Release clears it, so a name left there is a live holder or one
// that died holding the lock; the caller tells them apart by the process
// table (see Lock).
func (s *Store) LockHolder(ctx context.Context, key string) (*drover.LockOwner, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kd, err := s.keyDir(key)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(kd, "lock")
	f, err := os.Open(path)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("open "+path, err)
	}
	defer f.Close()
	o, err := readOwner(f)
	if err != nil {
		return nil, internal("read "+path, err)
	}
	return o, nil
}
