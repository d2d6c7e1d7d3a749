package sqlite

import (
	"context"
	"database/sql"
	"time"

	"drover"
)

var _ drover.Approvals = (*Store)(nil)

// Approvals are rows of the approvals table (migrations/0002), only ever
// added, by any process of the service: the deploy asking, and `drover
// approve` / `drover abort` from another terminal. SQLite's write lock
// serialises writers across processes; the deploy polls with reads, which
// WAL lets run beside any writer.

const kindRequest = "request"

// RequestApproval records that a deploy waits for a person at a gate.
func (s *Store) RequestApproval(ctx context.Context, r drover.ApprovalRequest) error {
	if r.Gate == "" {
		return drover.Errorf(drover.EINVALID, "approval request of deploy %s names no gate", r.DeployID)
	}
	if r.At.IsZero() {
		r.At = s.now()
	}
	return s.addApproval(ctx, r.DeployID, false, kindRequest, r.Group, r.Gate, "", "", r.At, r.Until)
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
	return s.addApproval(ctx, d.DeployID, true, d.Verdict, "", gate, d.By, d.Message, d.At, time.Time{})
}

// addApproval appends a row; a decision is refused for a finished deploy.
func (s *Store) addApproval(ctx context.Context, id string, decision bool, kind, grp, gate, by, msg string, at, until time.Time) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := s.init(ctx); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var finished sql.NullInt64
		var outcome string
		err := tx.QueryRowContext(ctx, `SELECT finished_ns, outcome FROM deploys WHERE id = ?`, id).Scan(&finished, &outcome)
		if err == sql.ErrNoRows {
			return notFound(id)
		}
		if err != nil {
			return internal("approvals of "+id, err)
		}
		if decision && finished.Valid {
			return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s); nothing to %s", id, outcome, kind)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO approvals (deploy_id, kind, grp, gate, decided_by, message, at_ns, until_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, kind, grp, gate, by, msg, toNS(at), toNS(until))
		if err != nil {
			return internal("record approval of "+id, err)
		}
		return nil
	})
}

// Decision returns the decision that applies to a deploy's gate: an
// abort, whenever it came, else the first approval of gate.
func (s *Store) Decision(ctx context.Context, deployID, gate string) (*drover.ApprovalDecision, error) {
	if _, err := s.Deploy(ctx, deployID); err != nil {
		return nil, err
	}
	row := s.db.QueryRowContext(ctx, `SELECT kind, gate, decided_by, message, at_ns FROM approvals
		WHERE deploy_id = ? AND (kind = 'abort' OR (kind = 'approve' AND gate = ? AND ? <> ''))
		ORDER BY kind = 'abort' DESC, seq LIMIT 1`, deployID, gate, gate)
	var d drover.ApprovalDecision
	var at int64
	err := row.Scan(&d.Verdict, &d.Gate, &d.By, &d.Message, &at)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, internal("read approvals of "+deployID, err)
	}
	d.DeployID, d.At = deployID, fromNS(at)
	return &d, nil
}

// Pending lists the undecided gates of unfinished deploys of key, oldest
// first.
func (s *Store) Pending(ctx context.Context, key string) ([]drover.ApprovalRequest, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT r.deploy_id, r.grp, r.gate, min(r.at_ns), r.until_ns
		FROM approvals r JOIN deploys d ON d.id = r.deploy_id
		WHERE d.key = ? AND d.finished_ns IS NULL AND r.kind = 'request'
		  AND NOT EXISTS (SELECT 1 FROM approvals x WHERE x.deploy_id = r.deploy_id
		                  AND (x.kind = 'abort' OR (x.kind = 'approve' AND x.gate = r.gate)))
		GROUP BY r.deploy_id, r.gate
		ORDER BY min(r.at_ns), r.deploy_id`, key)
	if err != nil {
		return nil, internal("pending approvals of "+key, err)
	}
	defer rows.Close()
	var out []drover.ApprovalRequest
	for rows.Next() {
		r := drover.ApprovalRequest{Key: key}
		var at, until int64
		if err := rows.Scan(&r.DeployID, &r.Group, &r.Gate, &at, &until); err != nil {
			return nil, internal("pending approvals of "+key, err)
		}
		r.At, r.Until = fromNS(at), fromNS(until)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("pending approvals of "+key, err)
	}
	return out, nil
}
