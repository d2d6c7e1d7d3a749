package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"drover"
)

// RunLegacyHaltedContract is for stores without migrations (store/file,
// store/etcd): a deploy recorded rolled_back before the halted outcome
// existed whose journal has no switch step reads back halted, its
// summary's verb corrected, from Deploy and History alike; one that
// switched a host stays rolled back. (store/sqlite relabels its rows in
// migration 0006 instead.)
func RunLegacyHaltedContract(t *testing.T, open func(t *testing.T) drover.Store) {
	ctx := context.Background()
	s := open(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const summary = "deploy halted and rolled back in 1s: 2 failed (h01, h02); halted: group web: 2 failed > failure limit 1"
	for i, c := range []struct {
		id    string
		steps []string
	}{{"d-staged", []string{"stage"}}, {"d-switched", []string{"stage", "depool", "switch", "restore"}}} {
		if err := s.Begin(ctx, Record(c.id, "hello", time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
		for _, st := range c.steps {
			if err := s.Append(ctx, c.id, drover.JournalEntry{At: at, Host: "h01", Step: st, Phase: drover.PhaseStart}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Finish(ctx, c.id, drover.FinishRecord{Finished: at, Outcome: drover.OutcomeRolledBack, ExitCode: 1, Summary: summary}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"d-staged": drover.OutcomeHalted, "d-switched": drover.OutcomeRolledBack}
	check := func(from string, d drover.DeployRecord) {
		t.Helper()
		wantSummary := summary
		if want[d.ID] == drover.OutcomeHalted {
			wantSummary = strings.Replace(summary, "halted and rolled back", "halted before any host switched", 1)
		}
		if d.Outcome != want[d.ID] || d.Summary != wantSummary || d.ExitCode != 1 {
			t.Errorf("%s %s: outcome %q summary %q, want %q %q", from, d.ID, d.Outcome, d.Summary, want[d.ID], wantSummary)
		}
	}
	for id := range want {
		d, err := s.Deploy(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		check("Deploy", d)
	}
	h, err := s.History(ctx, "hello", 0)
	if err != nil || len(h) != 2 {
		t.Fatalf("History: %d records, %v", len(h), err)
	}
	for _, d := range h {
		check("History", d)
	}
}
