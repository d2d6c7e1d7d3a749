package file

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"drover"
)

const (
	recordExt  = ".json"
	journalExt = ".journal"
)

// Begin writes the deploy record and an empty journal. It refuses an ID
// that exists under any key (EINVALID): reusing one would mix two deploys'
// journals, and recovery would replay the wrong steps.
func (s *Store) Begin(ctx context.Context, d drover.DeployRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(d.ID); err != nil {
		return err
	}
	kd, err := s.keyDir(d.Key)
	if err != nil {
		return err
	}
	if !d.Finished.IsZero() || d.Outcome != "" {
		return drover.Errorf(drover.EINVALID, "deploy %s: begin of a record that already has an outcome", d.ID)
	}
	if d.Started.IsZero() {
		d.Started = s.now()
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return internal("encode deploy "+d.ID, err)
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.deploysDir(d.ID); err == nil {
		return drover.Errorf(drover.EINVALID, "deploy %s already exists", d.ID)
	} else if drover.ErrorCode(err) != drover.ENOTFOUND {
		return err
	}
	dd := filepath.Join(kd, "deploys")
	if err := mkdirDurable(dd, s.dir); err != nil {
		return internal("create "+dd, err)
	}
	// The exclusive write claims the ID even against another process
	// beginning the same ID under the same key at the same moment.
	if err := writeAtomic(dd, d.ID+recordExt, data, true); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return drover.Errorf(drover.EINVALID, "deploy %s already exists", d.ID)
		}
		return internal("write deploy "+d.ID, err)
	}
	// The journal exists from the start, so Append never has to create it
	// (and its directory entry is made durable here, once).
	j, err := os.OpenFile(filepath.Join(dd, d.ID+journalExt), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return internal("create journal of "+d.ID, err)
	}
	err = j.Sync()
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dd)
	}
	if err != nil {
		return internal("create journal of "+d.ID, err)
	}
	s.remember(d.ID, dd)
	return nil
}

// Finish records the outcome and rewrites the record atomically; the
// deploy leaves Unfinished and its journal is closed to Append. A second
// Finish is EINVALID: an outcome, once reported, is not rewritten.
func (s *Store) Finish(ctx context.Context, deployID string, r drover.FinishRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.Outcome == "" {
		return drover.Errorf(drover.EINVALID, "finish of deploy %s without an outcome", deployID)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	dd, err := s.deploysDir(deployID)
	if err != nil {
		return err
	}
	d, err := readRecord(dd, deployID)
	if err != nil {
		return err
	}
	if !d.Finished.IsZero() {
		return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s)", deployID, d.Outcome)
	}
	d.Finished = r.Finished
	if d.Finished.IsZero() {
		// A zero finish time would read as "unfinished" and send the
		// deploy to recovery again.
		d.Finished = s.now()
	}
	d.Outcome, d.ExitCode, d.Summary = r.Outcome, r.ExitCode, r.Summary
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return internal("encode deploy "+deployID, err)
	}
	if err := writeAtomic(dd, deployID+recordExt, data, false); err != nil {
		return internal("write deploy "+deployID, err)
	}
	return nil
}

// Deploy returns one deploy record; ENOTFOUND when there is none.
func (s *Store) Deploy(ctx context.Context, deployID string) (drover.DeployRecord, error) {
	if err := ctx.Err(); err != nil {
		return drover.DeployRecord{}, err
	}
	dd, err := s.deploysDir(deployID)
	if err != nil {
		return drover.DeployRecord{}, err
	}
	return readRecord(dd, deployID)
}

// Unfinished lists the deploys of key that began and never finished,
// oldest first: the order to recover them in.
func (s *Store) Unfinished(ctx context.Context, key string) ([]drover.DeployRecord, error) {
	all, err := s.records(ctx, key)
	if err != nil {
		return nil, err
	}
	open := all[:0]
	for _, d := range all {
		if d.Finished.IsZero() {
			open = append(open, d)
		}
	}
	slices.SortFunc(open, func(a, b drover.DeployRecord) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID))
	})
	return open, nil
}

// History lists the deploys of key, finished or not, newest first by
// start time; limit <= 0 means all.
func (s *Store) History(ctx context.Context, key string, limit int) ([]drover.DeployRecord, error) {
	all, err := s.records(ctx, key)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b drover.DeployRecord) int {
		return cmp.Or(b.Started.Compare(a.Started), cmp.Compare(b.ID, a.ID))
	})
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// records reads every deploy record of key, in no particular order.
func (s *Store) records(ctx context.Context, key string) ([]drover.DeployRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kd, err := s.keyDir(key)
	if err != nil {
		return nil, err
	}
	dd := filepath.Join(kd, "deploys")
	entries, err := os.ReadDir(dd)
	if isNotExist(err) {
		return []drover.DeployRecord{}, nil
	}
	if err != nil {
		return nil, internal("list deploys of "+key, err)
	}
	out := []drover.DeployRecord{}
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, recordExt)
		if !ok || checkID(id) != nil || !e.Type().IsRegular() {
			continue // temp files of an interrupted write, or not ours
		}
		d, err := readRecord(dd, id)
		if drover.ErrorCode(err) == drover.ENOTFOUND {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		s.remember(id, dd)
		out = append(out, d)
	}
	return out, nil
}

// readRecord reads dd/<id>.json.
func readRecord(dd, id string) (drover.DeployRecord, error) {
	path := filepath.Join(dd, id+recordExt)
	data, err := os.ReadFile(path)
	if isNotExist(err) {
		return drover.DeployRecord{}, notFound(id)
	}
	if err != nil {
		return drover.DeployRecord{}, internal("read deploy "+id, err)
	}
	var d drover.DeployRecord
	if err := json.Unmarshal(data, &d); err != nil {
		return drover.DeployRecord{}, (&drover.Error{Code: drover.EINTERNAL, Where: path, Message: "deploy record is corrupt", Err: err}).
			WithHint("records are replaced atomically, so this file was damaged outside drover; inspect it and restore it from a backup")
	}
	if drover.MayBeLegacyHalted(d) {
		// Written before the halted outcome existed (outcome.go). A
		// journal that cannot be read leaves the record as written.
		jpath := filepath.Join(dd, id+journalExt)
		if data, err := os.ReadFile(jpath); err == nil {
			if j, err := parseJournal(jpath, data); err == nil {
				d = drover.RelabelHalted(d, j)
			}
		}
	}
	return d, nil
}

func notFound(id string) error {
	return drover.Errorf(drover.ENOTFOUND, "no deploy %s", id).WithHint("see `drover history` for deploy ids")
}

// deploysDir returns the deploys directory that holds deployID: the ID
// alone does not name its key, so the key directories are searched once
// and the answer remembered.
func (s *Store) deploysDir(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	s.idsMu.Lock()
	dd, ok := s.ids[id]
	s.idsMu.Unlock()
	if ok {
		if _, err := os.Stat(filepath.Join(dd, id+recordExt)); err == nil {
			return dd, nil
		}
	}
	keys, err := os.ReadDir(s.dir)
	if err != nil {
		return "", internal("list "+s.dir, err)
	}
	for _, k := range keys {
		if !k.IsDir() {
			continue
		}
		dd := filepath.Join(s.dir, k.Name(), "deploys")
		if _, err := os.Stat(filepath.Join(dd, id+recordExt)); err == nil {
			s.remember(id, dd)
			return dd, nil
		}
	}
	return "", notFound(id)
}

func (s *Store) remember(id, dd string) {
	s.idsMu.Lock()
	s.ids[id] = dd
	s.idsMu.Unlock()
}
