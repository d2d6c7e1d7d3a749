package runner

import (
	"context"
	"path"

	"drover"
	"drover/internal/textdiff"
)

// PlanResult is what `drover plan` shows: what a deploy would do per host.
type PlanResult struct {
	Service string      `json:"service"`
	Env     string      `json:"env,omitempty"`
	Release string      `json:"release"`
	Version string      `json:"version"`
	Groups  []PlanGroup `json:"groups"`
}

// PlanGroup is one group of a plan.
type PlanGroup struct {
	Name         string     `json:"name"`
	Batch        int        `json:"batch"`
	FailureLimit int        `json:"failure_limit"`
	Hosts        []PlanHost `json:"hosts"`
}

// PlanHost is one host of a plan.
type PlanHost struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Current   string `json:"current"`
	Version   string `json:"version"`
	// Foreign is set when Current is another tool's release.
	Foreign *drover.Foreign `json:"foreign,omitempty"`
	// Action is deploy, skip (already on the release) or unreachable.
	Action string     `json:"action"`
	Diffs  []FileDiff `json:"diffs,omitempty"`
}

// FileDiff is one config file's unified diff against what is live.
type FileDiff struct {
	Dest string `json:"dest"`
	Diff string `json:"diff"`
}

// Plan says what Deploy would do with o, and changes nothing: no lock, no
// journal, no host writes — only state.json and live config are read.
func (r *Runner) Plan(ctx context.Context, o DeployOptions) (*PlanResult, error) {
	targets, err := SelectHosts(r.Spec, o.Limit)
	if err != nil {
		return nil, err
	}
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	fp, err := r.planFleet(ctx, cs, o.Release, targets, o.Force)
	if err == nil {
		err = fp.refused // the deploy would refuse: so does its plan
	}
	if err != nil {
		return nil, err
	}
	res := &PlanResult{Service: r.Spec.Service, Env: r.Spec.Env, Release: o.Release.ID(), Version: o.Release.Version()}
	for _, g := range r.Spec.Groups {
		pg := PlanGroup{Name: g.Name, Batch: g.Batch, FailureLimit: g.FailureLimit}
		for _, name := range g.Hosts {
			if !targets[name] {
				continue
			}
			v := fp.views[name]
			ph := PlanHost{Name: name, Address: v.Host.Address, Reachable: v.Err == nil, Current: v.State.Current, Version: v.State.Version, Foreign: v.State.Snapshot().Foreign}
			switch {
			case v.Err != nil:
				ph.Action = "unreachable"
				ph.Error = v.Err.Error()
			case fp.skip[name]:
				ph.Action = "skip"
			default:
				ph.Action = "deploy"
				ph.Diffs = r.configDiffs(ctx, cs, name, v.State, fp.files[name])
			}
			pg.Hosts = append(pg.Hosts, ph)
		}
		if len(pg.Hosts) > 0 {
			res.Groups = append(res.Groups, pg)
		}
	}
	return res, nil
}

func (r *Runner) configDiffs(ctx context.Context, cs *conns, host string, st drover.HostState, files []drover.RenderedFile) []FileDiff {
	var out []FileDiff
	conn, err := cs.get(ctx, host)
	if err != nil {
		return nil
	}
	for _, f := range files {
		live := ""
		if st.Current != "" {
			b, err := conn.ReadFile(ctx, path.Join("releases", st.Current, f.Dest))
			if err == nil {
				live = string(b)
			}
		}
		d := textdiff.Unified(path.Join(host, "current", f.Dest)+" (live)", path.Join(host, f.Dest)+" (new)", live, string(f.Content), 3)
		if d != "" {
			out = append(out, FileDiff{Dest: f.Dest, Diff: d})
		}
	}
	return out
}
