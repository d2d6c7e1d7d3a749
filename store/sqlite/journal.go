package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"drover"
)

// Append journals e as one row and returns once it is committed, which with
// synchronous=FULL means on disk: the runner journals a step before running
// it, and an entry lost in a crash is a host left depooled with nothing to
// tell recovery. An entry with no time is stamped with s.Now(). Output is
// cut to its last drover.MaxOutputTail bytes.
//
// Appending to a finished deploy is EINVALID: its outcome is already
// reported, and a late entry would contradict it.
func (s *Store) Append(ctx context.Context, deployID string, e drover.JournalEntry) error {
	if err := checkID(deployID); err != nil {
		return err
	}
	if err := s.init(ctx); err != nil {
		return err
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.Output = Tail(e.Output, drover.MaxOutputTail)
	// One statement checks and inserts: the deploy cannot finish between
	// the check and the insert.
	analysis, err := analysisJSON(e)
	if err != nil {
		return internal("append to journal of "+deployID, err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO steps
		(deploy_id, at_ns, host, step, phase, outcome, reason, slot, output, elapsed_ns, restoring, analysis)
		SELECT id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM deploys WHERE id = ? AND finished_ns IS NULL`,
		toNS(e.At), e.Host, e.Step, e.Phase, e.Outcome, e.Reason, e.Slot, e.Output, int64(e.Elapsed), e.Restoring, analysis, deployID)
	if err != nil {
		return internal("append to journal of "+deployID, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var outcome string
	err = s.db.QueryRowContext(ctx, `SELECT outcome FROM deploys WHERE id = ?`, deployID).Scan(&outcome)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(deployID)
	}
	if err != nil {
		return internal("append to journal of "+deployID, err)
	}
	return drover.Errorf(drover.EINVALID, "deploy %s finished (%s); its journal is closed", deployID, outcome)
}

// AppendBatch journals es, in order, in one transaction: one commit and
// one fsync for all of them, which is what lets a runner that finishes a
// hundred steps at once journal them in the time of one. It returns once
// every entry is on disk, as Append does; the entries are all written or,
// on an error, none is. Each entry is checked as Append checks it: a
// finished or unknown deploy fails the whole batch.
func (s *Store) AppendBatch(ctx context.Context, deployID string, es []drover.JournalEntry) error {
	if len(es) == 0 {
		return nil
	}
	if len(es) == 1 {
		return s.Append(ctx, deployID, es[0])
	}
	if err := checkID(deployID); err != nil {
		return err
	}
	if err := s.init(ctx); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var finished sql.NullInt64
		var outcome string
		err := tx.QueryRowContext(ctx, `SELECT finished_ns, outcome FROM deploys WHERE id = ?`, deployID).Scan(&finished, &outcome)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(deployID)
		}
		if err != nil {
			return internal("append to journal of "+deployID, err)
		}
		if finished.Valid {
			return drover.Errorf(drover.EINVALID, "deploy %s finished (%s); its journal is closed", deployID, outcome)
		}
		// Many rows per statement, prepared once per size: a statement
		// costs the driver more than a row does, and parsing one more
		// than running it. Sizes are powers of two up to 64, so any
		// batch is a few statements.
		args := make([]any, 0, maxBatchRows*12)
		for len(es) > 0 {
			n := maxBatchRows
			for n > len(es) {
				n /= 2
			}
			stmt, err := s.insertStmt(ctx, n)
			if err != nil {
				return err
			}
			args = args[:0]
			for _, e := range es[:n] {
				if e.At.IsZero() {
					e.At = s.now()
				}
				analysis, err := analysisJSON(e)
				if err != nil {
					return internal("append to journal of "+deployID, err)
				}
				args = append(args, deployID, toNS(e.At), e.Host, e.Step, e.Phase, e.Outcome, e.Reason, e.Slot,
					Tail(e.Output, drover.MaxOutputTail), int64(e.Elapsed), e.Restoring, analysis)
			}
			if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
				return internal("append to journal of "+deployID, err)
			}
			es = es[n:]
		}
		return nil
	})
}

// maxBatchRows is the most rows one INSERT of AppendBatch carries.
const maxBatchRows = 64

// insertStmt returns the prepared INSERT of n journal rows.
func (s *Store) insertStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st := s.inserts[n]; st != nil {
		return st, nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO steps (deploy_id, at_ns, host, step, phase, outcome, reason, slot, output, elapsed_ns, restoring, analysis) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?,?,?,?,?,?,?,?,?,?,?,?)`)
	}
	st, err := s.db.PrepareContext(ctx, b.String())
	if err != nil {
		return nil, internal("prepare journal insert", err)
	}
	if s.inserts == nil {
		s.inserts = map[int]*sql.Stmt{}
	}
	s.inserts[n] = st
	return st, nil
}

// Tail returns the last n bytes of s, starting at a UTF-8 boundary.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for i := 0; i < len(s) && i < 4; i++ {
		if s[i]&0xc0 != 0x80 {
			return s[i:]
		}
	}
	return s
}

// Journal returns the deploy's entries in order; ENOTFOUND when there is
// no such deploy.
func (s *Store) Journal(ctx context.Context, deployID string) ([]drover.JournalEntry, error) {
	if err := checkID(deployID); err != nil {
		return nil, err
	}
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM deploys WHERE id = ?`, deployID).Scan(&n); err != nil {
		return nil, internal("read journal of "+deployID, err)
	}
	if n == 0 {
		return nil, notFound(deployID)
	}
	steps, err := s.steps(ctx, `SELECT `+stepCols+` FROM steps s WHERE s.deploy_id = ? ORDER BY s.seq`, deployID)
	if err != nil {
		return nil, err
	}
	out := make([]drover.JournalEntry, len(steps))
	for i, st := range steps {
		out[i] = st.JournalEntry
	}
	return out, nil
}

const stepCols = `s.deploy_id, s.at_ns, s.host, s.step, s.phase, s.outcome, s.reason, s.slot, s.output, s.elapsed_ns, s.restoring, s.analysis`

// analysisJSON is the analysis column of e: its evaluation as JSON, or
// empty.
func analysisJSON(e drover.JournalEntry) (string, error) {
	if e.Analysis == nil {
		return "", nil
	}
	b, err := json.Marshal(e.Analysis)
	return string(b), err
}

func (s *Store) steps(ctx context.Context, query string, args ...any) ([]drover.StepRecord, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, internal("read steps", err)
	}
	defer rows.Close()
	out := []drover.StepRecord{}
	for rows.Next() {
		var st drover.StepRecord
		var at, elapsed int64
		var analysis string
		if err := rows.Scan(&st.DeployID, &at, &st.Host, &st.Step, &st.Phase, &st.Outcome, &st.Reason, &st.Slot, &st.Output, &elapsed, &st.Restoring, &analysis); err != nil {
			return nil, internal("read steps", err)
		}
		if analysis != "" {
			st.Analysis = new(drover.AnalysisEval)
			if err := json.Unmarshal([]byte(analysis), st.Analysis); err != nil {
				return nil, internal("read the analysis of a step of "+st.DeployID, err)
			}
		}
		st.At, st.Elapsed = fromNS(at), durationNS(elapsed)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("read steps", err)
	}
	return out, nil
}

// Steps implements drover.HistoryReader.
func (s *Store) Steps(ctx context.Context, q drover.StepQuery) ([]drover.StepRecord, error) {
	if err := checkKey(q.Key); err != nil {
		return nil, err
	}
	if q.DeployID != "" {
		if err := checkID(q.DeployID); err != nil {
			return nil, err
		}
	}
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	where := []string{"d.key = ?"}
	args := []any{q.Key}
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if q.DeployID != "" {
		add("s.deploy_id = ?", q.DeployID)
	}
	if q.Host != "" {
		add("s.host = ?", q.Host)
	}
	if q.Step != "" {
		add("s.step = ?", q.Step)
	}
	if !q.Since.IsZero() {
		add("s.at_ns >= ?", toNS(q.Since))
	}
	if q.Failed {
		where = append(where, "s.phase = 'done' AND s.outcome NOT IN ('', 'ok')")
	}
	query := `SELECT ` + stepCols + ` FROM steps s JOIN deploys d ON d.id = s.deploy_id WHERE ` + strings.Join(where, " AND ") + ` ORDER BY s.seq DESC`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	out, err := s.steps(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	// Newest were taken (for the limit); hand them back oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
