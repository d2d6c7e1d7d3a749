package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"drover"
)

// AdoptResult is what `drover adopt` did on one host.
type AdoptResult struct {
	Host string `json:"host"`
	// Slot is the release directory current now points at
	// (releases/foreign-<hash> for a directory just adopted).
	Slot string `json:"slot,omitempty"`
	// Adopted is true when a live directory was moved this time; false
	// when current was already a link (nothing to do).
	Adopted bool   `json:"adopted"`
	Error   string `json:"error,omitempty"`
}

// AdoptOutcome is the result of Adopt, per targeted host in spec order.
type AdoptOutcome struct {
	Hosts    []AdoptResult `json:"hosts"`
	ExitCode int           `json:"exit_code"`
}

// Adopt is the one-time step for hosts whose current is a live directory
// (an Ansible copy, an rsync, a hand-made tree): on each it moves the
// directory into releases/foreign-<hash> and makes current a link to it,
// in one atomic exchange on the host, without touching the service. After
// it, a failed deploy has a release to put back. Hosts already laid out
// with a current link are left alone. It holds the deploy lock: it changes
// hosts.
func (r *Runner) Adopt(ctx context.Context, limit string) (*AdoptOutcome, error) {
	targets, err := SelectHosts(r.Spec, limit)
	if err != nil {
		return nil, err
	}
	id := r.newID() + "-adopt"
	lock, err := r.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	cs := newConns(r.Transport, r.Spec)
	defer cs.closeAll()
	names := sortedKeys(targets)
	res := map[string]AdoptResult{}
	var mu sync.Mutex
	forEach(names, r.Spec.StageParallelism, func(name string) {
		out := AdoptResult{Host: name}
		actx, cancel := context.WithTimeout(ctx, r.Spec.StepTimeout)
		defer cancel()
		conn, err := cs.get(actx, name)
		var st drover.HostState
		if err == nil {
			st, err = conn.State(actx)
		}
		if err == nil && st.LiveDir != "" && !strings.HasPrefix(st.LiveDir, "link:") {
			st, err = conn.Restore(actx, drover.RestoreRequest{DeployID: id, Action: drover.ActionAdopt, Reason: "drover adopt", At: r.now()})
			out.Adopted = err == nil
		} else if err == nil && st.LiveDir != "" {
			err = unadopted(name, st)
		}
		if err != nil {
			out.Error = err.Error()
			cs.drop(name)
		} else {
			out.Slot = st.Current
			msg := fmt.Sprintf("current is %s; nothing to adopt", st.ReleaseLabel(st.Current))
			if out.Adopted {
				msg = fmt.Sprintf("adopted the live directory as %s", st.ReleaseLabel(st.Current))
			}
			r.emit(drover.Event{Deploy: id, Kind: drover.EventNotice, Host: name, Step: "adopt", Message: msg})
		}
		mu.Lock()
		res[name] = out
		mu.Unlock()
	})
	out := &AdoptOutcome{Hosts: []AdoptResult{}}
	for _, h := range r.Spec.Hosts {
		if a, ok := res[h.Name]; ok {
			out.Hosts = append(out.Hosts, a)
			if a.Error != "" {
				out.ExitCode = drover.ExitNeedsPerson
			}
		}
	}
	return out, nil
}
