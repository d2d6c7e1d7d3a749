package main

import (
	"strings"
	"testing"
	"time"

	"drover"
)

// TestHistoryTableOneLinePerRow: messages and summaries with newlines,
// tabs, carriage returns and terminal escapes (a validate error quoted in a
// summary) stay in their cells: one line per deploy, columns aligned,
// long text elided.
func TestHistoryTableOneLinePerRow(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.Local)
	rows := []historyRow{
		{DeployRecord: drover.DeployRecord{ID: "d-1", Kind: "deploy", Version: "2.0.0", User: "ann", Machine: "m1", Started: at,
			Finished: at.Add(3 * time.Second), Message: "fix\nthe\tthing\r\x1b[2J",
			Summary: "halted: h01: validate failed:\nnginx: [emerg] unknown directive \"foo\" in /etc/nginx.conf:3\nnginx: configuration file test failed\n" + strings.Repeat("x", 200)},
			Status: "rolled_back"},
		{DeployRecord: drover.DeployRecord{ID: "d-2", Kind: "rollback", Version: "1.0.0", User: "bob", Machine: "m2", Started: at.Add(time.Minute),
			Finished: at.Add(time.Minute + time.Second), Summary: "ok"}, Status: "succeeded"},
	}
	var b strings.Builder
	if err := printHistory(&b, rows); err != nil {
		t.Fatal(err)
	}
	golden(t, "history_table", b.String())
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got %d lines:\n%s", len(lines), b.String())
	}
	col := strings.Index(lines[0], "SUMMARY")
	for _, l := range lines[1:] {
		if strings.ContainsAny(l, "\t\r\x1b") || len([]rune(l)) < col {
			t.Errorf("row breaks the table: %q", l)
		}
	}
}
