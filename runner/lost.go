package runner

import (
	"context"
	"fmt"

	"drover"
	"drover/rollout"
)

// recoverLost restores the hosts the last deploy of this key lost: hosts
// whose last step ended unreachable after the deploy had begun changing
// them (a host that stopped answering mid-restart, found by the SSH
// keepalives). Such a deploy finished — needing a person — so recovery of
// interrupted deploys does not see it, and the host's own state may claim
// the new release while its service never restarted on it: a later deploy
// or converge would skip it as already there. Once the host answers again,
// `drover resume` takes it back to its recorded pre-deploy snapshot through
// the restore path (depool, restore, restart, check, repool), the same
// rule crash recovery follows; a deploy then brings it forward like any
// other host. A host still silent is reported unreachable again, and the
// next resume tries again: the recovery's own record lists it.
func (r *Runner) recoverLost(ctx context.Context) ([]*Outcome, error) {
	hist, err := r.Store.History(ctx, Key(r.Spec), 1)
	if err != nil {
		return nil, fmt.Errorf("reading the history: %w", err)
	}
	if len(hist) == 0 || hist[0].Finished.IsZero() || hist[0].Outcome != drover.OutcomeNeedsPerson {
		return nil, nil
	}
	d := hist[0]
	entries, err := r.Store.Journal(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("reading the journal of %s: %w", d.ID, err)
	}
	touched := map[string]bool{}
	last := map[string]string{} // host -> outcome of its last finished step
	for _, e := range entries {
		if e.Step != string(rollout.StepStage) {
			touched[e.Host] = true
		}
		if e.Phase == drover.PhaseDone {
			last[e.Host] = e.Outcome
		}
	}
	to := map[string]drover.Snapshot{}
	var names []string
	for _, h := range d.Hosts {
		if touched[h.Name] && last[h.Name] == string(rollout.Unreachable) {
			to[h.Name] = h.Before
			names = append(names, h.Name)
		}
	}
	if len(to) == 0 {
		return nil, nil
	}
	id := r.newID() + "-recover"
	r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Message: fmt.Sprintf("%s %s of %s lost %v mid-way (unreachable): restoring them to what they ran before it", d.Kind, d.ID, d.Version, names)})
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	out, err := r.restoreHosts(ctx, cs, id, drover.KindRecover, "recover hosts lost by "+d.ID, to, nil)
	if err != nil {
		return nil, err
	}
	return []*Outcome{out}, nil
}
