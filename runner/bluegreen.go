package runner

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"drover"
	"drover/rollout"
)

// This file runs the blue/green steps (strategy: blue-green; the decisions
// are rollout/bluegreen.go's). A deploy stages the release into each host's
// idle colour, rendered with that colour's .Slot, then per host:
//
//	start_idle  blue_green.start_idle in the staged release, .Slot = the new colour
//	check       every check, .Slot = the new colour
//	switch      before_promote · rotation: new colour repooled (HAProxy: ready,
//	            wait UP), old colour depooled (drain) · state.json: the new colour
//	            live, the old one idle and running until keep_old · after_promote
//	restore     (switching back) the old colour repooled, the new one depooled,
//	            state.json back on the snapshot
//	stop_idle   blue_green.stop_idle for the colour this deploy started
//
// The old colour is stopped by Finalize only: `drover finalize`, or the
// next deploy once keep_old has passed.

// bgRun is the blue/green part of one run.
type bgRun struct {
	keepOld time.Duration
	mu      sync.Mutex
	// newColor is, per host, the colour a deploy goes to (the idle one).
	newColor map[string]string
	// ports are each host's rendered ports, by colour.
	ports map[string]map[string]string
}

// blueGreen is strategy blue-green's stepStrategy: the steps of this file,
// and templates that see the colour as .Slot.
type blueGreen struct{ x *executor }

func (s blueGreen) timeout(a rollout.Action) (time.Duration, bool) { return s.x.bgTimeout(a) }

func (s blueGreen) step(ctx context.Context, a rollout.Action, h drover.Host) (bool, error) {
	return s.x.bgStep(ctx, a, h)
}

func (s blueGreen) data(h drover.Host, restoring bool) drover.TemplateData {
	return s.x.bgData(h, restoring)
}

// useBlueGreen makes x run strategy blue-green with bg (nil: rolling).
func (x *executor) useBlueGreen(bg *bgRun) {
	if bg != nil {
		x.bg, x.strategy = bg, blueGreen{x}
	}
}

func (r *Runner) blueGreen() bool { return r.Spec.Strategy == drover.StrategyBlueGreen }

func (r *Runner) strategy() rollout.Strategy {
	if r.blueGreen() {
		return rollout.StrategyBlueGreen
	}
	return rollout.StrategyRolling
}

// newBGRun renders every host's ports; a port that does not render is bad
// input, found before anything is touched.
func (r *Runner) newBGRun() (*bgRun, error) {
	if !r.blueGreen() {
		return nil, nil
	}
	bg := &bgRun{keepOld: r.Spec.BlueGreen.KeepOld, newColor: map[string]string{}, ports: map[string]map[string]string{}}
	if bg.keepOld <= 0 {
		bg.keepOld = drover.DefaultKeepOld
	}
	for _, h := range r.Spec.Hosts {
		data := drover.NewTemplateData(r.Spec, h, "", "")
		bg.ports[h.Name] = map[string]string{}
		for _, c := range []string{drover.ColorBlue, drover.ColorGreen} {
			p, err := drover.Render("blue_green.ports."+c, r.Spec.BlueGreen.Ports[c], data)
			if err != nil {
				return nil, drover.Errorf(drover.EINVALID, "host %s: %v", h.Name, err).At(r.Spec.Source)
			}
			bg.ports[h.Name][c] = strings.TrimSpace(p)
		}
	}
	return bg, nil
}

func (bg *bgRun) slot(host, color string) drover.TemplateSlot {
	if color == "" {
		return drover.TemplateSlot{}
	}
	bg.mu.Lock()
	defer bg.mu.Unlock()
	return drover.TemplateSlot{Color: color, Port: bg.ports[host][color]}
}

func (bg *bgRun) target(host string) string {
	bg.mu.Lock()
	defer bg.mu.Unlock()
	return bg.newColor[host]
}

// idleColor is the colour a deploy to a host in state st goes to: the one
// not live. A host deployed before with strategy rolling runs its release
// outside any colour, on what is usually the blue port: it starts green.
func idleColor(st drover.HostState) string {
	switch {
	case st.Live != "":
		return drover.OtherColor(st.Live)
	case st.Current != "":
		return drover.ColorGreen
	}
	return drover.ColorBlue
}

// finalizeExpired stops the old colour of the hosts that keep it running
// past keep_old (fleetPlan.expired) before a deploy goes into it.
func (r *Runner) finalizeExpired(ctx context.Context, cs *conns, id string, p *fleetPlan) error {
	if len(p.expired) == 0 {
		return nil
	}
	res := r.finalizeHosts(ctx, cs, id, p.views, p.expired)
	if len(res.Failed) > 0 {
		return drover.Errorf(drover.EFAILED, "finalizing the last blue/green deploy failed, nothing was deployed:\n  %s", strings.Join(res.Failed, "\n  ")).
			WithHint("fix the stop_idle hook or stop the colour by hand, then run `drover finalize`")
	}
	for name := range p.expired {
		p.views[name].State.Idle.Running = false
	}
	return nil
}

func sortedViewNames(views map[string]*hostView) []string {
	out := make([]string, 0, len(views))
	for n := range views {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// bgData is what templates see on host h in a blue/green run: deploying,
// the new release in the new colour; restoring, the snapshot's release in
// the colour that served it.
func (x *executor) bgData(h drover.Host, restoring bool) drover.TemplateData {
	if restoring || x.release == nil {
		s := x.snapshot(h.Name)
		d := drover.NewTemplateData(x.spec, h, s.Release, s.Version)
		d.Slot = x.bg.slot(h.Name, s.Live)
		return d
	}
	d := drover.NewTemplateData(x.spec, h, x.release.ID(), x.release.Version())
	d.Slot = x.bg.slot(h.Name, x.bg.target(h.Name))
	return d
}

// bgTimeout bounds the blue/green steps.
func (x *executor) bgTimeout(a rollout.Action) (time.Duration, bool) {
	switch a.Step {
	case rollout.StepStartIdle, rollout.StepStopIdle:
		return x.hookTimeout() + x.spec.StepTimeout, true
	case rollout.StepSwitch, rollout.StepRestore:
		return x.rotationTimeout(false) + x.rotationTimeout(false) + x.spec.StepTimeout +
			x.lifecycleTimeout(x.spec.Hooks.BeforePromote, x.spec.Hooks.AfterPromote, x.spec.Hooks.BeforeRollback, x.spec.Hooks.AfterRollback), true
	}
	return 0, false
}

// bgStep runs a blue/green step; handled is false for the steps the
// rolling code runs the same way (stage, check, gates).
func (x *executor) bgStep(ctx context.Context, a rollout.Action, h drover.Host) (handled bool, err error) {
	switch a.Step {
	case rollout.StepStartIdle:
		return true, x.bgStart(ctx, h)
	case rollout.StepStopIdle:
		return true, x.bgStop(ctx, h)
	case rollout.StepSwitch:
		return true, x.bgSwitch(ctx, h)
	case rollout.StepRestore:
		return true, x.bgRestore(ctx, h)
	}
	return false, nil
}

// bgStart starts the idle colour: deploying, the staged release in the new
// colour; rolling back, the colour going back into service, unless it still
// runs (the instant switch back) or is already live.
func (x *executor) bgStart(ctx context.Context, h drover.Host) error {
	tmpl := x.spec.BlueGreen.StartIdle
	if x.release != nil {
		// start_idle is blue/green's restart: log checks count from here.
		if err := x.markLogs(ctx, h, false); err != nil {
			return err
		}
		return x.runBGHook(ctx, h, "start_idle", tmpl, x.bgData(h, false), x.stagedDir(h.Name))
	}
	to := x.snapshot(h.Name)
	if to.Current == "" || to.Live == "" {
		return nil // back to no release: nothing to start
	}
	conn, err := x.conns.get(ctx, h.Name)
	if err != nil {
		return err
	}
	st, err := conn.State(ctx)
	if err != nil {
		return err
	}
	switch {
	case st.Live == to.Live && st.Current == to.Current:
		return nil // already serving
	case st.Idle != nil && st.Idle.Color == to.Live && st.Idle.Running && st.Idle.Slot == to.Current:
		x.notice(h.Name, "start_idle", fmt.Sprintf("%s still runs %s: switching back without a restart", to.Live, orNone(to.Version)))
		return nil
	}
	return x.runBGHook(ctx, h, "start_idle", tmpl, x.bgData(h, true), "releases/"+to.Current)
}

// bgStop stops the colour this deploy started, then records it stopped.
func (x *executor) bgStop(ctx context.Context, h drover.Host) error {
	color := x.bg.target(h.Name)
	data := x.bgData(h, false)
	if err := x.runBGHook(ctx, h, "stop_idle", x.spec.BlueGreen.StopIdle, data, x.stagedDir(h.Name)); err != nil {
		return err
	}
	conn, err := x.conns.get(ctx, h.Name)
	if err != nil {
		return err
	}
	_, err = conn.Restore(ctx, drover.RestoreRequest{DeployID: x.deployID, Action: drover.ActionFinalize, Color: color, At: x.r.now()})
	return err
}

func (x *executor) runBGHook(ctx context.Context, h drover.Host, name, tmpl string, data drover.TemplateData, dir string) error {
	rh := drover.RotationHost{Host: h, Data: data, Dir: dir,
		Conn: func(ctx context.Context) (drover.HostConn, error) { return x.conns.get(ctx, h.Name) }}
	return execHook(ctx, rh, x.deployID, name, tmpl, x.hookTimeout())
}

// moveTraffic repools the colour of to and then depools the colour of
// from, so that at every instant some colour serves. The colour left goes
// on running: its requests in flight finish.
func (x *executor) moveTraffic(ctx context.Context, h drover.Host, to, from drover.TemplateData) error {
	rot := x.rotation()
	rh := func(d drover.TemplateData) drover.RotationHost {
		return drover.RotationHost{Host: h, Data: d, Dir: x.hookDir(h.Name),
			Conn: func(ctx context.Context) (drover.HostConn, error) { return x.conns.get(ctx, h.Name) }}
	}
	if to.Slot.Color != "" {
		if err := rot.Repool(ctx, rh(to)); err != nil {
			return fmt.Errorf("traffic to %s: %w", to.Slot.Color, err)
		}
	}
	if from.Slot.Color != "" {
		if err := rot.Depool(ctx, rh(from)); err != nil {
			return fmt.Errorf("traffic away from %s: %w", from.Slot.Color, err)
		}
	}
	return nil
}

// bgSwitch moves traffic to the new colour, which passed its checks, and
// records it live.
func (x *executor) bgSwitch(ctx context.Context, h drover.Host) error {
	if err := x.lifecycle(ctx, h, "before_promote", x.spec.Hooks.BeforePromote, x.stagedDir(h.Name), false); err != nil {
		return unchanged{err}
	}
	x.mu.Lock()
	slot, ok := x.slots[h.Name]
	x.mu.Unlock()
	if !ok {
		return drover.Errorf(drover.EINTERNAL, "host %s was not staged", h.Name)
	}
	newData := x.bgData(h, false)
	oldData := newData
	oldData.Slot = x.bg.slot(h.Name, drover.OtherColor(newData.Slot.Color))
	if err := x.moveTraffic(ctx, h, newData, oldData); err != nil {
		return err
	}
	conn, err := x.conns.get(ctx, h.Name)
	if err != nil {
		return err
	}
	now := x.r.now()
	if _, err := conn.Promote(ctx, drover.PromoteRequest{
		DeployID: x.deployID, Slot: slot.Slot, Release: x.release.ID(), Version: x.release.Version(),
		ConfigHash: slot.ConfigHash, At: now, Color: newData.Slot.Color, KeepUntil: now.Add(x.bg.keepOld),
	}); err != nil {
		return err
	}
	x.mu.Lock()
	x.current[h.Name] = slot.Slot
	x.mu.Unlock()
	return x.lifecycle(ctx, h, "after_promote", x.spec.Hooks.AfterPromote, "", false)
}

// bgRestore switches traffic back to the colour of the host's snapshot
// (checked just before) and puts state.json back on it. The colour left
// keeps running: until the stop_idle that follows in a deploy, until
// keep_old after a rollback.
func (x *executor) bgRestore(ctx context.Context, h drover.Host) error {
	x.lifecycle(ctx, h, "before_rollback", x.spec.Hooks.BeforeRollback, x.hookDir(h.Name), true)
	to := x.snapshot(h.Name)
	back := x.bgData(h, true)
	var left drover.TemplateData
	left.Slot = x.bg.slot(h.Name, drover.OtherColor(to.Live))
	if x.release != nil {
		left = x.bgData(h, false)
	}
	if to.Live == "" {
		// Back to no release (a first deploy): no colour serves.
		back.Slot = drover.TemplateSlot{}
	} else {
		left.Host, left.Release = back.Host, back.Release
	}
	if err := x.moveTraffic(ctx, h, back, left); err != nil {
		return err
	}
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
	now := x.r.now()
	action, reason, keep := drover.ActionRestore, "deploy "+x.deployID+" rolled back", now
	if x.release == nil {
		action, reason, keep = drover.ActionRollback, "rollback "+x.deployID, now.Add(x.bg.keepOld)
	}
	color := to.Live
	if color == "" {
		color = left.Slot.Color
	}
	if color == "" {
		color = drover.ColorBlue
	}
	if _, err := conn.Restore(ctx, drover.RestoreRequest{DeployID: x.deployID, To: to, Action: action, Reason: reason, At: now, Color: color, KeepUntil: keep}); err != nil {
		return err
	}
	x.mu.Lock()
	x.current[h.Name] = to.Current
	x.mu.Unlock()
	x.lifecycle(ctx, h, "after_rollback", x.spec.Hooks.AfterRollback, x.hookDir(h.Name), true)
	return nil
}

// bgRollbackTarget completes an operator's rollback target on a blue/green
// host: the release must be the one the idle colour holds (running, for an
// instant switch back, or stopped, to be started again). A release on
// neither colour needs a deploy.
func bgRollbackTarget(st drover.HostState, snap drover.Snapshot) (drover.Snapshot, error) {
	if snap.Current == st.Current {
		snap.Live = st.Live
		return snap, nil
	}
	if st.Idle == nil || st.Idle.Slot != snap.Current {
		held := "nothing"
		if st.Idle != nil && st.Idle.Slot != "" {
			held = st.Idle.Slot
		}
		return snap, drover.Errorf(drover.EINVALID, "release %s is not on the idle colour (which holds %s)", snap.Current, held).
			WithHint("blue/green rolls back to the release the idle colour holds; deploy older releases with `drover deploy --release`")
	}
	snap.Live = st.Idle.Color
	return snap, nil
}

// FinalizeOptions are the inputs of `drover finalize`.
type FinalizeOptions struct {
	Limit string
}

// FinalizeResult says what Finalize did.
type FinalizeResult struct {
	// Stopped are "host: colour (version)" for each colour stopped.
	Stopped []string
	// Failed are "host: reason" for each host that could not be finalized.
	Failed []string
}

// Finalize ends the last blue/green deploy: on every targeted host that
// keeps its old colour running, blue_green.stop_idle stops it and
// state.json records it stopped. After it, a rollback starts the old
// release again instead of switching back at once.
func (r *Runner) Finalize(ctx context.Context, o FinalizeOptions) (*FinalizeResult, error) {
	if !r.blueGreen() {
		return nil, drover.Errorf(drover.EINVALID, "%s: strategy is rolling; only blue-green deploys are finalized", r.Spec.Source).
			WithHint("set strategy: blue-green in drover.yaml")
	}
	targets, err := SelectHosts(r.Spec, o.Limit)
	if err != nil {
		return nil, err
	}
	id := r.newID() + "-finalize"
	lock, err := r.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	ctx = withLock(ctx, lock) // fence.go: no step once the lock is lost
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	views := r.survey(ctx, cs, targets)
	var failed []string
	for _, name := range sortedViewNames(views) {
		if err := views[name].Err; err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	res := r.finalizeHosts(ctx, cs, id, views, targets)
	res.Failed = append(failed, res.Failed...)
	return res, nil
}

// finalizeHosts stops the idle colour of the named hosts that keep it
// running.
func (r *Runner) finalizeHosts(ctx context.Context, cs *conns, id string, views map[string]*hostView, names map[string]bool) *FinalizeResult {
	bg, err := r.newBGRun()
	res := &FinalizeResult{}
	if err != nil {
		res.Failed = append(res.Failed, err.Error())
		return res
	}
	var todo []string
	for _, name := range sortedViewNames(views) {
		v := views[name]
		if names[name] && v.Err == nil && v.State.Idle != nil && v.State.Idle.Running {
			todo = append(todo, name)
		}
	}
	var mu sync.Mutex
	forEach(todo, r.Spec.StageParallelism, func(name string) {
		v := views[name]
		idle := *v.State.Idle
		fctx, cancel := context.WithTimeout(ctx, r.Spec.StepTimeout+r.Spec.Hooks.Timeout)
		defer cancel()
		err := func() error {
			data := drover.NewTemplateData(r.Spec, v.Host, idle.Release, idle.Version)
			data.Slot = bg.slot(name, idle.Color)
			dir := "."
			switch {
			case idle.Slot != "":
				dir = "releases/" + idle.Slot
			case v.State.Current != "":
				// Nobody recorded what the idle colour runs: a deploy
				// killed after its start_idle and before its switch,
				// recovered. Its stop_idle then ran in the deploy root,
				// where a release's own scripts are not, failed, and
				// the host stayed "not finalized" for good, refusing
				// every deploy (found by the crash matrix,
				// cmd/drover/e2e_crash_test.go). The live release's
				// directory has the service's scripts; stop_idle stops
				// a colour by .Slot, whatever release it runs.
				dir = "releases/" + v.State.Current
			}
			rh := drover.RotationHost{Host: v.Host, Data: data, Dir: dir,
				Conn: func(ctx context.Context) (drover.HostConn, error) { return cs.get(ctx, name) }}
			timeout := r.Spec.Hooks.Timeout
			if timeout <= 0 {
				timeout = drover.DefaultHookTimeout
			}
			if err := execHook(fctx, rh, "", "stop_idle", r.Spec.BlueGreen.StopIdle, timeout); err != nil {
				return err
			}
			conn, err := cs.get(fctx, name)
			if err != nil {
				return err
			}
			_, err = conn.Restore(fctx, drover.RestoreRequest{DeployID: id, Action: drover.ActionFinalize, Color: idle.Color, At: r.now()})
			return err
		}()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", name, err))
			return
		}
		res.Stopped = append(res.Stopped, fmt.Sprintf("%s: %s (%s)", name, idle.Color, orNone(idle.Version)))
		r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Host: name, Step: "finalize", Message: fmt.Sprintf("stopped %s (%s)", idle.Color, orNone(idle.Version))})
	})
	sort.Strings(res.Stopped)
	sort.Strings(res.Failed)
	return res
}
