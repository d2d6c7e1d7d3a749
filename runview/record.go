package runview

import (
	"fmt"

	"drover"
	"drover/rollout"
)

// FromRecord is the view of a run this process did not watch: a deploy
// record and its journal (a deploy run by another process, or before the
// server started). The journal holds every step, marked when it was on the
// way back, and every analysis evaluation; the host events the journal does
// not keep (done, failed, restored, rolled back, stuck) are told by its
// steps the way the runner reports them: a forward step that failed fails
// the host, a restoring step that failed leaves it stuck, the last step of
// a path (repool) ends it.
func FromRecord(rec drover.DeployRecord, journal []drover.JournalEntry) *View {
	var evs []drover.Event
	add := func(e drover.Event) {
		e.Deploy, e.Schema = rec.ID, drover.EventSchema
		evs = append(evs, e)
	}
	add(drover.Event{Kind: drover.EventDeployStart, Time: rec.Started, Operation: rec.Kind, Release: rec.Release, Version: rec.Version,
		Message: recordTitle(rec), Groups: recordGroups(rec), Overrides: rec.Overrides})
	group := map[string]string{}
	for _, h := range rec.Hosts {
		group[h.Name] = h.Group
	}
	// retried[i]: the failed step of entry i was tried again (the host's
	// next entry starts the same step), so it did not fail the host.
	retried := make([]bool, len(journal))
	next := map[string]drover.JournalEntry{}
	for i := len(journal) - 1; i >= 0; i-- {
		j := journal[i]
		if n, ok := next[j.Host]; ok && j.Phase == "done" && n.Phase == "start" && n.Step == j.Step && n.Restoring == j.Restoring {
			retried[i] = true
		}
		next[j.Host] = j
	}
	failed := map[string]bool{}
	stuck := map[string]bool{}
	for i, j := range journal {
		if j.Analysis != nil {
			add(drover.Event{Kind: drover.EventAnalysis, Time: j.At, Group: j.Analysis.Group, Message: j.Analysis.Message, Analysis: j.Analysis})
			continue
		}
		if j.Host == "" {
			continue
		}
		g := group[j.Host]
		switch j.Phase {
		case "start":
			add(drover.Event{Kind: drover.EventStepStart, Time: j.At, Group: g, Host: j.Host, Step: j.Step, Restoring: j.Restoring})
			continue
		case "done":
		default:
			continue
		}
		msg := j.Reason
		if msg == "" {
			msg = j.Output
		}
		add(drover.Event{Kind: drover.EventStepDone, Time: j.At, Group: g, Host: j.Host, Step: j.Step, Restoring: j.Restoring, Outcome: j.Outcome, Message: msg, Elapsed: j.Elapsed})
		ok := j.Outcome == string(rollout.OK)
		switch {
		case !ok && j.Restoring && !stuck[j.Host] && !retried[i]:
			stuck[j.Host] = true
			add(drover.Event{Kind: drover.EventHostStuck, Time: j.At, Group: g, Host: j.Host, Message: j.Step + ": " + msg})
		case !ok && !j.Restoring && !failed[j.Host] && !retried[i]:
			failed[j.Host] = true
			add(drover.Event{Kind: drover.EventHostFailed, Time: j.At, Group: g, Host: j.Host, Message: j.Step + ": " + msg})
		case ok && j.Step == string(rollout.StepRepool) && !j.Restoring && !failed[j.Host]:
			add(drover.Event{Kind: drover.EventHostDone, Time: j.At, Group: g, Host: j.Host})
		case ok && j.Step == string(rollout.StepRepool) && j.Restoring && !stuck[j.Host]:
			kind := drover.EventHostRolledBack
			if failed[j.Host] {
				kind = drover.EventHostRestored
			}
			add(drover.Event{Kind: kind, Time: j.At, Group: g, Host: j.Host})
		}
	}
	if rec.Outcome != "" {
		add(drover.Event{Kind: drover.EventVerdict, Time: rec.Finished, Operation: rec.Kind, Outcome: rec.Outcome, Message: rec.Summary})
	}
	return Fold(evs)
}

func recordTitle(rec drover.DeployRecord) string {
	if rec.Kind == drover.KindDeploy {
		return fmt.Sprintf("%s %s %s (%s)", rec.Kind, rec.Service, rec.Version, rec.Release)
	}
	return rec.Kind + " " + rec.Service
}

// recordGroups is the plan of a recorded run: its groups with the batch
// sizes it recorded. A record from before drover kept them has none: each
// group is then drawn as one batch.
func recordGroups(rec drover.DeployRecord) []drover.EventGroup {
	var out []drover.EventGroup
	idx := map[string]int{}
	for _, g := range rec.Groups {
		idx[g.Name] = len(out)
		out = append(out, drover.EventGroup{Name: g.Name, Batch: g.Batch, FailureLimit: g.FailureLimit, Hosts: []string{}})
	}
	for _, h := range rec.Hosts {
		i, ok := idx[h.Group]
		if !ok {
			i = len(out)
			idx[h.Group] = i
			out = append(out, drover.EventGroup{Name: h.Group, Hosts: []string{}})
		}
		out[i].Hosts = append(out[i].Hosts, h.Name)
		if h.Skipped {
			out[i].Skipped = append(out[i].Skipped, h.Name)
		}
	}
	for i := range out {
		if out[i].Batch == 0 {
			out[i].Batch = max(1, len(out[i].Hosts)-len(out[i].Skipped))
		}
	}
	return out
}
