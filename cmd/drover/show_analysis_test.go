package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"drover"
)

// drover show's evaluations table: every evaluation in journal order, the
// verdict's and the halting one marked, other steps left out.
func TestPrintAnalyses(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	max := 0.05
	ev := func(sec int, status string, verdict, halted bool, msg string) drover.JournalEntry {
		return drover.JournalEntry{At: at.Add(time.Duration(sec) * time.Second), Step: drover.StepAnalysis, Phase: "done",
			Analysis: &drover.AnalysisEval{At: at.Add(time.Duration(sec) * time.Second), Name: "error-ratio", Group: "canary", Kind: drover.AnalysisThreshold,
				Status: status, Verdict: verdict, Halted: halted, Message: msg, Max: &max}}
	}
	j := []drover.JournalEntry{
		{At: at, Host: "h01", Step: "check", Phase: "done", Outcome: "ok"},
		ev(1, drover.AnalysisNoData, false, false, "no data for h01"),
		ev(2, drover.AnalysisPass, false, false, "h01=0.01 within max 0.05"),
		ev(3, drover.AnalysisFail, true, true, "h01=0.21 above max 0.05\nsecond line"),
	}
	var b bytes.Buffer
	printAnalyses(&b, analysisEvals(j))
	out := b.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "canary analysis: 3 evaluations") {
		t.Fatalf("want a title, a header and 3 rows:\n%s", out)
	}
	for i, want := range []string{"NO_DATA", "pass", "FAIL"} {
		if !strings.Contains(lines[2+i], want) || !strings.Contains(lines[2+i], "error-ratio") || !strings.Contains(lines[2+i], "canary") {
			t.Errorf("row %d %q lacks %s", i, lines[2+i], want)
		}
	}
	if !strings.Contains(lines[4], "verdict, HALTED the deploy") || strings.Contains(lines[3], "HALTED") {
		t.Errorf("the halting row is not the only one marked:\n%s", out)
	}
	if strings.Contains(out, "\nsecond line") || !strings.Contains(lines[4], "second line") {
		t.Errorf("a message's newline broke the table:\n%s", out)
	}
	// The per-host timeline leaves them out: no host "" with steps
	// "analysis".
	d := drover.DeployRecord{Hosts: []drover.DeployHost{{Name: "h01", Group: "canary"}}}
	if hs := timeline(d, j, "rolled_back"); len(hs) != 1 || len(hs[0].Steps) != 1 {
		t.Errorf("timeline %+v, want h01 with its one step", hs)
	}
	b.Reset()
	printAnalyses(&b, analysisEvals(j[:1]))
	if b.Len() != 0 {
		t.Errorf("a deploy without analyses prints %q", b.String())
	}
}
