package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"drover"
	"drover/rollout"
	"drover/runner"
)

// statusView is what `drover status --json` prints: the fleet, plus the
// deploy running now and the deploys that never finished. The new fields
// are omitted when empty, so the JSON of a quiet fleet is what it was.
type statusView struct {
	*runner.FleetStatus
	Running    *runningDeploy     `json:"running,omitempty"`
	Unfinished []unfinishedDeploy `json:"unfinished,omitempty"`
}

// runningDeploy is the holder of the deploy lock and what it is doing.
type runningDeploy struct {
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

// unfinishedDeploy is a deploy whose process died before it finished:
// hosts may be left on the new release, or out of rotation.
type unfinishedDeploy struct {
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

// lockHolderReader is the one HistoryReader question status asks.
type lockHolderReader interface {
	LockHolder(ctx context.Context, key string) (*drover.LockOwner, error)
}

// deployActivity reads the lock holder and the unfinished deploys of key.
// This is what makes the lock error's "see `drover status`" true: the
// person who hit the lock learns who holds it and what it is doing, and
// after a crash learns which hosts were left switched and what to run.
func deployActivity(ctx context.Context, st drover.Store, key string) (*runningDeploy, []unfinishedDeploy, error) {
	recs, err := st.Unfinished(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	var holder *drover.LockOwner
	herr := errNoLockHolder
	if hr, ok := st.(lockHolderReader); ok {
		holder, herr = hr.LockHolder(ctx, key)
	}
	var running *runningDeploy
	var unfinished []unfinishedDeploy
	sort.Slice(recs, func(i, j int) bool { return recs[i].Started.Before(recs[j].Started) })
	for _, d := range recs {
		j, err := st.Journal(ctx, d.ID)
		if err != nil {
			return nil, nil, err
		}
		switch s := deployStatus(d, holder, herr); s {
		case statusRunning, statusUnknown:
			if holder == nil {
				// No holder to name: the store cannot say; report it as
				// unfinished, which is what resume would act on.
				unfinished = append(unfinished, unfinishedView(d, j))
				continue
			}
			running = &runningDeploy{ID: d.ID, Kind: d.Kind, Version: d.Version, Status: s, Holder: *holder, Phase: phase(j)}
		default:
			unfinished = append(unfinished, unfinishedView(d, j))
		}
	}
	// A live holder that has not begun its deploy record yet.
	if running == nil && holder != nil && holder.PID != 0 {
		host, _ := os.Hostname()
		switch {
		case holder.Machine != host:
			running = &runningDeploy{ID: holder.DeployID, Status: statusUnknown, Holder: *holder, Phase: "starting"}
		case processAlive(holder.PID):
			running = &runningDeploy{ID: holder.DeployID, Status: statusRunning, Holder: *holder, Phase: "starting (reading the hosts)"}
		}
	}
	return running, unfinished, nil
}

func unfinishedView(d drover.DeployRecord, j []drover.JournalEntry) unfinishedDeploy {
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
	return unfinishedDeploy{ID: d.ID, Kind: d.Kind, Release: d.Release, Version: d.Version, User: d.User,
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

// printDeployActivity writes the running and unfinished deploys under the
// host table; nothing when there are none.
func printDeployActivity(w io.Writer, running *runningDeploy, unfinished []unfinishedDeploy) {
	if running != nil {
		h := running.Holder
		what := "a deploy"
		if running.ID != "" {
			what = fmt.Sprintf("%s %s", orDeploy(running.Kind), running.ID)
			if running.Version != "" {
				what += " of " + running.Version
			}
		}
		fmt.Fprintln(w)
		if running.Status == statusRunning {
			fmt.Fprintf(w, "%s is running: pid %d, user %s, machine %s, since %s\n", what, h.PID, h.User, h.Machine, h.Since.Local().Format("2006-01-02 15:04:05"))
		} else {
			fmt.Fprintf(w, "%s holds the lock: pid %d, user %s, machine %s, since %s (another machine: drover cannot tell from here whether it is alive)\n",
				what, h.PID, h.User, h.Machine, h.Since.Local().Format("2006-01-02 15:04:05"))
		}
		fmt.Fprintf(w, "  now: %s\n", running.Phase)
	}
	for _, u := range unfinished {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s %s of %s (started %s by %s@%s) never finished: its process died.\n",
			orDeploy(u.Kind), u.ID, dash(u.Version), u.Started.Local().Format("2006-01-02 15:04:05"), u.User, u.Machine)
		if len(u.Switched) > 0 {
			fmt.Fprintf(w, "  it left %s switched to %s: %s\n", plural(len(u.Switched), "host"), dash(u.Version), strings.Join(u.Switched, ", "))
		} else {
			fmt.Fprintln(w, "  it switched no host")
		}
		if len(u.Touched) > 0 {
			fmt.Fprintf(w, "  run `drover resume` to put the %s it touched (%s) back on their pre-deploy release; `drover deploy` does the same first\n",
				plural(len(u.Touched), "host"), strings.Join(u.Touched, ", "))
		} else {
			fmt.Fprintln(w, "  run `drover resume` to record it as interrupted; no host needs putting back")
		}
	}
}

func orDeploy(kind string) string {
	if kind == "" {
		return drover.KindDeploy
	}
	return kind
}
