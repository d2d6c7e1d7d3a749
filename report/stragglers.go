package report

import (
	"context"
	"fmt"
	"time"

	"drover"
	"drover/runner"
)

// Straggler is one host `status --stragglers` lists, with why.
type Straggler struct {
	runner.HostStatus
	Reasons []string `json:"reasons"`
}

// Stragglers is the report of `status --stragglers`.
type Stragglers struct {
	Service string `json:"service"`
	Env     string `json:"env,omitempty"`
	// Desired is the release the fleet should be on, and Basis says how it
	// was chosen.
	Desired string      `json:"desired"`
	Basis   string      `json:"basis"`
	Since   time.Time   `json:"since,omitempty"`
	Hosts   []Straggler `json:"hosts"`
	// Unreachable counts the hosts whose state could not be read: listed
	// as stragglers, since nobody can say they are not.
	Unreachable int `json:"-"`
	// Total counts the hosts surveyed.
	Total int `json:"-"`
}

// DesiredRelease decides which release the fleet should be on: the one
// the operator last rolled out successfully (a deploy that succeeded, or
// finished within its failure limit). Not the most common release: after
// `deploy --limit` to a third of the fleet, the most common release is the
// old one, and the hosts that were upgraded would be called stragglers.
// When the last successful change was a rollback (which targets each
// host's own previous release, not one release) or there is no history,
// the most common release among reachable hosts is taken.
func DesiredRelease(ctx context.Context, st drover.Store, key string, hosts []runner.HostStatus) (release, basis string, err error) {
	recs, err := st.History(ctx, key, 0)
	if err != nil {
		return "", "", err
	}
	for _, r := range recs {
		if r.Finished.IsZero() || (r.Outcome != drover.OutcomeSucceeded && r.Outcome != drover.OutcomePartial) {
			continue
		}
		if r.Kind == drover.KindDeploy && r.Release != "" {
			return r.Release, fmt.Sprintf("the last successful deploy, %s (%s)", r.ID, r.Started.Local().Format("2006-01-02 15:04")), nil
		}
		if r.Kind == drover.KindRollback {
			break
		}
	}
	count := map[string]int{}
	for _, h := range hosts {
		if h.Reachable && h.Release != "" {
			count[drover.SlotRelease(h.Release)]++
		}
	}
	best := ""
	for rel, n := range count {
		if n > count[best] || n == count[best] && rel > best {
			best = rel
		}
	}
	if best == "" {
		return "", "", drover.Errorf(drover.ENOTFOUND, "no desired release: no successful deploy in the history and no host has a release").
			WithHint("name one with --release RELEASE-ID")
	}
	return best, "the most common release on the fleet (the last change was a rollback, or there is no deploy history)", nil
}

// FindStragglers lists the hosts of fleet not on release desired or, with
// since, not deployed since then; unreachable hosts are listed as unknown.
func FindStragglers(fleet *runner.FleetStatus, desired, basis string, since time.Time) Stragglers {
	rep := Stragglers{Service: fleet.Service, Env: fleet.Env, Desired: desired, Basis: basis, Since: since, Hosts: []Straggler{}, Total: len(fleet.Hosts)}
	for _, h := range fleet.Hosts {
		var why []string
		switch {
		case !h.Reachable:
			rep.Unreachable++
			why = append(why, "unreachable: "+h.Error)
		case h.Release == "":
			why = append(why, "no release deployed")
		case drover.SlotRelease(h.Release) != desired:
			why = append(why, fmt.Sprintf("on %s, not %s", dash(h.Version)+" ("+drover.SlotRelease(h.Release)+")", desired))
		}
		if h.Reachable && !since.IsZero() && h.DeployedAt.Before(since) {
			last := "never deployed"
			if !h.DeployedAt.IsZero() {
				last = "last deployed " + h.DeployedAt.Local().Format("2006-01-02 15:04:05")
			}
			why = append(why, fmt.Sprintf("%s, before %s", last, since.Local().Format("2006-01-02 15:04:05")))
		}
		if len(why) > 0 {
			rep.Hosts = append(rep.Hosts, Straggler{HostStatus: h, Reasons: why})
		}
	}
	return rep
}

// dash stands in for a value that is not there.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
