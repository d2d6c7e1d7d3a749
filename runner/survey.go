package runner

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"drover"
)

// hostView is what a survey found on a host before anything changed.
type hostView struct {
	Host  drover.Host
	State drover.HostState
	// Err is set when the host could not be read (usually unreachable).
	Err error
}

// sweepParallelism bounds the hosts a survey or a prune works on at once.
// It is not stage_parallelism, which bounds the bundles in flight: a
// survey only reads state.json, a prune removes directories on each host's
// own disk, and what is costly in either — the SSH handshake — the
// transport bounds itself (ssh.connect_parallelism, 32 by default).
// Bounded by the 16 hosts of stage_parallelism, a 20-host deploy connected
// and probed 16 hosts and the last 4 only once one of the first had
// answered (a whole connect and probe more before the first event), and
// pruned in two rounds after its verdict (bench/README.md).
const sweepParallelism = 256

// survey reads state.json on every target, in parallel.
func (r *Runner) survey(ctx context.Context, cs *conns, targets map[string]bool) map[string]*hostView {
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	var mu sync.Mutex
	views := make(map[string]*hostView, len(names))
	forEach(names, max(r.Spec.StageParallelism, sweepParallelism), func(name string) {
		h, _ := cs.host(name)
		v := &hostView{Host: h}
		sctx, cancel := context.WithTimeout(ctx, r.Spec.StepTimeout)
		defer cancel()
		conn, err := cs.get(sctx, name)
		if err == nil {
			v.State, err = conn.State(sctx)
		}
		if err != nil {
			v.Err = err
			cs.drop(name)
		}
		mu.Lock()
		views[name] = v
		mu.Unlock()
	})
	return views
}

// FleetStatus is what `drover status --json` prints.
type FleetStatus struct {
	Service string       `json:"service"`
	Env     string       `json:"env,omitempty"`
	Hosts   []HostStatus `json:"hosts"`
}

// HostStatus is one host in FleetStatus.
type HostStatus struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Group     string `json:"group"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Release   string `json:"release"`
	Version   string `json:"version"`
	Previous  string `json:"previous"`
	// Foreign is set when Release is another tool's release (Capistrano,
	// Scap, Ansible): how current points at it and its content hash.
	Foreign *drover.Foreign `json:"foreign,omitempty"`
	// PreviousForeign says Previous is another tool's release.
	PreviousForeign bool `json:"previous_foreign,omitempty"`
	// PreviousForeignTarget is, for a foreign Previous (what `drover
	// rollback` goes to), how current pointed at it and its content hash:
	// the link a rollback puts back.
	PreviousForeignTarget *drover.Foreign `json:"previous_foreign_target,omitempty"`
	// Unadopted is set when current is a live directory (or a link out of
	// releases/): deploys refuse the host until `drover adopt`.
	Unadopted  bool      `json:"unadopted,omitempty"`
	DeployedAt time.Time `json:"deployed_at"`
	DeployID   string    `json:"deploy_id,omitempty"`
	// ConfigHash is the hash of the host's rendered config files.
	ConfigHash string `json:"config_hash,omitempty"`
}

// Status reads every host's state.json.
func (r *Runner) Status(ctx context.Context) (*FleetStatus, error) {
	all, _ := SelectHosts(r.Spec, "")
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	views := r.survey(ctx, cs, all)
	st := &FleetStatus{Service: r.Spec.Service, Env: r.Spec.Env, Hosts: []HostStatus{}}
	for _, h := range r.Spec.Hosts {
		v := views[h.Name]
		hs := HostStatus{Name: h.Name, Address: h.Address, Group: h.Group, Reachable: v.Err == nil,
			Release: v.State.Current, Version: v.State.Version, Previous: v.State.Previous,
			DeployedAt: deployedAt(v.State), DeployID: v.State.DeployID, ConfigHash: v.State.ConfigHash}
		if v.Err != nil {
			hs.Error = v.Err.Error()
		}
		hs.Foreign = v.State.Snapshot().Foreign
		hs.PreviousForeign = v.State.IsForeign(v.State.Previous)
		if hs.PreviousForeign {
			f := v.State.Foreign[v.State.Previous]
			hs.PreviousForeignTarget = &f
		}
		hs.Unadopted = v.State.LiveDir != ""
		st.Hosts = append(st.Hosts, hs)
	}
	return st, nil
}

// refusedHosts returns the errors of every host the survey refused for a
// reason a person must settle (its SSH host key is unknown or changed, it
// needs a drover built for its architecture), joined so each is printed
// with its own hint, and nil when there is none. Their code is EINVALID
// (exit 2). Such a host refuses the whole deploy before anything is
// staged: rolling out around a host that may be an impostor would bury the
// warning under a deploy's output, and the fix is the operator's.
//
// A host whose current is a live directory, not a link into releases/, is
// refused too (unadopted): a deploy would have no release to put back if
// it failed, and the host would be left serving nothing.
func refusedHosts(views map[string]*hostView) error {
	var names []string
	for name, v := range views {
		if drover.ErrorCode(v.Err) == drover.EINVALID || (v.Err == nil && v.State.LiveDir != "") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if v := views[n]; v.Err != nil {
			errs = append(errs, v.Err)
		} else {
			errs = append(errs, unadopted(n, v.State))
		}
	}
	return errors.Join(errs...)
}

// unadopted is the error for a host whose current is not a link into
// releases/ (HostState.LiveDir).
func unadopted(host string, st drover.HostState) error {
	if link, ok := strings.CutPrefix(st.LiveDir, "link:"); ok {
		return drover.Errorf(drover.EINVALID, "current points outside releases/, at %s: drover could not put it back if the deploy failed", link).
			At("host " + host).
			WithHint("copy that tree into releases/<name>/ on the host and point current at it (ln -sfn releases/<name> current.tmp && mv -T current.tmp current), then deploy")
	}
	return drover.Errorf(drover.EINVALID, "current is a live directory, not a link into releases/: drover could not put it back if the deploy failed").
		At("host " + host).
		WithHint("run `drover adopt` once: it moves the directory into releases/foreign-<hash> and links current to it atomically, without touching the service")
}

// deployedAt is when the host's current release was deployed: the newest
// history entry that put it there other than a restore. state.json's
// deployed_at moves on every swap, so a failed deploy that restored the
// host made its release look deployed minutes ago — and hid the host from
// `status --stragglers --since`. Falls back to deployed_at when the
// history (bounded) no longer holds the release's arrival.
func deployedAt(st drover.HostState) time.Time {
	for i := len(st.History) - 1; i >= 0; i-- {
		e := st.History[i]
		if e.To != st.Current {
			// An entry that moved the host elsewhere: the release was
			// there before it, so its arrival is further back.
			continue
		}
		if e.Action == drover.ActionRestore {
			continue
		}
		return e.At
	}
	return st.DeployedAt
}
