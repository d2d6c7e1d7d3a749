package main

import (
	"fmt"
	"io"
	"strings"

	"drover"
	"drover/report"
	"drover/runner"
)

// statusView is what `drover status --json` prints: the fleet, plus the
// deploy running now and the deploys that never finished. The new fields
// are omitted when empty, so the JSON of a quiet fleet is what it was.
type statusView struct {
	*runner.FleetStatus
	Running    *report.RunningDeploy     `json:"running,omitempty"`
	Unfinished []report.UnfinishedDeploy `json:"unfinished,omitempty"`
}

// printDeployActivity writes the running and unfinished deploys under the
// host table; nothing when there are none.
func printDeployActivity(w io.Writer, running *report.RunningDeploy, unfinished []report.UnfinishedDeploy) {
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
		if running.Status == report.StatusRunning {
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
