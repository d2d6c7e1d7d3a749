package runner

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"drover"
	"drover/rollout"
)

// executor runs the steps of one deploy, rollback or recovery.
type executor struct {
	r    *Runner
	spec *drover.Spec
	// overrides are the operator's skips for this deploy (gates.go).
	overrides []drover.Override
	conns     *conns
	// release is the target of a deploy; nil for rollback and recovery.
	release  *drover.Release
	deployID string

	mu sync.Mutex
	// before is each host's snapshot: what a restore puts back.
	before map[string]drover.Snapshot
	// slots is where each host staged the release.
	slots map[string]drover.StageResult
	// restoredFrom is the slot each host was on when it was restored: a
	// first-ever deploy rolled back has no current link left, and its stop
	// hook runs from there.
	restoredFrom map[string]string
	// current is each host's current slot once this run changed it
	// (hooks.go: where hooks about the current release run).
	current map[string]string
	// unknown holds, for hosts whose state could not be read before the
	// deploy, why not. Such a host is never staged: its pre-deploy
	// snapshot is unknown, and a rollback would "restore" it to no
	// release at all, taking down a host that was serving.
	unknown map[string]error
	// gates are the run gates of this deploy, by gateKey.
	gates map[string]groupGate
	// baseline holds each invariant's document, captured before the
	// deploy switched anything (invariants.go).
	baseline      map[string]any
	baselineNotes []string
	rng           *rand.Rand
	// dist is relay distribution (distribute.go); nil pushes bundles
	// from this machine.
	dist *distribution
	// strategy runs the steps of the deploy strategy: rolling, or
	// blue/green (bluegreen.go), whose part of the run is bg (nil when
	// rolling). Set with useBlueGreen.
	strategy stepStrategy
	bg       *bgRun
	// logMarks is where each log check's file stood before the host's
	// last restart, by host and check name (logmark.go).
	logMarks map[string]*drover.LogPosition
}

func newExecutor(r *Runner, cs *conns, rel *drover.Release, deployID string, before map[string]drover.Snapshot) *executor {
	seed := uint64(r.Spec.Seed)
	if seed == 0 {
		for _, c := range deployID {
			seed = seed*31 + uint64(c)
		}
	}
	x := &executor{
		r: r, spec: r.Spec, conns: cs, release: rel, deployID: deployID,
		before: before, slots: map[string]drover.StageResult{}, restoredFrom: map[string]string{}, current: map[string]string{}, unknown: map[string]error{}, gates: map[string]groupGate{}, baseline: map[string]any{},
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	x.strategy = rolling{x}
	return x
}

// stepStrategy is what a deploy strategy does its own way. The steps every
// strategy runs alike (stage, check, depool, repool, gates) are the
// executor's; a strategy takes the others and says what templates see.
type stepStrategy interface {
	// timeout bounds one attempt of a step the strategy runs itself; ok
	// is false for the others.
	timeout(a rollout.Action) (d time.Duration, ok bool)
	// step runs a on h; handled is false for the steps it leaves to the
	// executor. Stage is the executor's in every strategy: it is not
	// asked (executor.step).
	step(ctx context.Context, a rollout.Action, h drover.Host) (handled bool, err error)
	// data is what templates see on h: the target release while
	// deploying, the release being restored while restoring.
	data(h drover.Host, restoring bool) drover.TemplateData
}

// rolling is strategy rolling: one release directory switched in place,
// every step the executor's.
type rolling struct{ x *executor }

func (rolling) timeout(rollout.Action) (time.Duration, bool) { return 0, false }

func (rolling) step(context.Context, rollout.Action, drover.Host) (bool, error) { return false, nil }

func (s rolling) data(h drover.Host, restoring bool) drover.TemplateData {
	x := s.x
	if restoring || x.release == nil {
		snap := x.snapshot(h.Name)
		if snap.Foreign != nil && snap.Release == "" && len(snap.Foreign.Hash) >= 12 {
			// Another tool's release has no drover ID: name it by its
			// content, as `drover adopt` names the directory.
			return drover.NewTemplateData(x.spec, h, drover.ForeignPrefix+snap.Foreign.Hash[:12], snap.Version)
		}
		return drover.NewTemplateData(x.spec, h, snap.Release, snap.Version)
	}
	return drover.NewTemplateData(x.spec, h, x.release.ID(), x.release.Version())
}

// baseTimeout bounds one attempt of a step (retry.go: timeout bounds all
// of its attempts). A check step runs every check, each retried until its
// own timeout, so its bound is their sum plus slack.
func (x *executor) baseTimeout(a rollout.Action) time.Duration {
	if d, ok := x.strategy.timeout(a); ok {
		return d
	}
	switch a.Step {
	case rollout.StepGate:
		return x.gateTimeout(a)
	case rollout.StepCheck:
		var total time.Duration
		for _, c := range x.spec.Checks {
			total += c.Timeout + 5*time.Second
		}
		return total + 5*time.Second
	case rollout.StepStage:
		return x.spec.StepTimeout + x.lifecycleTimeout(x.spec.Hooks.BeforeStage, x.spec.Hooks.AfterStage)
	case rollout.StepDepool, rollout.StepRepool:
		return x.rotationTimeout(a.Step == rollout.StepDepool)
	case rollout.StepRestart:
		return x.hookTimeout() + 5*time.Second + x.lifecycleTimeout(x.spec.Hooks.BeforeRestart, x.spec.Hooks.AfterRestart)
	case rollout.StepSwitch:
		return x.spec.StepTimeout + x.lifecycleTimeout(x.spec.Hooks.BeforePromote, x.spec.Hooks.AfterPromote)
	case rollout.StepRestore:
		return x.spec.StepTimeout + x.lifecycleTimeout(x.spec.Hooks.BeforeRollback, x.spec.Hooks.AfterRollback)
	}
	return x.spec.StepTimeout
}

func (x *executor) hookTimeout() time.Duration {
	if x.spec.Hooks.Timeout > 0 {
		return x.spec.Hooks.Timeout
	}
	return drover.DefaultHookTimeout
}

func (x *executor) run(ctx context.Context, a *rollout.Action) rollout.Result {
	if a.Step == rollout.StepStage {
		// Hosts that relay from this one wait for all its attempts
		// (distribute.go).
		defer x.dist.begin(a.Host)()
	}
	err := x.retrying(ctx, a) // x.step, under the spec's retry policy
	if err != nil {
		return x.failed(a, err)
	}
	return rollout.Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: rollout.OK}
}

// failed is the result of a step that ended with err.
//
//go:noinline
func (x *executor) failed(a *rollout.Action, err error) rollout.Result {
	res := rollout.Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: outcomeOf(err), Reason: err.Error(), Unchanged: isUnchanged(err)}
	if res.Outcome == rollout.Unreachable {
		x.conns.drop(a.Host)
	}
	return res
}

// step runs one attempt of a. The stage step, which every host waits in
// at once, goes straight to its call; the others through stepOther (see
// retrying on why the frames on that path are kept small).
func (x *executor) step(ctx context.Context, a *rollout.Action) error {
	if a.Step == rollout.StepStage { // the executor's in every strategy
		h, ok := x.conns.hostRef(a.Host)
		if !ok {
			return drover.Errorf(drover.EINTERNAL, "unknown host %s", a.Host)
		}
		return x.stageStep(ctx, h)
	}
	return x.stepOther(ctx, *a)
}

//go:noinline
func (x *executor) stepOther(ctx context.Context, a rollout.Action) error {
	if a.Step == rollout.StepGate {
		return x.runGate(ctx, a)
	}
	h, ok := x.conns.host(a.Host)
	if !ok {
		return drover.Errorf(drover.EINTERNAL, "unknown host %s", a.Host)
	}
	if handled, err := x.strategy.step(ctx, a, h); handled {
		return err
	}
	switch a.Step {
	case rollout.StepStage:
		return x.stageStep(ctx, &h)
	case rollout.StepDepool:
		return x.depool(ctx, h, a.Restoring)
	case rollout.StepRepool:
		return x.repool(ctx, h, a.Restoring)
	case rollout.StepSwitch:
		return x.switchStep(ctx, h)
	case rollout.StepRestore:
		return x.restoreStep(ctx, h)
	case rollout.StepRestart:
		if a.Restoring && x.snapshot(h.Name).Current == "" {
			// A first-ever deploy rolled back: there is no release to
			// restart, so stop the service instead of leaving the new,
			// failed release running out of a deleted link.
			x.mu.Lock()
			from := x.restoredFrom[h.Name]
			x.mu.Unlock()
			if from == "" {
				return nil // nothing was running from a release
			}
			return x.runHook(ctx, h, "stop", x.spec.Hooks.Stop, "releases/"+from, true)
		}
		return x.restartStep(ctx, h, a.Restoring)
	case rollout.StepCheck:
		if a.Restoring && x.snapshot(h.Name).Current == "" {
			return nil // nothing should be serving
		}
		return x.check(ctx, h, a.Restoring)
	}
	return drover.Errorf(drover.EINTERNAL, "unknown step %q", a.Step)
}

func (x *executor) snapshot(host string) drover.Snapshot {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.before[host]
}

// data is what templates see on host h during this run: the target release
// while deploying, the release being restored while restoring.
func (x *executor) data(h drover.Host, restoring bool) drover.TemplateData {
	return x.strategy.data(h, restoring)
}

func (x *executor) stage(ctx context.Context, h *drover.Host) error {
	conn, req, err := x.stageRequest(ctx, h)
	if err != nil {
		return err
	}
	var res drover.StageResult
	if x.dist == nil {
		res, err = conn.Stage(ctx, *req)
	} else {
		res, err = x.stageRelayed(ctx, h, conn, req)
	}
	if err != nil {
		return err
	}
	x.staged(h.Name, res)
	return nil
}

// stageRequest is h's connection and what it stages, built on the heap
// and in a call of its own: rendering the template data is the deepest
// point of the stage path before the transfer (see retrying).
//
//go:noinline
func (x *executor) stageRequest(ctx context.Context, h *drover.Host) (drover.HostConn, *drover.StageRequest, error) {
	if err := x.unknown[h.Name]; err != nil {
		return nil, nil, fmt.Errorf("state before the deploy unknown, not deploying to it: %w", err)
	}
	conn, err := x.conns.get(ctx, h.Name)
	if err != nil {
		return nil, nil, err
	}
	return conn, &drover.StageRequest{
		DeployID: x.deployID, Release: x.release,
		ConfigFiles: x.spec.ConfigFiles, Data: x.data(*h, false),
		SharedDirs: x.spec.SharedDirs,
	}, nil
}

//go:noinline
func (x *executor) stageRelayed(ctx context.Context, h *drover.Host, conn drover.HostConn, req *drover.StageRequest) (drover.StageResult, error) {
	return x.stageVia(ctx, *h, conn, *req)
}

//go:noinline
func (x *executor) staged(host string, res drover.StageResult) {
	x.mu.Lock()
	x.slots[host] = res
	x.mu.Unlock()
}

func (x *executor) promote(ctx context.Context, h drover.Host) error {
	x.mu.Lock()
	slot, ok := x.slots[h.Name]
	x.mu.Unlock()
	if !ok {
		return drover.Errorf(drover.EINTERNAL, "host %s was not staged", h.Name)
	}
	conn, err := x.conns.get(ctx, h.Name)
	if err != nil {
		return err
	}
	_, err = conn.Promote(ctx, drover.PromoteRequest{
		DeployID: x.deployID, Slot: slot.Slot, Release: x.release.ID(),
		Version: x.release.Version(), ConfigHash: slot.ConfigHash, At: x.r.now(),
	})
	return err
}

func (x *executor) restore(ctx context.Context, h drover.Host) error {
	conn, err := x.conns.get(ctx, h.Name)
	if err != nil {
		return err
	}
	st, err := conn.State(ctx)
	if err != nil {
		return err
	}
	x.mu.Lock()
	x.restoredFrom[h.Name] = st.Current
	x.mu.Unlock()
	action := drover.ActionRestore
	reason := "deploy " + x.deployID + " rolled back"
	if x.release == nil {
		action = drover.ActionRollback
		reason = "rollback " + x.deployID
	}
	_, err = conn.Restore(ctx, drover.RestoreRequest{
		DeployID: x.deployID, To: x.snapshot(h.Name), Action: action, Reason: reason, At: x.r.now(),
	})
	return err
}

// check runs every check in order; the first that fails fails the step,
// with the check's name and its last reason.
func (x *executor) check(ctx context.Context, h drover.Host, restoring bool) error {
	if len(x.spec.Checks) == 0 {
		return nil
	}
	conn, err := x.conns.get(ctx, h.Name)
	if err != nil {
		return err
	}
	data := x.data(h, restoring)
	for _, c := range x.spec.Checks {
		rc, err := drover.RenderCheck(c, data)
		if err != nil {
			return err
		}
		if rc.Type == "log" {
			rc.Since = x.logMark(h.Name, c.Name)
		}
		res, err := conn.Check(ctx, rc)
		if err != nil {
			return fmt.Errorf("check %s: %w", c.Name, err)
		}
		if !res.OK {
			return &drover.Error{Code: drover.EFAILED, Message: fmt.Sprintf("%s: %s (%d attempts in %s)", c.Name, res.Reason, res.Attempts, res.Elapsed.Round(100*time.Millisecond))}
		}
	}
	return nil
}
