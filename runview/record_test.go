package runview_test

import (
	"testing"

	"drover"
	"drover/runview"
)

// journalOf is what the runner journals of a run's events: a record with
// the plan, and its steps.
func journalOf(evs []drover.Event, outcome string) (drover.DeployRecord, []drover.JournalEntry) {
	var rec drover.DeployRecord
	var j []drover.JournalEntry
	for _, e := range evs {
		switch e.Kind {
		case drover.EventDeployStart:
			rec = drover.DeployRecord{ID: e.Deploy, Kind: e.Operation, Service: "hello", Release: e.Release, Version: e.Version, Started: e.Time}
			for _, g := range e.Groups {
				rec.Groups = append(rec.Groups, drover.PlanGroup{Name: g.Name, Batch: g.Batch, FailureLimit: g.FailureLimit})
				skip := map[string]bool{}
				for _, h := range g.Skipped {
					skip[h] = true
				}
				for _, h := range g.Hosts {
					rec.Hosts = append(rec.Hosts, drover.DeployHost{Name: h, Group: g.Name, Skipped: skip[h]})
				}
			}
		case drover.EventStepStart:
			j = append(j, drover.JournalEntry{At: e.Time, Host: e.Host, Step: e.Step, Phase: "start", Restoring: e.Restoring})
		case drover.EventStepDone:
			j = append(j, drover.JournalEntry{At: e.Time, Host: e.Host, Step: e.Step, Phase: "done", Outcome: e.Outcome, Reason: e.Message, Elapsed: e.Elapsed, Restoring: e.Restoring})
		case drover.EventAnalysis:
			j = append(j, drover.JournalEntry{At: e.Time, Step: drover.StepAnalysis, Phase: "done", Analysis: e.Analysis})
		case drover.EventVerdict:
			rec.Finished, rec.Outcome, rec.Summary = e.Time, outcome, e.Message
		}
	}
	return rec, j
}

// A finished run drawn from its record and journal looks as it did live:
// the same hosts in the same states, the same batches.
func TestFromRecordMatchesLive(t *testing.T) {
	fx := fixtures(t)
	for name, outcome := range map[string]string{"halt": drover.OutcomeRolledBack, "deploy": drover.OutcomeSucceeded, "rollback": drover.OutcomeSucceeded, "approval": "", "analysis": drover.OutcomeRolledBack} {
		evs, ok := fx[name]
		if !ok {
			t.Fatalf("no fixture %s", name)
		}
		t.Run(name, func(t *testing.T) {
			live := runview.Fold(evs)
			rec, j := journalOf(evs, outcome)
			got := runview.FromRecord(rec, j)
			if len(got.Groups) != len(live.Groups) {
				t.Fatalf("%d groups, live %d", len(got.Groups), len(live.Groups))
			}
			for i, g := range live.Groups {
				gg := got.Groups[i]
				if gg.Name != g.Name || gg.Batch != g.Batch || gg.Batches != g.Batches || gg.FailureLimit != g.FailureLimit {
					t.Errorf("group %+v, live %+v", gg, g)
				}
				for k, h := range g.Hosts {
					if gh := gg.Hosts[k]; gh.Name != h.Name || gh.State != h.State || gh.Failed != h.Failed || len(gh.Steps) != len(h.Steps) {
						t.Errorf("host %s: %s failed=%v steps=%d; live %s failed=%v steps=%d", h.Name, gh.State, gh.Failed, len(gh.Steps), h.State, h.Failed, len(h.Steps))
					}
				}
			}
			if (got.Verdict == nil) != (live.Verdict == nil) || got.Running != live.Running {
				t.Errorf("verdict %+v running %v; live %+v running %v", got.Verdict, got.Running, live.Verdict, live.Running)
			}
			if len(got.Analyses) != len(live.Analyses) {
				t.Errorf("%d analyses, live %d", len(got.Analyses), len(live.Analyses))
			}
		})
	}
}
