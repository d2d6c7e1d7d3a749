package runner

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"drover"
	"drover/rollout"
)

// DeployOptions are the inputs of one deploy besides the spec.
type DeployOptions struct {
	Release *drover.Release
	// Limit narrows the deploy to hosts matching it (see SelectHosts).
	Limit string
	// Force deploys to hosts already on the target release.
	Force   bool
	Message string
	// Overrides skip checks, analyses and gates for this deploy only
	// (drover.NewOverrides); they are recorded with it.
	Overrides []drover.Override
	// Expect is the fingerprint of the plan this deploy was approved from
	// (PlanResult.Fingerprint, `deploy --plan`): the deploy refuses, with
	// nothing changed, when its own plan differs. "" deploys the fleet as
	// it is.
	Expect string
}

// Outcome is how a deploy, rollback or recovery ended.
type Outcome struct {
	DeployID string
	Kind     string
	Verdict  rollout.Verdict
	Report   rollout.Report
	ExitCode int
	// Summary is one line for people.
	Summary string
	// Recovered lists interrupted deploys this run found and rolled back
	// before doing its own work.
	Recovered []*Outcome
	// Targets is, per host, the release a restore takes it to: its
	// pre-deploy snapshot in a deploy, the rollback's target in a
	// rollback or recovery. A foreign one carries its link and hash, so
	// JSON output can say exactly where a host went back to.
	Targets map[string]drover.Snapshot
}

// Name is the run's outcome (drover.Outcome*): its verdict, which is named
// after one; needs_person for a run that never reached a verdict.
func (o *Outcome) Name() string { return drover.OutcomeOf(string(o.Verdict)).Outcome }

// ExitCodeOf maps a verdict to the command's exit code (outcome.go).
func ExitCodeOf(v rollout.Verdict) int { return drover.OutcomeOf(string(v)).Exit }

// Deploy rolls o.Release out to the spec's hosts (or those o.Limit selects).
// It returns an error only when nothing was touched (bad input, the lock is
// held); once hosts may have changed, the Outcome carries the verdict.
func (r *Runner) Deploy(ctx context.Context, o DeployOptions) (*Outcome, error) {
	targets, err := r.checkDeploy(o)
	if err != nil {
		return nil, err
	}
	promoted, err := r.checkPromotion(ctx, o.Release)
	if err != nil {
		return nil, err
	}
	id := r.newID()
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
	for _, rec := range recovered {
		if rec.ExitCode == drover.ExitNeedsPerson {
			// Deploying on top of a fleet we could not put back would
			// bury the problem under a new release.
			rec.Recovered = recovered
			return rec, nil
		}
	}

	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	fp, err := r.planFleet(ctx, cs, o.Release, targets, o.Force)
	if err == nil {
		err = cmp.Or(fp.refused, fp.checkFingerprint(o.Expect))
	}
	if err == nil {
		err = r.finalizeExpired(ctx, cs, id, fp)
	}
	if err != nil {
		return nil, err
	}
	d, err := r.setUpDeploy(ctx, cs, id, o, fp)
	defer d.x.stopDistribution()
	if err != nil {
		return nil, err
	}
	if err := r.keepBundle(ctx, o.Release); err != nil {
		return nil, err
	}
	// Begin is written before any host changes: from here on a crash
	// leaves a record that the next run finds and rolls back.
	d.rec.Groups = planGroups(d.plan)
	if err := r.Store.Begin(ctx, d.rec); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	d.announce(o, len(targets), promoted)

	start := r.now()
	err = r.drive(ctx, id, d.m, d.x.run, d.x.timeout, d.canary.start(ctx))
	d.canary.stop()
	d.x.stopDistribution()
	out := r.finish(ctx, id, drover.KindDeploy, report(d.m, err), start)
	out.Targets = d.before
	if out.Verdict == rollout.Succeeded || out.Verdict == rollout.Partial {
		r.prune(ctx, cs, id, out.Report)
	}
	out.Recovered = recovered
	return out, nil
}

// checkDeploy refuses bad input before anything is locked or read, and
// returns the targets.
func (r *Runner) checkDeploy(o DeployOptions) (map[string]bool, error) {
	if o.Release == nil {
		return nil, drover.Errorf(drover.EINVALID, "no release given").WithHint("pass --release DIR or --release BUNDLE.tar.gz")
	}
	targets, err := SelectHosts(r.Spec, o.Limit)
	if err != nil {
		return nil, err
	}
	if err := r.checkRotation(); err != nil {
		return nil, err
	}
	if err := drover.ValidateOverrides(r.Spec, o.Overrides); err != nil {
		return nil, err
	}
	return targets, nil
}

// deployRun is one deploy, set up and ready to begin.
type deployRun struct {
	id     string
	r      *Runner
	x      *executor
	before map[string]drover.Snapshot
	rec    drover.DeployRecord
	plan   rollout.Plan
	m      *rollout.Machine
	canary *canaryWatch
}

// setUpDeploy builds everything a deploy needs before Store.Begin: its
// record, executor, machine, distribution and invariant baseline. Every
// failure here is returned with nothing recorded; stop the distribution
// in any case (d.x is never nil).
func (r *Runner) setUpDeploy(ctx context.Context, cs *conns, id string, o DeployOptions, fp *fleetPlan) (*deployRun, error) {
	before := map[string]drover.Snapshot{}
	for name, v := range fp.views {
		before[name] = v.State.Snapshot()
	}
	run := r.layout(rollout.ModeDeploy, before, fp.skip)
	d := &deployRun{id: id, r: r, before: before, rec: r.record(id, drover.KindDeploy, o.Release, o.Message), plan: run.plan}
	d.rec.Overrides, d.rec.Hosts = o.Overrides, run.hosts
	d.x = newExecutor(r, cs, o.Release, id, before)
	// The spec of this deploy only: r.Spec keeps every check, so the next
	// deploy (and a recovery of this one) runs them again.
	d.x.spec, d.x.overrides = r.Spec.WithOverrides(o.Overrides), o.Overrides
	d.x.useBlueGreen(fp.bg)
	for name, v := range fp.views {
		if v.Err != nil {
			d.x.unknown[name] = v.Err
		}
	}
	d.canary = d.x.newCanaryWatch()
	d.x.planGates(&d.plan, run.groups, d.canary)
	var err error
	if d.m, err = rollout.New(d.plan); err != nil {
		return d, drover.Errorf(drover.EINTERNAL, "plan: %v", err)
	}
	if err := d.x.startDistribution(ctx, d.plan); err != nil {
		return d, err
	}
	// Invariants are captured before anything changes; without a
	// baseline the deploy does not start.
	return d, d.x.captureInvariants(ctx)
}

// announce emits the start of a deploy that began: its plan, the release
// it was promoted from (promoted, "" for none), the checks it overrides,
// the invariant baseline, the distribution.
func (d *deployRun) announce(o DeployOptions, targets int, promoted string) {
	r := d.r
	pending := 0
	for _, h := range d.rec.Hosts {
		if !h.Skipped {
			pending++
		}
	}
	r.emit(drover.Event{Deploy: d.id, Kind: drover.EventDeployStart, Message: fmt.Sprintf("deploy %s %s (%s) to %s, %d to change", r.Spec.Service, o.Release.Version(), o.Release.ID(), plural(targets, "host"), pending),
		Operation: drover.KindDeploy, Release: o.Release.ID(), Version: o.Release.Version(), Groups: eventGroups(d.plan), Overrides: o.Overrides})
	if promoted != "" {
		r.emit(drover.Event{Deploy: d.id, Kind: drover.EventNotice, Message: promoted})
	}
	for _, ov := range o.Overrides {
		if ov.Kind != drover.OverrideGate {
			r.emit(drover.Event{Deploy: d.id, Kind: drover.EventNotice, Message: fmt.Sprintf("override: %s %s skipped for this deploy: %s", ov.Kind, ov.Name, ov.Reason)})
		}
	}
	d.x.emitBaseline()
	d.x.dist.announce()
}

// planGates adds the gates after each group of plan (groups: each plan
// group's index in the spec). The deploy-level gates go after the last
// group that has a targeted host: with --limit, the last group of the file
// may not be deployed at all, and its deploy-level smoke tests must not be
// skipped.
func (x *executor) planGates(plan *rollout.Plan, groups []int, canary *canaryWatch) {
	last := -1
	for i, gi := range groups {
		if gi >= 0 {
			last = i
		}
	}
	for i := range plan.Groups {
		gp := &plan.Groups[i]
		if groups[i] < 0 {
			continue
		}
		g, last := x.spec.Groups[groups[i]], i == last
		x.addGates(gp, x.specGates(g, last))
		x.addGates(gp, canary.gates(g, planHosts(*gp)))
		x.addGates(gp, x.r.groupGates(g, last))
	}
}

// eventGroups is the plan as deploy_start carries it to event consumers.
func eventGroups(p rollout.Plan) []drover.EventGroup {
	out := make([]drover.EventGroup, 0, len(p.Groups))
	for _, g := range p.Groups {
		eg := drover.EventGroup{Name: g.Name, Batch: g.Batch, FailureLimit: g.FailureLimit, Hosts: []string{}}
		for _, h := range g.Hosts {
			eg.Hosts = append(eg.Hosts, h.Name)
			if h.Skip {
				eg.Skipped = append(eg.Skipped, h.Name)
			}
		}
		out = append(out, eg)
	}
	return out
}

// planGroups is the plan's groups as the deploy record keeps them.
func planGroups(p rollout.Plan) []drover.PlanGroup {
	out := make([]drover.PlanGroup, 0, len(p.Groups))
	for _, g := range p.Groups {
		out = append(out, drover.PlanGroup{Name: g.Name, Batch: g.Batch, FailureLimit: g.FailureLimit})
	}
	return out
}

func (r *Runner) record(id, kind string, rel *drover.Release, msg string) drover.DeployRecord {
	userName, machine := r.who()
	rec := drover.DeployRecord{
		ID: id, Key: Key(r.Spec), Kind: kind, Service: r.Spec.Service, Env: r.Spec.Env,
		User: userName, Machine: machine, Message: msg, Started: r.now(),
	}
	if rel != nil {
		rec.Release = rel.ID()
		rec.Version = rel.Version()
		rec.Revision = rel.Manifest.Revision
	}
	return rec
}

func (r *Runner) lock(ctx context.Context, id string) (drover.Lock, error) {
	userName, machine := r.who()
	lock, err := r.Store.Lock(ctx, Key(r.Spec), drover.LockOwner{PID: os.Getpid(), Machine: machine, User: userName, DeployID: id, Since: r.now()})
	if err != nil {
		return nil, err
	}
	if prev := lock.TakenOver(); prev != nil {
		r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Message: fmt.Sprintf("warning: took over the lock of %s: pid %d of %s on %s since %s died without releasing it", Key(r.Spec), prev.PID, prev.User, prev.Machine, prev.Since.Format(time.RFC3339))})
	}
	return lock, nil
}

// finish turns the machine's report into an Outcome and records it.
func (r *Runner) finish(ctx context.Context, id, kind string, rep rollout.Report, start time.Time) *Outcome {
	out := &Outcome{DeployID: id, Kind: kind, Verdict: rep.Verdict, Report: rep, ExitCode: ExitCodeOf(rep.Verdict)}
	out.Summary = summarize(kind, rep, r.now().Sub(start))
	err := r.Store.Finish(context.WithoutCancel(ctx), id, drover.FinishRecord{
		Finished: r.now(), Outcome: out.Name(), ExitCode: out.ExitCode, Summary: out.Summary,
	})
	if err != nil {
		r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Message: "could not record the outcome: " + err.Error()})
	}
	// The one verdict event of the run, after the record is finished so
	// that a consumer reading history on it finds the outcome there too.
	r.emit(drover.Event{Deploy: id, Kind: drover.EventVerdict, Operation: kind, Outcome: out.Name(), Message: out.Summary})
	return out
}

func summarize(kind string, rep rollout.Report, took time.Duration) string {
	count := map[rollout.HostStatus][]string{}
	for _, h := range rep.Hosts {
		count[h.Status] = append(count[h.Status], h.Name)
	}
	var parts []string
	for _, st := range []rollout.HostStatus{rollout.HostDone, rollout.HostSkipped, rollout.HostRolledBack, rollout.HostFailed, rollout.HostUnreachable, rollout.HostStuck, rollout.HostPending} {
		if n := count[st]; len(n) > 0 {
			sort.Strings(n)
			label := string(st)
			if len(n) <= 6 && st != rollout.HostDone && st != rollout.HostSkipped && st != rollout.HostRolledBack {
				label += " (" + strings.Join(n, ", ") + ")"
			}
			parts = append(parts, fmt.Sprintf("%d %s", len(n), label))
		}
	}
	s := fmt.Sprintf("%s %s in %s: %s", kind, drover.OutcomeOf(string(rep.Verdict)).Verdict, took.Round(100*time.Millisecond), strings.Join(parts, ", "))
	if rep.HaltReason != "" {
		s += "; halted: " + rep.HaltReason
	}
	return s
}

// prune removes old releases on hosts that finished on the new release.
// Failing to prune is worth a notice, never a failed deploy.
func (r *Runner) prune(ctx context.Context, cs *conns, id string, rep rollout.Report) {
	var names []string
	for _, h := range rep.Hosts {
		if h.Status == rollout.HostDone || h.Status == rollout.HostSkipped {
			names = append(names, h.Name)
		}
	}
	forEach(names, max(r.Spec.StageParallelism, sweepParallelism), func(name string) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.Spec.StepTimeout)
		defer cancel()
		conn, err := cs.get(pctx, name)
		if err == nil {
			_, err = pruneConn(pctx, conn, r.Spec)
		}
		if err != nil {
			r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Host: name, Step: "prune", Message: "prune failed: " + err.Error()})
		}
	})
}

// fromLabel names the release a host goes back to, for the rollout's
// notes and report: "" (none) only when the host truly had nothing,
// "foreign releases/<slot>" for another tool's release.
func fromLabel(snap drover.Snapshot) string {
	if snap.Current == "" {
		return ""
	}
	return snap.Label()
}

// pruneConn prunes a host, foreign releases too when the operator set
// prune_foreign (drover.ForeignPruner): another tool's release is kept
// by default, since it may be all a team has to go back to.
func pruneConn(ctx context.Context, conn drover.HostConn, spec *drover.Spec) ([]string, error) {
	if fp, ok := conn.(drover.ForeignPruner); ok && spec.PruneForeign {
		return fp.PruneForeign(ctx, spec.KeepReleases)
	}
	return conn.Prune(ctx, spec.KeepReleases)
}
