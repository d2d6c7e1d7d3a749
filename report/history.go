package report

import "drover"

// HistoryRow is a deploy as `history --json` prints it: the record with
// its status and duration.
type HistoryRow struct {
	drover.DeployRecord
	Status   string  `json:"status"`
	Duration float64 `json:"duration_s,omitempty"`
}

// History makes the rows of recs, holder and holderErr being what the
// store said of the lock's holder (see DeployStatus).
func History(recs []drover.DeployRecord, holder *drover.LockOwner, holderErr error) []HistoryRow {
	rows := make([]HistoryRow, 0, len(recs))
	for _, r := range recs {
		row := HistoryRow{DeployRecord: r, Status: DeployStatus(r, holder, holderErr)}
		if !r.Finished.IsZero() {
			row.Duration = r.Finished.Sub(r.Started).Seconds()
		}
		rows = append(rows, row)
	}
	return rows
}

// KindLabel is the KIND column of history: a deploy that skipped checks,
// analyses or gates is marked "deploy!" so that it stands out in a list
// where a plain "deploy" would hide that nothing checked it.
func KindLabel(d drover.DeployRecord) string {
	if len(d.Overrides) > 0 {
		return d.Kind + "!"
	}
	return d.Kind
}
