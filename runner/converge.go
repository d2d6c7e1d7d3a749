package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"drover"
	"drover/rollout"
)

// ConvergeOptions are the inputs of `drover converge`.
type ConvergeOptions struct {
	Release *drover.Release
	// Limit narrows the hosts that must converge (see SelectHosts).
	Limit   string
	Message string
	// Overrides apply to every round of this converge run (and are
	// recorded with each round's deploy), never to a later run.
	Overrides []drover.Override
	// Reload reads the spec again (the dynamic inventory) after replace
	// hooks ran; nil keeps the spec.
	Reload func(ctx context.Context) (*drover.Spec, error)
}

// ConvergeOutcome is how a converge ended.
type ConvergeOutcome struct {
	Converged bool
	// End says why it ended: converged, exhausted (the rounds ran out with
	// hosts left) or halted (a round's deploy halted: the release is bad).
	End rollout.ConvergeEnd
	// HaltReason is the halted round's reason.
	HaltReason string
	// Rounds is how many deploy rounds ran.
	Rounds int
	// On are the targeted hosts on the release at the end.
	On []string
	// Behind are the hosts still not on the release at the end; Left
	// says, for each, its last cause and the rounds it was tried in.
	Behind []string
	Left   []rollout.HostLeft
	// Replaced are the hosts whose replace hook ran, with its result.
	Replaced []Replacement
	// Deploys are the outcomes of each round's deploy.
	Deploys  []*Outcome
	ExitCode int
	Summary  string
}

// Replacement is one run of the replace hook.
type Replacement struct {
	Host  string `json:"host"`
	Round int    `json:"round"`
	// Error is why the hook failed; "" when it passed.
	Error string `json:"error,omitempty"`
	// Address is the host's address once the inventory was read again;
	// "" when the host left the inventory.
	Address string `json:"address,omitempty"`
	// Joined are the hosts new to the inventory after the round's replace
	// hooks: what replaced a host that left it.
	Joined []string `json:"joined,omitempty"`
}

// By says in words what replaced the host.
func (rp Replacement) By() string {
	switch {
	case rp.Error != "":
		return "replace hook FAILED: " + rp.Error
	case rp.Address != "" && len(rp.Joined) == 0:
		return "replaced, at " + rp.Address
	case rp.Address != "":
		return "replaced, at " + rp.Address + "; new in the inventory: " + strings.Join(rp.Joined, " ")
	case len(rp.Joined) > 0:
		return "replaced by " + strings.Join(rp.Joined, " ")
	}
	return "replaced; it left the inventory and no host joined"
}

// Converge deploys o.Release in rounds until every targeted host runs it
// or the converge budget is spent (rollout.Converge decides the rounds).
// Every round's deploy follows the normal safety rules: its own lock,
// stage everywhere first, canary and batches, failure limits and
// rollback.
//
// Host trouble keeps the loop going; release trouble stops it. A host that
// failed, got stuck on its restore path or did not answer is not on the
// release: it is tried again next round (not answering: skipped until it
// answers or is replaced). A round whose deploy halted — past a failure
// limit, at a gate — ends the converge with the deploy's exit code:
// deploying a bad release again round after round is what a super-loop
// must never do.
//
// It returns an error only when the first round touched nothing (bad
// input, the lock is held); from then on the outcome says how it ended.
func (r *Runner) Converge(ctx context.Context, o ConvergeOptions) (*ConvergeOutcome, error) {
	if o.Release == nil {
		return nil, drover.Errorf(drover.EINVALID, "no release given").WithHint("pass --release DIR or --release BUNDLE.tar.gz")
	}
	if _, err := SelectHosts(r.Spec, o.Limit); err != nil {
		return nil, err
	}
	// Refused (requires:) before the first round, as deploy refuses it.
	if _, err := r.checkPromotion(ctx, o.Release); err != nil {
		return nil, err
	}
	conv := rollout.NewConverge(r.convergePolicy())
	out := &ConvergeOutcome{}
	start := r.now()
	haltExit := drover.ExitRolledBack
	for {
		targets, err := SelectHosts(r.Spec, o.Limit)
		if err != nil {
			return r.convergeStop(out, start, err)
		}
		behind, down, err := r.behind(ctx, o.Release, targets)
		if err != nil {
			return r.convergeStop(out, start, err)
		}
		names := make([]string, 0, len(targets))
		for name := range targets {
			names = append(names, name)
		}
		st := conv.Next(rollout.ConvergeSurvey{Behind: behind, Unreachable: down, Targets: names})
		if st.Done {
			return r.convergeEnd(out, conv, st, o.Release, targets, haltExit, start), nil
		}
		out.Rounds = st.Round
		r.emit(drover.Event{Kind: drover.EventNotice, Message: fmt.Sprintf("round %d/%d: %d of %s not on %s (%s); deploying",
			st.Round, st.Rounds, len(st.Behind), plural(len(targets), "host"), o.Release.Version(), strings.Join(st.Behind, " "))})
		for _, h := range st.Skipped {
			r.emit(drover.Event{Kind: drover.EventNotice, Host: h, Message: fmt.Sprintf("round %d: not deploying to %s, it does not answer (%s); it is tried again next round", st.Round, h, down[h])})
		}
		causes := map[string]string{}
		var joined []string
		if len(st.Replace) > 0 {
			if joined, err = r.replaceRound(ctx, o, &st, out, causes); err != nil {
				return r.convergeStop(out, start, err)
			}
		}
		halted, exit, err := r.deployRound(ctx, o, st, out, causes, joined, conv)
		if err != nil {
			return r.convergeStop(out, start, err)
		}
		if halted {
			haltExit = exit
		}
		if ctx.Err() != nil {
			return r.convergeStop(out, start, context.Cause(ctx))
		}
		if st.Wait > 0 && !halted {
			if err := r.sleep(ctx, st.Wait); err != nil {
				return r.convergeStop(out, start, context.Cause(ctx))
			}
		}
	}
}

// convergePolicy is the spec's converge: block, with defaults.
func (r *Runner) convergePolicy() rollout.ConvergePolicy {
	cs := r.Spec.Converge
	seed := r.Spec.Seed
	if seed == 0 {
		for _, c := range r.newID() {
			seed = seed*31 + int64(c)
		}
	}
	return rollout.ConvergePolicy{
		MaxRounds: cmpOr(cs.MaxAttempts, drover.DefaultConvergeAttempts),
		Wait:      cmpOr(cs.Wait, drover.DefaultConvergeWait),
		MaxWait:   cmpOr(cs.MaxWait, drover.DefaultConvergeMaxWait),
		// Without a replace hook nothing is replaced.
		ReplaceAfter: map[bool]int{true: cmpOr(cs.ReplaceAfter, drover.DefaultReplaceAfterRounds)}[r.Spec.Hooks.Replace != ""],
		Seed:         seed,
	}
}

// convergeEnd is the outcome of a converge whose policy said it is done.
func (r *Runner) convergeEnd(out *ConvergeOutcome, conv *rollout.Converge, st rollout.ConvergeStep, rel *drover.Release, targets map[string]bool, haltExit int, start time.Time) *ConvergeOutcome {
	out.End, out.Converged, out.HaltReason = st.End, st.Converged, conv.HaltReason()
	out.Behind, out.Left = st.Behind, conv.Left(st.Behind)
	for name := range targets {
		if !slices.Contains(st.Behind, name) {
			out.On = append(out.On, name)
		}
	}
	slices.Sort(out.On)
	switch st.End {
	case rollout.ConvergeConverged:
		out.ExitCode = drover.ExitOK
	case rollout.ConvergeHalted:
		out.ExitCode = haltExit
	default:
		out.ExitCode = drover.ExitNeedsPerson
	}
	out.Summary = r.convergeSummary(out, rel, len(targets), start)
	return out
}

// replaceRound runs the replace hook of the round's hosts to replace,
// reads the inventory again and waits for the replacements to boot. It
// returns the hosts that joined the inventory; st.Deploy becomes the hosts
// to deploy to now, causes says why a host is left out.
func (r *Runner) replaceRound(ctx context.Context, o ConvergeOptions, st *rollout.ConvergeStep, out *ConvergeOutcome, causes map[string]string) ([]string, error) {
	var joined []string
	before := map[string]bool{}
	for _, h := range r.Spec.Hosts {
		before[h.Name] = true
	}
	var reps []Replacement
	for _, h := range st.Replace {
		rp := r.replace(ctx, h, o.Release)
		rp.Round = st.Round
		reps = append(reps, rp)
	}
	if o.Reload != nil {
		spec, err := o.Reload(ctx)
		if err != nil {
			out.Replaced = append(out.Replaced, reps...)
			return nil, fmt.Errorf("reading the inventory again after replacing %s: %w", strings.Join(st.Replace, " "), err)
		}
		r.Spec = spec
	}
	now, _ := SelectHosts(r.Spec, o.Limit)
	for name := range now {
		if !before[name] {
			joined = append(joined, name)
		}
	}
	slices.Sort(joined)
	for i := range reps {
		if h, ok := r.Spec.Host(reps[i].Host); ok {
			reps[i].Address = h.Address
		}
		reps[i].Joined = joined
	}
	out.Replaced = append(out.Replaced, reps...)
	// A replaced host that left the inventory is no longer
	// deployed to; the hosts that joined it are.
	st.Deploy = slices.DeleteFunc(st.Deploy, func(h string) bool { _, ok := r.Spec.Host(h); return !ok })
	st.Deploy = append(st.Deploy, joined...)
	// A replacement may still be booting: wait for it to answer
	// rather than count a VM that is seconds away from up as a
	// failed round.
	var booting []string
	for _, h := range append(slices.Clone(st.Replace), joined...) {
		if slices.Contains(st.Deploy, h) {
			booting = append(booting, h)
		}
	}
	for h, err := range r.waitBoot(ctx, booting) {
		causes[h] = err.Error()
		st.Deploy = slices.DeleteFunc(st.Deploy, func(n string) bool { return n == h })
	}
	return joined, nil
}

// deployRound deploys to the round's hosts and tells the policy how the
// round ended. halted says a deploy halted, with its exit code.
func (r *Runner) deployRound(ctx context.Context, o ConvergeOptions, st rollout.ConvergeStep, out *ConvergeOutcome, causes map[string]string, joined []string, conv *rollout.Converge) (halted bool, exit int, err error) {
	if len(st.Deploy) > 0 {
		dep, err := r.Deploy(ctx, DeployOptions{Release: o.Release, Limit: strings.Join(st.Deploy, ","), Message: o.Message, Overrides: o.Overrides,
			// A host the last round left stuck may read as on the
			// release; its checks never passed.
			Force: len(st.Force) > 0})
		if err != nil {
			return false, 0, err
		}
		if dep.Kind != drover.KindDeploy {
			// An interrupted deploy found before this round could not
			// be put back: deploying on top of it would bury it.
			out.Deploys = append(out.Deploys, dep)
			return false, 0, fmt.Errorf("%s", dep.Summary)
		}
		out.Deploys = append(out.Deploys, dep)
		r.emit(drover.Event{Deploy: dep.DeployID, Kind: drover.EventNotice, Message: fmt.Sprintf("round %d/%d: %s", st.Round, st.Rounds, dep.Summary)})
		for _, h := range dep.Report.Hosts {
			if h.Status != rollout.HostDone && h.Status != rollout.HostSkipped {
				causes[h.Name] = hostCause(h, dep.DeployID)
			}
		}
		if dep.Report.HaltReason != "" {
			halted, exit = true, dep.ExitCode
		}
		conv.Ended(rollout.ConvergeRound{Halted: dep.Report.HaltReason, Causes: causes, Joined: joined})
	} else {
		conv.Ended(rollout.ConvergeRound{Causes: causes, Joined: joined})
	}
	return halted, exit, nil
}

// hostCause says why a host did not end a round's deploy on the release.
func hostCause(h rollout.HostReport, deployID string) string {
	s := strings.ReplaceAll(string(h.Status), "_", " ")
	if h.Status == rollout.HostStuck {
		s = "stuck (failed on its restore path)"
	}
	if h.Reason != "" {
		s += ": " + h.Reason
	}
	return s + " (" + deployID + ")"
}

// waitBoot waits, with growing pauses, until each of hosts answers or
// converge.boot_timeout has been spent waiting, and returns why each one
// that never answered did not. The time is counted in pauses taken, so a
// test's Sleep replays it.
func (r *Runner) waitBoot(ctx context.Context, hosts []string) map[string]error {
	failed := map[string]error{}
	if len(hosts) == 0 {
		return failed
	}
	timeout := cmpOr(r.Spec.Converge.BootTimeout, drover.DefaultConvergeBootTimeout)
	pause := min(time.Second, max(timeout/20, 10*time.Millisecond))
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	pending := slices.Clone(hosts)
	waited := time.Duration(0)
	for {
		var mu sync.Mutex
		errs := map[string]error{}
		forEach(pending, r.Spec.StageParallelism, func(name string) {
			pctx, cancel := context.WithTimeout(ctx, r.Spec.StepTimeout)
			defer cancel()
			conn, err := cs.get(pctx, name)
			if err == nil {
				_, err = conn.State(pctx)
			}
			if err != nil {
				cs.drop(name)
				mu.Lock()
				errs[name] = err
				mu.Unlock()
			}
		})
		for _, h := range pending {
			if errs[h] == nil && waited > 0 {
				r.emit(drover.Event{Kind: drover.EventNotice, Host: h, Step: "replace", Message: fmt.Sprintf("%s answers after its replace (waited %s)", h, waited)})
			}
		}
		if waited == 0 {
			for _, h := range pending {
				if errs[h] != nil {
					r.emit(drover.Event{Kind: drover.EventNotice, Host: h, Step: "replace", Message: fmt.Sprintf("%s does not answer yet after its replace (%v); waiting up to %s for it to boot", h, errs[h], timeout)})
				}
			}
		}
		pending = slices.DeleteFunc(pending, func(h string) bool { return errs[h] == nil })
		if len(pending) == 0 {
			return failed
		}
		d := min(pause, timeout-waited)
		if d <= 0 || ctx.Err() != nil {
			for _, h := range pending {
				failed[h] = fmt.Errorf("unreachable: did not answer within converge.boot_timeout %s after its replace: %w", timeout, errs[h])
			}
			return failed
		}
		if err := r.sleep(ctx, d); err != nil {
			for _, h := range pending {
				failed[h] = fmt.Errorf("unreachable: interrupted while waiting for it to boot: %w", errs[h])
			}
			return failed
		}
		waited += d
		pause = min(pause*2, 15*time.Second)
	}
}

// convergeStop ends a converge on an error: returned as is before the
// first round deployed anything, else as an outcome that needs a person.
func (r *Runner) convergeStop(out *ConvergeOutcome, start time.Time, err error) (*ConvergeOutcome, error) {
	if len(out.Deploys) == 0 && len(out.Replaced) == 0 {
		return nil, err
	}
	out.ExitCode = drover.ExitNeedsPerson
	out.Summary = fmt.Sprintf("converge stopped after %s in %s: %v", plural(out.Rounds, "round"), r.now().Sub(start).Round(100*time.Millisecond), err)
	return out, nil
}

func (r *Runner) convergeSummary(out *ConvergeOutcome, rel *drover.Release, total int, start time.Time) string {
	took := r.now().Sub(start).Round(100 * time.Millisecond)
	var s string
	switch out.End {
	case rollout.ConvergeConverged:
		s = fmt.Sprintf("converged in %s (%s): %d of %s on %s", plural(out.Rounds, "round"), took, total, plural(total, "host"), rel.Version())
	case rollout.ConvergeHalted:
		s = fmt.Sprintf("converge stopped in round %d (%s): the release was halted (%s); %d of %s on %s", out.Rounds, took, out.HaltReason, len(out.On), plural(total, "host"), rel.Version())
		if len(out.Behind) > 0 {
			s += fmt.Sprintf(", %d not (%s)", len(out.Behind), strings.Join(out.Behind, " "))
		}
	default:
		s = fmt.Sprintf("did not converge in %s (%s): %d of %s not on %s (%s)", plural(out.Rounds, "round"), took, len(out.Behind), plural(total, "host"), rel.Version(), strings.Join(out.Behind, " "))
	}
	if len(out.Replaced) > 0 {
		var names []string
		for _, rp := range out.Replaced {
			names = append(names, rp.Host)
		}
		s += "; replaced " + strings.Join(names, " ")
	}
	return s
}

// behind surveys targets and returns the hosts on another release or
// config than rel's, and those that did not answer with why.
func (r *Runner) behind(ctx context.Context, rel *drover.Release, targets map[string]bool) ([]string, map[string]string, error) {
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	// The deploy's own planner: a host the deploy would skip is not
	// behind, or a converge would deploy to it round after round.
	fp, err := r.planFleet(ctx, cs, rel, targets, false)
	if err != nil {
		return nil, nil, err
	}
	down := map[string]string{}
	for name, v := range fp.views {
		if v.Err != nil {
			down[name] = v.Err.Error()
		}
	}
	return fp.behind(), down, nil
}

// replace runs the replace hook for host on this machine, in the config
// file's directory, under the hook timeout. Its templates see the host as
// the inventory last described it and the release being converged to.
func (r *Runner) replace(ctx context.Context, host string, rel *drover.Release) Replacement {
	rp := Replacement{Host: host}
	h, _ := r.Spec.Host(host)
	fail := func(err error) Replacement {
		rp.Error = err.Error()
		r.emit(drover.Event{Kind: drover.EventNotice, Host: host, Step: "replace", Message: "replace hook failed: " + rp.Error})
		return rp
	}
	cmd, err := drover.RenderCommand("hooks.replace", r.Spec.Hooks.Replace, drover.NewTemplateData(r.Spec, h, rel.ID(), rel.Version()))
	if err != nil {
		return fail(err)
	}
	timeout := cmpOr(r.Spec.Hooks.Timeout, drover.DefaultHookTimeout)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r.emit(drover.Event{Kind: drover.EventNotice, Host: host, Step: "replace", Message: "running the replace hook on this machine"})
	env := append(os.Environ(), "DROVER_SERVICE="+r.Spec.Service, "DROVER_ENV="+r.Spec.Env, "DROVER_HOST="+host, "DROVER_ADDRESS="+h.Address, "DROVER_RELEASE="+rel.ID(), "DROVER_VERSION="+rel.Version())
	res, err := runController(hctx, cmd, specDir(r.Spec), env)
	if err != nil {
		return fail(err)
	}
	if res.exitCode != 0 {
		return fail(fmt.Errorf("exited %d: %s", res.exitCode, tail(res.stderr+res.stdout, 300)))
	}
	r.emit(drover.Event{Kind: drover.EventNotice, Host: host, Step: "replace", Message: "replace hook done"})
	return rp
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// specDir is the directory of the spec's config file, where commands on
// this machine run (like executor.controllerDir).
func specDir(s *drover.Spec) string {
	dir, err := filepath.Abs(filepath.Dir(s.Source))
	if err != nil {
		return "."
	}
	return dir
}
