package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

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
	// Fingerprint identifies the fleet as the plan saw it and what it
	// decided; `deploy --plan` refuses when the fleet no longer matches.
	Fingerprint string `json:"fingerprint"`
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
	// Files is how the release's files change against the live release
	// (its manifest against the new one); nil when not deploying.
	Files *ReleaseFiles `json:"files,omitempty"`
	// Validated says the host ran the config files' validate commands on
	// the new release in a scratch directory (drover.Validator);
	// ValidateError is why they failed: the deploy would fail staging
	// there.
	Validated     bool   `json:"validated,omitempty"`
	ValidateError string `json:"validate_error,omitempty"`
}

// ReleaseFiles is how a deploy changes a host's release files: paths
// added, removed and changed (content, mode or link target), from the
// live release's manifest to the new one's.
type ReleaseFiles struct {
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
	// Unknown says why the live release's files could not be compared
	// (another tool's release has no manifest).
	Unknown string `json:"unknown,omitempty"`
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
	// A release the deploy would refuse (requires:) has no plan.
	if _, err := r.checkPromotion(ctx, o.Release); err != nil {
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
	manifests := liveManifests{}
	validated := r.validateAll(ctx, cs, fp)
	res := &PlanResult{Service: r.Spec.Service, Env: r.Spec.Env, Release: o.Release.ID(), Version: o.Release.Version(), Fingerprint: fp.fingerprint()}
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
				ph.Files = manifests.diff(ctx, cs, name, v.State, o.Release.Manifest)
				if err, ok := validated[name]; ok {
					ph.Validated = true
					if err != nil {
						ph.ValidateError = err.Error()
					}
				}
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

// liveManifests caches the manifests of live releases by slot: a fleet on
// one release is read once per host only until the first answer.
type liveManifests map[string]*drover.Manifest

// diff compares host's live release manifest with m.
func (lm liveManifests) diff(ctx context.Context, cs *conns, host string, st drover.HostState, m drover.Manifest) *ReleaseFiles {
	if st.Current == "" {
		rf := &ReleaseFiles{}
		for _, f := range m.Files {
			rf.Added = append(rf.Added, f.Path)
		}
		return rf
	}
	if st.IsForeign(st.Current) {
		return &ReleaseFiles{Unknown: "the live release is another tool's, without a manifest"}
	}
	live, ok := lm[st.Current]
	if !ok {
		conn, err := cs.get(ctx, host)
		var b []byte
		if err == nil {
			b, err = conn.ReadFile(ctx, path.Join("releases", st.Current, drover.ManifestName))
		}
		var man drover.Manifest
		if err == nil {
			err = json.Unmarshal(b, &man)
		}
		if err != nil {
			return &ReleaseFiles{Unknown: fmt.Sprintf("reading the live release's manifest: %v", err)}
		}
		live, lm[st.Current] = &man, &man
	}
	return diffManifests(*live, m)
}

// diffManifests lists the files that differ between two releases.
func diffManifests(from, to drover.Manifest) *ReleaseFiles {
	old := map[string]drover.ManifestFile{}
	for _, f := range from.Files {
		old[f.Path] = f
	}
	rf := &ReleaseFiles{}
	for _, f := range to.Files {
		o, ok := old[f.Path]
		switch {
		case !ok:
			rf.Added = append(rf.Added, f.Path)
		case o.SHA256 != f.SHA256 || o.Mode != f.Mode || o.Link != f.Link || o.Size != f.Size:
			rf.Changed = append(rf.Changed, f.Path)
		}
		delete(old, f.Path)
	}
	for p := range old {
		rf.Removed = append(rf.Removed, p)
	}
	sort.Strings(rf.Removed)
	return rf
}

// validateAll runs the validate commands of the release's config files on
// every host the deploy would change, each in a scratch directory its host
// removes (drover.Validator), as many hosts at once as staging does. It
// returns each validated host's error (nil: passed); a host whose
// transport cannot validate without staging is left out.
func (r *Runner) validateAll(ctx context.Context, cs *conns, fp *fleetPlan) map[string]error {
	out := map[string]error{}
	validates := false
	for _, cf := range r.Spec.ConfigFiles {
		validates = validates || strings.TrimSpace(cf.Validate) != ""
	}
	if !validates {
		return out
	}
	var mu sync.Mutex
	forEach(fp.behind(), r.Spec.StageParallelism, func(name string) {
		vctx, cancel := context.WithTimeout(ctx, r.Spec.StepTimeout)
		defer cancel()
		conn, err := cs.get(vctx, name)
		if err != nil {
			return
		}
		v, ok := conn.(drover.Validator)
		if !ok {
			return
		}
		_, err = v.Validate(vctx, drover.StageRequest{DeployID: "plan", Release: fp.rel, ConfigFiles: r.Spec.ConfigFiles, Data: fp.data(r.Spec, name), SharedDirs: r.Spec.SharedDirs})
		mu.Lock()
		out[name] = err
		mu.Unlock()
	})
	return out
}
