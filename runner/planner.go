package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"drover"
	"drover/rollout"
)

// This file is the one planner of a deploy: which hosts a deploy of a
// release changes and which it skips, decided from what a survey read,
// before anything is touched. Deploy, Plan and Converge all ask it, so
// `drover plan` cannot predict a skip that `drover deploy` then does not
// make: the rule was written three times, and for blue/green Deploy
// rendered config with the live colour's slot while Plan and Converge
// rendered it with none — a blue/green host on the release read as
// changed to plan and as behind to converge, round after round.

// fleetPlan is what a deploy of one release would do on its targets.
type fleetPlan struct {
	rel        *drover.Release
	sharedDirs []string
	views      map[string]*hostView
	// skip holds the reachable hosts already on the release with the
	// config it would give them (false for all with --force).
	skip map[string]bool
	// files is, per reachable host, the config staging would write:
	// in blue/green, rendered for the colour the deploy goes to.
	files map[string][]drover.RenderedFile
	// bg is the blue/green part (each host's new colour); nil rolling.
	bg *bgRun
	// expired are blue/green hosts whose old colour is still running past
	// keep_old: a deploy finalizes them first (finalizeExpired).
	expired map[string]bool
	// refused is why a deploy would refuse to start although the input is
	// good: blue/green hosts still keep their old colour (planColours).
	// Deploy and Plan return it; Converge only asks who is behind.
	refused error
}

// planFleet surveys targets and decides, for a deploy of rel, which hosts
// it changes. It touches nothing. Every error is bad input found before
// any write: a host that refuses deploys, a template that does not render,
// a blue/green colour still kept.
func (r *Runner) planFleet(ctx context.Context, cs *conns, rel *drover.Release, targets map[string]bool, force bool) (*fleetPlan, error) {
	rd, err := newRenderer(r.Spec, rel)
	if err != nil {
		return nil, err
	}
	if err := rd.renderAll(targets); err != nil {
		return nil, err
	}
	views := r.survey(ctx, cs, targets)
	if err := refusedHosts(views); err != nil {
		return nil, err
	}
	p := &fleetPlan{rel: rel, sharedDirs: r.Spec.SharedDirs, views: views, skip: map[string]bool{}, files: map[string][]drover.RenderedFile{}}
	if r.blueGreen() {
		if p.bg, err = r.newBGRun(); err != nil {
			return nil, err
		}
		p.expired, p.refused = r.planColours(p.bg, views)
	}
	for _, name := range sortedViewNames(views) {
		v := views[name]
		if v.Err != nil {
			continue
		}
		if p.files[name], err = rd.renderSlot(v.Host, p.data(r.Spec, name).Slot); err != nil {
			return nil, err
		}
		desired, known, err := p.desired(rd, v)
		if err != nil {
			return nil, err
		}
		p.skip[name] = !force && known && upToDate(v.State, rel, desired)
	}
	return p, nil
}

// data is what templates see on host name when the deploy stages it: the
// new release, in blue/green the colour it goes to.
func (p *fleetPlan) data(spec *drover.Spec, name string) drover.TemplateData {
	d := drover.NewTemplateData(spec, p.views[name].Host, p.rel.ID(), p.rel.Version())
	if p.bg != nil {
		d.Slot = p.bg.slot(name, p.bg.target(name))
	}
	return d
}

// upToDate is the rule by which a deploy skips a host: it is on the
// release, with the config the release gives it.
func upToDate(st drover.HostState, rel *drover.Release, desiredHash string) bool {
	return st.Release == rel.ID() && st.ConfigHash == desiredHash
}

// desired is the config hash a host that is up to date has. Blue/green
// renders it with the live colour's slot: that is what the host got when
// the release went live. A blue/green host with no live colour (deployed
// before with strategy rolling, or never) is never up to date: the deploy
// moves it into a colour.
func (p *fleetPlan) desired(rd *renderer, v *hostView) (string, bool, error) {
	if p.bg == nil {
		return p.hash(p.files[v.Host.Name]), true, nil
	}
	if v.State.Live == "" {
		return "", false, nil
	}
	files, err := rd.renderSlot(v.Host, p.bg.slot(v.Host.Name, v.State.Live))
	if err != nil {
		return "", false, err
	}
	return p.hash(files), true, nil
}

// hash is the config hash a host records for files (HostState.ConfigHash):
// the rendered files and the shared dirs linked into the slot.
func (p *fleetPlan) hash(files []drover.RenderedFile) string {
	return drover.SlotHash(files, p.sharedDirs)
}

// fingerprint identifies what this plan saw and decided: the release, and
// per target its state (links, release, config, colours), whether it
// answered, whether it is skipped and the config it would get. A deploy
// made from a saved plan (deploy --plan) refuses when its own plan has
// another fingerprint: a host changed, went away or came back, or
// drover.yaml now renders other config, since the plan was approved — as
// a Terraform plan file or `nomad job run -check-index` refuse.
func (p *fleetPlan) fingerprint() string {
	type hostPrint struct {
		Name                               string
		Reachable, Skip                    bool
		Current, Previous, Release, Config string
		Live, LiveDir, IdleColor, IdleSlot string
		IdleRunning                        bool
		Desired                            string
	}
	var hs []hostPrint
	for _, name := range sortedViewNames(p.views) {
		v := p.views[name]
		st := v.State
		hp := hostPrint{Name: name, Reachable: v.Err == nil, Skip: p.skip[name], Current: st.Current, Previous: st.Previous,
			Release: st.Release, Config: st.ConfigHash, Live: st.Live, LiveDir: st.LiveDir}
		if st.Idle != nil {
			hp.IdleColor, hp.IdleSlot, hp.IdleRunning = st.Idle.Color, st.Idle.Slot, st.Idle.Running
		}
		if v.Err == nil {
			hp.Desired = p.hash(p.files[name])
		}
		hs = append(hs, hp)
	}
	b, _ := json.Marshal(struct {
		Release string
		Hosts   []hostPrint
	}{p.rel.ID(), hs})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// checkFingerprint refuses a deploy from a saved plan whose fleet changed.
func (p *fleetPlan) checkFingerprint(want string) error {
	if want == "" || want == p.fingerprint() {
		return nil
	}
	return drover.Errorf(drover.EINVALID, "the fleet changed since the plan was made (a host's release, config or reachability, or drover.yaml), nothing was changed").
		WithHint("run `drover plan -o plan.json` again, review it, then deploy with --plan plan.json")
}

// behind lists the reachable hosts the deploy would change.
func (p *fleetPlan) behind() []string {
	var out []string
	for _, name := range sortedViewNames(p.views) {
		if p.views[name].Err == nil && !p.skip[name] {
			out = append(out, name)
		}
	}
	return out
}

// planColours decides each reachable host's new colour (the idle one) and
// which hosts keep their old colour running. A host whose keep_old window
// has not passed refuses the deploy: deploying into that colour would stop
// the instant way back the operator was promised. One past it is to be
// finalized first (expired).
func (r *Runner) planColours(bg *bgRun, views map[string]*hostView) (expired map[string]bool, refused error) {
	now := r.now()
	var kept []string
	expired = map[string]bool{}
	for _, name := range sortedViewNames(views) {
		v := views[name]
		if v.Err != nil {
			continue
		}
		if idle := v.State.Idle; idle != nil && idle.Running {
			if now.Before(idle.KeepUntil) {
				kept = append(kept, fmt.Sprintf("host %s keeps %s (%s) running until %s", name, idle.Color, orNone(idle.Version), idle.KeepUntil.Local().Format("2006-01-02 15:04:05")))
			} else {
				expired[name] = true
			}
		}
		bg.newColor[name] = idleColor(v.State)
	}
	if len(kept) > 0 {
		refused = drover.Errorf(drover.EINVALID, "the last blue/green deploy is not finalized, nothing was changed:\n  %s", strings.Join(kept, "\n  ")).
			WithHint("run `drover finalize` to stop the old colour (or `drover rollback` to switch back to it), then deploy")
	}
	return expired, refused
}

// runPlan is the rollout plan of one run and the hosts its record lists.
type runPlan struct {
	plan  rollout.Plan
	hosts []drover.DeployHost
	// groups is, per plan group, its index in the spec's groups; -1 for
	// the hosts no group of the spec names any more.
	groups []int
}

// layout lays hosts out in the spec's groups, in file order, each host in
// the first group that names it; hosts no group names (an old deploy's,
// recovered after drover.yaml changed) come last, one at a time. Deploy
// and restoreHosts build their runs with it, so both walk the fleet alike.
func (r *Runner) layout(mode rollout.Mode, before map[string]drover.Snapshot, skip map[string]bool) runPlan {
	rp := runPlan{plan: rollout.Plan{Mode: mode, StageParallelism: r.Spec.StageParallelism, Strategy: r.strategy()}}
	seen := map[string]bool{}
	for gi, g := range r.Spec.Groups {
		gp := rollout.GroupPlan{Name: g.Name, Batch: g.Batch, FailureLimit: g.FailureLimit}
		for _, name := range g.Hosts {
			snap, ok := before[name]
			if !ok || seen[name] {
				continue
			}
			seen[name] = true
			gp.Hosts = append(gp.Hosts, rollout.HostPlan{Name: name, From: fromLabel(snap), Skip: skip[name]})
			rp.hosts = append(rp.hosts, drover.DeployHost{Name: name, Group: g.Name, Before: snap, Skipped: skip[name]})
		}
		if len(gp.Hosts) > 0 {
			rp.plan.Groups = append(rp.plan.Groups, gp)
			rp.groups = append(rp.groups, gi)
		}
	}
	var orphans []string
	for name := range before {
		if !seen[name] {
			orphans = append(orphans, name)
		}
	}
	if len(orphans) > 0 {
		sort.Strings(orphans)
		gp := rollout.GroupPlan{Name: "(not in drover.yaml)", Batch: 1}
		for _, name := range orphans {
			gp.Hosts = append(gp.Hosts, rollout.HostPlan{Name: name, From: fromLabel(before[name]), Skip: skip[name]})
			rp.hosts = append(rp.hosts, drover.DeployHost{Name: name, Before: before[name], Skipped: skip[name]})
		}
		rp.plan.Groups = append(rp.plan.Groups, gp)
		rp.groups = append(rp.groups, -1)
	}
	return rp
}
