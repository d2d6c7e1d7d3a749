package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"drover"
)

// Begin writes the deploy and its hosts in one transaction. It refuses an
// ID that exists under any key (EINVALID): reusing one would mix two
// deploys' journals, and recovery would replay the wrong steps.
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
	if err := s.init(ctx); err != nil {
		return err
	}
	if d.Started.IsZero() {
		d.Started = s.now()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM deploys WHERE id = ?`, d.ID).Scan(&n); err != nil {
			return internal("begin deploy "+d.ID, err)
		}
		if n > 0 {
			return drover.Errorf(drover.EINVALID, "deploy %s already exists", d.ID)
		}
		overrides := ""
		if len(d.Overrides) > 0 {
			b, err := json.Marshal(d.Overrides)
			if err != nil {
				return internal("begin deploy "+d.ID, err)
			}
			overrides = string(b)
		}
		groups := ""
		if len(d.Groups) > 0 {
			b, err := json.Marshal(d.Groups)
			if err != nil {
				return internal("begin deploy "+d.ID, err)
			}
			groups = string(b)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO deploys
			(id, key, kind, service, env, release, version, revision, user, machine, message, started_ns, overrides, groups)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Key, d.Kind, d.Service, d.Env, d.Release, d.Version, d.Revision, d.User, d.Machine, d.Message, toNS(d.Started), overrides, groups)
		if err != nil {
			return internal("begin deploy "+d.ID, err)
		}
		// Up to 64 hosts per statement: a fleet of thousands would
		// otherwise cost thousands of statements.
		args := make([]any, 0, 64*13)
		for pos := 0; pos < len(d.Hosts); {
			n := min(64, len(d.Hosts)-pos)
			var b strings.Builder
			b.WriteString(`INSERT INTO deploy_hosts
				(deploy_id, pos, host, grp, skipped, before_current, before_previous, before_release, before_version, before_config_hash,
				 before_foreign_link, before_foreign_hash, before_live)
				VALUES `)
			args = args[:0]
			for i, h := range d.Hosts[pos : pos+n] {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
				var f drover.Foreign
				if h.Before.Foreign != nil {
					f = *h.Before.Foreign
				}
				args = append(args, d.ID, pos+i, h.Name, h.Group, h.Skipped, h.Before.Current, h.Before.Previous, h.Before.Release, h.Before.Version, h.Before.ConfigHash,
					f.Link, f.Hash, h.Before.Live)
			}
			if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
				return internal(fmt.Sprintf("begin deploy %s hosts %d-%d", d.ID, pos+1, pos+n), err)
			}
			pos += n
		}
		return nil
	})
}

// Finish records the outcome and the duration; the deploy leaves
// Unfinished and its journal is closed to Append. A second Finish is
// EINVALID: an outcome, once reported, is not rewritten.
func (s *Store) Finish(ctx context.Context, deployID string, r drover.FinishRecord) error {
	if err := checkID(deployID); err != nil {
		return err
	}
	if r.Outcome == "" {
		return drover.Errorf(drover.EINVALID, "finish of deploy %s without an outcome", deployID)
	}
	if err := s.init(ctx); err != nil {
		return err
	}
	if r.Finished.IsZero() {
		// A zero finish time would read as "unfinished" and send the
		// deploy to recovery again.
		r.Finished = s.now()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var finished sql.NullInt64
		var outcome string
		err := tx.QueryRowContext(ctx, `SELECT finished_ns, outcome FROM deploys WHERE id = ?`, deployID).Scan(&finished, &outcome)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(deployID)
		}
		if err != nil {
			return internal("finish deploy "+deployID, err)
		}
		if finished.Valid {
			return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s)", deployID, outcome)
		}
		_, err = tx.ExecContext(ctx, `UPDATE deploys SET finished_ns = ?, duration_ns = ? - started_ns,
			outcome = ?, exit_code = ?, summary = ? WHERE id = ?`,
			toNS(r.Finished), toNS(r.Finished), r.Outcome, r.ExitCode, r.Summary, deployID)
		if err != nil {
			return internal("finish deploy "+deployID, err)
		}
		return nil
	})
}

const deployCols = `id, key, kind, service, env, release, version, revision, user, machine, message,
	started_ns, finished_ns, outcome, exit_code, summary, overrides, groups`

// scanDeploys reads rows of deployCols, then each deploy's hosts.
func (s *Store) scanDeploys(ctx context.Context, query string, args ...any) ([]drover.DeployRecord, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, internal("read deploys", err)
	}
	out := []drover.DeployRecord{}
	for rows.Next() {
		var d drover.DeployRecord
		var started int64
		var finished sql.NullInt64
		var overrides, groups string
		if err := rows.Scan(&d.ID, &d.Key, &d.Kind, &d.Service, &d.Env, &d.Release, &d.Version, &d.Revision,
			&d.User, &d.Machine, &d.Message, &started, &finished, &d.Outcome, &d.ExitCode, &d.Summary, &overrides, &groups); err != nil {
			rows.Close()
			return nil, internal("read deploys", err)
		}
		if overrides != "" {
			if err := json.Unmarshal([]byte(overrides), &d.Overrides); err != nil {
				rows.Close()
				return nil, internal("read overrides of "+d.ID, err)
			}
		}
		if groups != "" {
			if err := json.Unmarshal([]byte(groups), &d.Groups); err != nil {
				rows.Close()
				return nil, internal("read groups of "+d.ID, err)
			}
		}
		d.Started = fromNS(started)
		if finished.Valid {
			d.Finished = fromNS(finished.Int64)
		}
		out = append(out, d)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, internal("read deploys", err)
	}
	// Hosts are read after the deploys' rows are closed: holding a result
	// set open while querying again would need a second connection for
	// every deploy listed.
	for i := range out {
		if out[i].Hosts, err = s.hosts(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) hosts(ctx context.Context, id string) ([]drover.DeployHost, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT host, grp, skipped, before_current, before_previous,
		before_release, before_version, before_config_hash, before_foreign_link, before_foreign_hash, before_live
		FROM deploy_hosts WHERE deploy_id = ? ORDER BY pos`, id)
	if err != nil {
		return nil, internal("read hosts of "+id, err)
	}
	defer rows.Close()
	var out []drover.DeployHost
	for rows.Next() {
		var h drover.DeployHost
		var f drover.Foreign
		if err := rows.Scan(&h.Name, &h.Group, &h.Skipped, &h.Before.Current, &h.Before.Previous,
			&h.Before.Release, &h.Before.Version, &h.Before.ConfigHash, &f.Link, &f.Hash, &h.Before.Live); err != nil {
			return nil, internal("read hosts of "+id, err)
		}
		if f.Link != "" {
			h.Before.Foreign = &f
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("read hosts of "+id, err)
	}
	return out, nil
}

// Deploy returns one deploy record; ENOTFOUND when there is none.
func (s *Store) Deploy(ctx context.Context, deployID string) (drover.DeployRecord, error) {
	if err := checkID(deployID); err != nil {
		return drover.DeployRecord{}, err
	}
	if err := s.init(ctx); err != nil {
		return drover.DeployRecord{}, err
	}
	ds, err := s.scanDeploys(ctx, `SELECT `+deployCols+` FROM deploys WHERE id = ?`, deployID)
	if err != nil {
		return drover.DeployRecord{}, err
	}
	if len(ds) == 0 {
		return drover.DeployRecord{}, notFound(deployID)
	}
	return ds[0], nil
}

// Unfinished lists the deploys of key that began and never finished,
// oldest first: the order to recover them in.
func (s *Store) Unfinished(ctx context.Context, key string) ([]drover.DeployRecord, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	return s.scanDeploys(ctx, `SELECT `+deployCols+` FROM deploys WHERE key = ? AND finished_ns IS NULL ORDER BY started_ns, id`, key)
}

// History lists the deploys of key, finished or not, newest first by start
// time; limit <= 0 means all.
func (s *Store) History(ctx context.Context, key string, limit int) ([]drover.DeployRecord, error) {
	return s.Deploys(ctx, drover.DeployQuery{Key: key, Limit: limit})
}

// Deploys implements drover.HistoryReader.
func (s *Store) Deploys(ctx context.Context, q drover.DeployQuery) ([]drover.DeployRecord, error) {
	if err := checkKey(q.Key); err != nil {
		return nil, err
	}
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	where := []string{"key = ?"}
	args := []any{q.Key}
	if q.Host != "" {
		where = append(where, "id IN (SELECT deploy_id FROM deploy_hosts WHERE host = ?)")
		args = append(args, q.Host)
	}
	if !q.Since.IsZero() {
		where = append(where, "started_ns >= ?")
		args = append(args, toNS(q.Since))
	}
	query := `SELECT ` + deployCols + ` FROM deploys WHERE ` + strings.Join(where, " AND ") + ` ORDER BY started_ns DESC, id DESC`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	return s.scanDeploys(ctx, query, args...)
}
