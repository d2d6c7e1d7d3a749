package report

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"drover"
	"drover/rollout"
)

// RunningDeploy is the holder of the deploy lock and what it is doing.
type RunningDeploy struct {
	// ID is empty while the holder has not recorded its deploy yet (it
	// is surveying the hosts).
	ID      string `json:"id,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Version string `json:"version,omitempty"`
	// Status is "running", or "running or interrupted" when the holder
	// is on another machine, whose process table drover cannot read.
	Status string           `json:"status"`
	Holder drover.LockOwner `json:"holder"`
	// Phase is the steps in flight ("switch on h02"), or the last step
	// done when none is.
	Phase string `json:"phase"`
}

// UnfinishedDeploy is a deploy whose process died before it finished:
// hosts may be left on the new release, or out of rotation.
type UnfinishedDeploy struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Release string    `json:"release"`
	Version string    `json:"version"`
	User    string    `json:"user"`
	Machine string    `json:"machine"`
	Started time.Time `json:"started"`
	// Switched lists the hosts it switched to its release.
	Switched []string `json:"switched"`
	// Touched lists every host it did more than stage on (switched,
	// depooled, restarted): what `drover resume` puts back.
	Touched []string `json:"touched"`
}

// Activity reads the lock holder and the unfinished deploys of key.
// This is what makes the lock error's "see `drover status`" true: the
// person who hit the lock learns who holds it and what it is doing, and
// after a crash learns which hosts were left switched and what to run.
func Activity(ctx context.Context, st drover.Store, key string) (*RunningDeploy, []UnfinishedDeploy, error) {
	recs, err := st.Unfinished(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	holder, herr := LockHolder(ctx, st, key)
	var running *RunningDeploy
	var unfinished []UnfinishedDeploy
	sort.Slice(recs, func(i, j int) bool { return recs[i].Started.Before(recs[j].Started) })
	for _, d := range recs {
		j, err := st.Journal(ctx, d.ID)
		if err != nil {
			return nil, nil, err
		}
		switch s := DeployStatus(d, holder, herr); s {
		case StatusRunning, StatusUnknown:
			if holder == nil {
				// No holder to name: the store cannot say; report it as
				// unfinished, which is what resume would act on.
				unfinished = append(unfinished, unfinishedView(d, j))
				continue
			}
			running = &RunningDeploy{ID: d.ID, Kind: d.Kind, Version: d.Version, Status: s, Holder: *holder, Phase: phase(j)}
		default:
			unfinished = append(unfinished, unfinishedView(d, j))
		}
	}
	// A live holder that has not begun its deploy record yet.
	if running == nil && holder != nil && holder.PID != 0 {
		host, _ := os.Hostname()
		switch {
		case holder.Machine != host:
			running = &RunningDeploy{ID: holder.DeployID, Status: StatusUnknown, Holder: *holder, Phase: "starting"}
		case ProcessAlive(holder.PID):
			running = &RunningDeploy{ID: holder.DeployID, Status: StatusRunning, Holder: *holder, Phase: "starting (reading the hosts)"}
		}
	}
	return running, unfinished, nil
}

func unfinishedView(d drover.DeployRecord, j []drover.JournalEntry) UnfinishedDeploy {
	switched, touched := map[string]bool{}, map[string]bool{}
	for _, e := range j {
		// The same rule recovery uses (runner.recoverUnfinished): any step
		// past staging touched the host.
		if e.Step != string(rollout.StepStage) {
			touched[e.Host] = true
		}
		if e.Step == string(rollout.StepSwitch) && e.Phase == drover.PhaseDone && e.Outcome == "ok" {
			switched[e.Host] = true
		}
	}
	return UnfinishedDeploy{ID: d.ID, Kind: d.Kind, Release: d.Release, Version: d.Version, User: d.User,
		Machine: d.Machine, Started: d.Started, Switched: sortedNames(switched), Touched: sortedNames(touched)}
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// phase says what a running deploy is doing, from its journal: the steps
// started and not done, by step, else the last step done.
func phase(j []drover.JournalEntry) string {
	type key struct{ host, step string }
	open := map[key]bool{}
	var order []key
	for _, e := range j {
		k := key{e.Host, e.Step}
		switch e.Phase {
		case drover.PhaseStart:
			if !open[k] {
				order = append(order, k)
			}
			open[k] = true
		case drover.PhaseDone:
			delete(open, k)
		}
	}
	byStep := map[string][]string{}
	var steps []string
	for _, k := range order {
		if !open[k] {
			continue
		}
		if _, ok := byStep[k.step]; !ok {
			steps = append(steps, k.step)
		}
		if k.host != "" {
			byStep[k.step] = append(byStep[k.step], k.host)
		}
	}
	if len(steps) > 0 {
		parts := make([]string, 0, len(steps))
		for _, s := range steps {
			if hs := byStep[s]; len(hs) > 0 {
				parts = append(parts, s+" on "+strings.Join(hs, ", "))
			} else {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, "; ")
	}
	if len(j) == 0 {
		return "starting (reading the hosts)"
	}
	last := j[len(j)-1]
	if last.Host != "" {
		return fmt.Sprintf("between steps (last: %s on %s, %s)", last.Step, last.Host, dash(last.Outcome))
	}
	return fmt.Sprintf("between steps (last: %s, %s)", last.Step, dash(last.Outcome))
}
