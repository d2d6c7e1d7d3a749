package main

// status --stragglers: the hosts not on the release the fleet should be on.

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"drover"
	"drover/report"
	"drover/runner"
)

// stragglers lists hosts not on the desired release or, with since, not
// deployed since then; unreachable hosts are listed as unknown.
func (a *app) stragglers(ctx context.Context, e *env, since time.Time, want string, asJSON bool) error {
	st, err := e.runner.Status(ctx)
	if err != nil {
		return err
	}
	desired, basis := want, "given with --release"
	if want == "" {
		if desired, basis, err = report.DesiredRelease(ctx, e.store, runner.Key(e.spec), st.Hosts); err != nil {
			return err
		}
	}
	rep := report.FindStragglers(st, desired, basis, since)
	if rep.Unreachable > 0 {
		a.exit(drover.ExitNeedsPerson)
	}
	if asJSON {
		return writeJSON(a.stdout, rep)
	}
	fmt.Fprintf(a.stdout, "desired release %s: %s\n", rep.Desired, rep.Basis)
	if len(rep.Hosts) == 0 {
		fmt.Fprintf(a.stdout, "no stragglers: all %s are on it", plural(len(st.Hosts), "host"))
		if !since.IsZero() {
			fmt.Fprintf(a.stdout, " and were deployed since %s", since.Local().Format("2006-01-02 15:04:05"))
		}
		fmt.Fprintln(a.stdout)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tGROUP\tVERSION\tDEPLOYED\tBY DEPLOY\tWHY")
	for _, h := range rep.Hosts {
		deployed := "-"
		if !h.DeployedAt.IsZero() {
			deployed = h.DeployedAt.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Group, dash(h.Version), deployed, dash(h.DeployID), termSafe(strings.Join(h.Reasons, "; ")))
	}
	tw.Flush()
	fmt.Fprintln(a.stdout, stragglerCount(len(rep.Hosts), len(st.Hosts)))
	return nil
}

// stragglerCount is the report's last line: "3 of 6 hosts are
// stragglers", "1 of 3 hosts is a straggler".
func stragglerCount(n, total int) string {
	of := plural(total, "host")
	if n == 1 {
		return fmt.Sprintf("1 of %s is a straggler", of)
	}
	return fmt.Sprintf("%d of %s are stragglers", n, of)
}
