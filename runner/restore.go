package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"drover"
	"drover/rollout"
)

// restoreHosts takes hosts back to given snapshots through the restore path
// (depool, restore, restart, check, repool), groups in reverse order and a
// batch at a time: the same machinery, with the same safety rules, serves an
// operator's rollback and the recovery of a crashed deploy.
//
// It returns an error only when it touched nothing and recorded nothing:
// its setup failed (bad input) before Store.Begin.
func (r *Runner) restoreHosts(ctx context.Context, cs *conns, id, kind, message string, to map[string]drover.Snapshot, skip map[string]bool) (*Outcome, error) {
	run := r.layout(rollout.ModeRollback, to, skip)
	rec := r.record(id, kind, nil, message)
	rec.Hosts = run.hosts
	start := r.now()
	m, err := rollout.New(run.plan)
	if err != nil {
		return nil, drover.Errorf(drover.EINTERNAL, "plan: %v", err)
	}
	x := newExecutor(r, cs, nil, id, to)
	// Everything that can fail is set up before Begin: a run that fails
	// after it and returns leaves a deploy "unfinished", which the next
	// run recovers — rolling back hosts this run never touched.
	bg, err := r.newBGRun()
	if err != nil {
		return nil, err
	}
	x.useBlueGreen(bg)
	rec.Groups = planGroups(run.plan)
	if err := r.Store.Begin(ctx, rec); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	r.emit(drover.Event{Deploy: id, Kind: drover.EventDeployStart, Message: fmt.Sprintf("%s %s: %s to restore", kind, r.Spec.Service, plural(len(to), "host")),
		Operation: kind, Groups: eventGroups(run.plan)})
	err = r.drive(ctx, id, m, x.run, x.timeout, nil)
	out := r.finish(ctx, id, kind, report(m, err), start)
	out.Targets = to
	return out, nil
}

// recoverUnfinished finds deploys of this spec that began and never
// finished — the process was killed — and rolls back every host they
// touched to its recorded pre-deploy snapshot. The state a dead process
// left is not trusted: it may have switched a host and died before its
// checks, or depooled one and never put it back.
func (r *Runner) recoverUnfinished(ctx context.Context, lock drover.Lock) ([]*Outcome, error) {
	recs, err := r.Store.Unfinished(ctx, Key(r.Spec))
	if err != nil {
		return nil, fmt.Errorf("reading the journal: %w", err)
	}
	var outs []*Outcome
	for _, rec := range recs {
		entries, err := r.Store.Journal(ctx, rec.ID)
		if err != nil {
			return outs, fmt.Errorf("reading the journal of %s: %w", rec.ID, err)
		}
		touched := map[string]bool{}
		for _, e := range entries {
			if e.Step != string(rollout.StepStage) {
				touched[e.Host] = true
			}
		}
		to := map[string]drover.Snapshot{}
		for _, h := range rec.Hosts {
			if touched[h.Name] {
				to[h.Name] = h.Before
			}
		}
		id := r.newID() + "-recover"
		r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Message: fmt.Sprintf("found %s %s of %s (started %s by %s on %s) that never finished: rolling back the %s it touched", rec.Kind, rec.ID, rec.Version, rec.Started.Format("2006-01-02 15:04:05"), rec.User, rec.Machine, plural(len(to), "host"))})
		var out *Outcome
		if len(to) == 0 {
			out = &Outcome{DeployID: id, Kind: drover.KindRecover, Verdict: rollout.Succeeded, ExitCode: drover.ExitOK, Summary: "recover: no host was touched"}
		} else {
			cs := newConns(r.Transport, r.Spec)
			out, err = r.restoreHosts(ctx, cs, id, drover.KindRecover, "recover "+rec.ID, to, nil)
			cs.closeAll()
			if err != nil {
				// Nothing was touched: the interrupted deploy stays
				// unfinished, for a run that can recover it.
				return outs, fmt.Errorf("recovering %s: %w", rec.ID, err)
			}
		}
		summary := "interrupted; recovered by " + id + ": " + out.Summary
		if err := r.Store.Finish(context.WithoutCancel(ctx), rec.ID, drover.FinishRecord{Finished: r.now(), Outcome: drover.OutcomeInterrupted, ExitCode: out.ExitCode, Summary: summary}); err != nil {
			return outs, fmt.Errorf("recording the recovery of %s: %w", rec.ID, err)
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// RollbackOptions are the inputs of an operator's rollback.
type RollbackOptions struct {
	// To is a release ID or slot to go to; "" means each host's previous.
	To      string
	Limit   string
	Message string
}

// Rollback takes hosts back to their previous release (or o.To), config
// included, because a release directory holds its rendered config. Each
// host goes to its own recorded previous, never to "latest". A host without
// one is bad input: the error names it and nothing is touched.
func (r *Runner) Rollback(ctx context.Context, o RollbackOptions) (*Outcome, error) {
	targets, err := SelectHosts(r.Spec, o.Limit)
	if err != nil {
		return nil, err
	}
	if err := r.checkRotation(); err != nil {
		return nil, err
	}
	id := r.newID() + "-rollback"
	lock, err := r.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	ctx = withLock(ctx, lock) // fence.go: no step once the lock is lost
	recovered, err := r.recoverUnfinished(ctx, lock)
	if err != nil {
		return nil, err
	}
	if len(recovered) > 0 {
		// The interrupted deploy was just undone; rolling back again
		// would go a release further than the operator meant.
		out := recovered[len(recovered)-1]
		out.Recovered = recovered
		out.Summary += "; the fleet is back where it was before the interrupted deploy — run rollback again to go further back"
		return out, nil
	}
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	views := r.survey(ctx, cs, targets)
	if o.To, err = resolveTo(views, o.To); err != nil {
		return nil, err
	}
	to, skip, err := r.rollbackTargets(ctx, cs, sortedKeys(targets), views, o.To)
	if err != nil {
		return nil, err
	}
	return r.restoreHosts(ctx, cs, id, drover.KindRollback, o.Message, to, skip)
}

// rollbackTargets is where an operator's rollback takes each named host
// (to), and which of them are already there (skip). A host that cannot be
// rolled back refuses the whole rollback, with every such host named.
func (r *Runner) rollbackTargets(ctx context.Context, cs *conns, names []string, views map[string]*hostView, dest string) (map[string]drover.Snapshot, map[string]bool, error) {
	to := map[string]drover.Snapshot{}
	skip := map[string]bool{}
	var problems []string
	hint := "use --limit to leave those hosts out, or --to RELEASE-ID"
	hints := map[string]bool{}
	for _, name := range names {
		v := views[name]
		if v.Err != nil {
			problems = append(problems, fmt.Sprintf("host %s: %v", name, v.Err))
			continue
		}
		if v.State.LiveDir != "" {
			problems = append(problems, unadopted(name, v.State).Error()+" (run `drover adopt` first)")
			continue
		}
		snap, err := r.rollbackTarget(ctx, cs, name, v.State, dest)
		if err == nil && r.blueGreen() {
			snap, err = bgRollbackTarget(v.State, snap)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("host %s: %v", name, err))
			hints[drover.ErrorHint(err)] = true
			continue
		}
		to[name] = snap
		skip[name] = snap.Current == v.State.Current
	}
	if len(problems) > 0 {
		code := drover.ENOTFOUND
		for _, p := range problems {
			if strings.Contains(p, "unreachable") {
				code = drover.EUNREACHABLE
			}
		}
		// One hint shared by every refused host (the fleet is on its
		// first release) says what to do there; otherwise the general one.
		if len(hints) == 1 && len(problems) == len(names) {
			for h := range hints {
				if h != "" {
					hint = h
				}
			}
		}
		return nil, nil, &drover.Error{Code: code, Message: "cannot roll back, nothing was changed:\n  " + strings.Join(problems, "\n  "), Hint: hint}
	}
	return to, skip, nil
}

// slotMeta is releases/<slot>/.drover-slot.json, written by hostops.
type slotMeta struct {
	Release    string `json:"release"`
	Version    string `json:"version"`
	ConfigHash string `json:"config_hash"`
}

// rollbackTarget computes where an operator's rollback takes one host.
func (r *Runner) rollbackTarget(ctx context.Context, cs *conns, host string, st drover.HostState, to string) (drover.Snapshot, error) {
	target := st.Previous
	if to != "" {
		target = ""
		if to == st.Current || to == st.Release {
			target = st.Current
		}
		// A release ID may live in a slot of its own or, after a
		// config-only change, in <id>+<hash>; take the newest promoted.
		for i := len(st.History) - 1; i >= 0 && target == ""; i-- {
			e := st.History[i]
			for _, s := range []string{e.To, e.From} {
				if drover.SlotHolds(s, to) {
					target = s
					break
				}
			}
		}
		if target == "" {
			return drover.Snapshot{}, drover.Errorf(drover.ENOTFOUND, "release %s was never deployed here", to).WithHint("`drover status` lists each host's releases; pass one of them to --to")
		}
	}
	if target == "" {
		return drover.Snapshot{}, firstReleaseError(st)
	}
	if target == st.Current {
		return st.Snapshot(), nil
	}
	if f, ok := st.Foreign[target]; ok {
		// Another tool's release (Capistrano, Scap, Ansible): it has no
		// .drover-slot.json; it goes back exactly as current pointed at it.
		return drover.Snapshot{Current: target, Previous: st.PromotedFrom(target), Foreign: &f}, nil
	}
	conn, err := cs.get(ctx, host)
	if err != nil {
		return drover.Snapshot{}, err
	}
	b, err := conn.ReadFile(ctx, path.Join("releases", target, ".drover-slot.json"))
	if err != nil {
		return drover.Snapshot{}, fmt.Errorf("release directory releases/%s: %w", target, err)
	}
	var meta slotMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return drover.Snapshot{}, drover.Errorf(drover.EFAILED, "releases/%s/.drover-slot.json: %v", target, err)
	}
	prev := st.PromotedFrom(target)
	return drover.Snapshot{Current: target, Previous: prev, Release: meta.Release, Version: meta.Version, ConfigHash: meta.ConfigHash}, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Resume recovers interrupted deploys without deploying anything, or, when
// there are none, restores the hosts the last deploy lost unreachable
// (lost.go).
func (r *Runner) Resume(ctx context.Context) ([]*Outcome, error) {
	if err := r.checkRotation(); err != nil {
		return nil, err
	}
	id := r.newID() + "-resume"
	lock, err := r.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	ctx = withLock(ctx, lock) // fence.go: no step once the lock is lost
	outs, err := r.recoverUnfinished(ctx, lock)
	if err != nil || len(outs) > 0 {
		return outs, err
	}
	// Nothing interrupted: hosts the last deploy lost (lost.go).
	return r.recoverLost(ctx)
}
