package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	// Reload reads the spec again (the dynamic inventory) after replace
	// hooks ran; nil keeps the spec.
	Reload func(ctx context.Context) (*drover.Spec, error)
}

// ConvergeOutcome is how a converge ended.
type ConvergeOutcome struct {
	Converged bool
	// Rounds is how many deploy rounds ran.
	Rounds int
	// Behind are the hosts still not on the release at the end.
	Behind []string
	// Replaced are the hosts whose replace hook ran, with its result.
	Replaced []Replacement
	// Deploys are the outcomes of each round's deploy.
	Deploys  []*Outcome
	ExitCode int
	Summary  string
}

// Replacement is one run of the replace hook.
type Replacement struct {
	Host string `json:"host"`
	// Error is why the hook failed; "" when it passed.
	Error string `json:"error,omitempty"`
}

// Converge deploys o.Release in rounds until every targeted host runs it
// or the converge budget is spent (rollout.Converge decides the rounds).
// Every round's deploy follows the normal safety rules: its own lock,
// stage everywhere first, canary and batches, failure limits and
// rollback. A round whose deploy needs a person ends the converge: more
// rounds on top of a fleet nobody can vouch for would bury the problem.
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
	cs := r.Spec.Converge
	seed := r.Spec.Seed
	if seed == 0 {
		for _, c := range r.newID() {
			seed = seed*31 + int64(c)
		}
	}
	conv := rollout.NewConverge(rollout.ConvergePolicy{
		MaxRounds: cmpOr(cs.MaxAttempts, drover.DefaultConvergeAttempts),
		Wait:      cmpOr(cs.Wait, drover.DefaultConvergeWait),
		MaxWait:   cmpOr(cs.MaxWait, drover.DefaultConvergeMaxWait),
		// Without a replace hook nothing is replaced.
		ReplaceAfter: map[bool]int{true: cmpOr(cs.ReplaceAfter, drover.DefaultReplaceAfterRounds)}[r.Spec.Hooks.Replace != ""],
		Seed:         seed,
	})
	out := &ConvergeOutcome{}
	start := r.now()
	for {
		targets, err := SelectHosts(r.Spec, o.Limit)
		if err != nil {
			return r.convergeStop(out, start, err)
		}
		behind, err := r.behind(ctx, o.Release, targets)
		if err != nil {
			return r.convergeStop(out, start, err)
		}
		st := conv.Next(behind)
		if st.Done {
			out.Converged, out.Behind = st.Converged, st.Behind
			out.ExitCode = drover.ExitOK
			if !st.Converged {
				out.ExitCode = drover.ExitNeedsPerson
			}
			out.Summary = r.convergeSummary(out, o.Release, len(targets), start)
			return out, nil
		}
		out.Rounds = st.Round
		r.emit(drover.Event{Kind: drover.EventNotice, Message: fmt.Sprintf("round %d/%d: %d of %d hosts not on %s (%s); deploying",
			st.Round, st.Rounds, len(st.Behind), len(targets), o.Release.Version(), strings.Join(st.Behind, " "))})
		if len(st.Replace) > 0 {
			for _, h := range st.Replace {
				out.Replaced = append(out.Replaced, r.replace(ctx, h, o.Release))
			}
			if o.Reload != nil {
				spec, err := o.Reload(ctx)
				if err != nil {
					return r.convergeStop(out, start, fmt.Errorf("reading the inventory again after replacing %s: %w", strings.Join(st.Replace, " "), err))
				}
				r.Spec = spec
			}
			// A replaced host that left the inventory is no longer
			// deployed to.
			st.Deploy = slices.DeleteFunc(st.Deploy, func(h string) bool { _, ok := r.Spec.Host(h); return !ok })
			if len(st.Deploy) == 0 {
				continue
			}
		}
		dep, err := r.Deploy(ctx, DeployOptions{Release: o.Release, Limit: strings.Join(st.Deploy, ","), Message: o.Message})
		if err != nil {
			return r.convergeStop(out, start, err)
		}
		out.Deploys = append(out.Deploys, dep)
		r.emit(drover.Event{Deploy: dep.DeployID, Kind: drover.EventNotice, Message: fmt.Sprintf("round %d/%d: %s", st.Round, st.Rounds, dep.Summary)})
		if dep.ExitCode == drover.ExitNeedsPerson {
			out.ExitCode = drover.ExitNeedsPerson
			out.Behind = st.Deploy
			out.Summary = fmt.Sprintf("converge stopped in round %d: the deploy needs a person (%s)", st.Round, dep.DeployID)
			return out, nil
		}
		if ctx.Err() != nil {
			return r.convergeStop(out, start, context.Cause(ctx))
		}
		if st.Wait > 0 {
			if err := r.sleep(ctx, st.Wait); err != nil {
				return r.convergeStop(out, start, context.Cause(ctx))
			}
		}
	}
}

// convergeStop ends a converge on an error: returned as is before the
// first round deployed anything, else as an outcome that needs a person.
func (r *Runner) convergeStop(out *ConvergeOutcome, start time.Time, err error) (*ConvergeOutcome, error) {
	if len(out.Deploys) == 0 && len(out.Replaced) == 0 {
		return nil, err
	}
	out.ExitCode = drover.ExitNeedsPerson
	out.Summary = fmt.Sprintf("converge stopped after %d rounds in %s: %v", out.Rounds, r.now().Sub(start).Round(100*time.Millisecond), err)
	return out, nil
}

func (r *Runner) convergeSummary(out *ConvergeOutcome, rel *drover.Release, total int, start time.Time) string {
	took := r.now().Sub(start).Round(100 * time.Millisecond)
	var s string
	if out.Converged {
		s = fmt.Sprintf("converged in %d rounds (%s): %d of %d hosts on %s", out.Rounds, took, total, total, rel.Version())
	} else {
		s = fmt.Sprintf("did not converge in %d rounds (%s): %d of %d hosts not on %s (%s)", out.Rounds, took, len(out.Behind), total, rel.Version(), strings.Join(out.Behind, " "))
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

// behind surveys targets and returns the hosts not on rel with the config
// it renders for them, and those that cannot be read.
func (r *Runner) behind(ctx context.Context, rel *drover.Release, targets map[string]bool) ([]string, error) {
	desired, err := r.desiredConfig(rel, targets)
	if err != nil {
		return nil, err
	}
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	views := r.survey(ctx, cs, targets)
	if err := refusedHosts(views); err != nil {
		return nil, err
	}
	var out []string
	for name, v := range views {
		if v.Err != nil || v.State.Release != rel.ID() || v.State.ConfigHash != desired[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
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
