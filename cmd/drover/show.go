package main

// drover show: one deploy, who, what, and each host's steps.

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"drover/report"
)

func (a *app) showCmd() *cobra.Command {
	var f specFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "show DEPLOY-ID",
		Short: "Show one deploy: who, what, outcome, and each host's steps with timing",
		Example: `  drover show d-20261122T100000-1a2b
  drover show d-20261122T100000-1a2b --json | jq '.hosts[] | select(.steps[].outcome == "failed")'`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{fmt.Errorf("show takes one deploy id (see `drover history`), got %d arguments", len(args))}
			}
			e, err := a.open(f, nil)
			if err != nil {
				return err
			}
			defer e.close()
			d, err := e.store.Deploy(c.Context(), args[0])
			if err != nil {
				return err
			}
			j, err := e.store.Journal(c.Context(), d.ID)
			if err != nil {
				return err
			}
			holder, herr := report.LockHolder(c.Context(), e.store, d.Key)
			v := report.Show(d, j, report.DeployStatus(d, holder, herr))
			if asJSON {
				return writeJSON(a.stdout, v)
			}
			printDeploy(a.stdout, v)
			printAnalyses(a.stdout, v.Analyses)
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printDeploy(w io.Writer, v report.DeployView) {
	d := v.Deploy
	fmt.Fprintf(w, "%s %s  %s", d.Kind, d.ID, d.Service)
	if d.Env != "" {
		fmt.Fprintf(w, " (env %s)", d.Env)
	}
	if d.Version != "" {
		fmt.Fprintf(w, "  %s (%s)", d.Version, d.Release)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  by        %s@%s\n", d.User, d.Machine)
	if d.Revision != "" {
		fmt.Fprintf(w, "  revision  %s\n", d.Revision)
	}
	if d.Message != "" {
		fmt.Fprintf(w, "  message   %s\n", d.Message)
	}
	for _, o := range d.Overrides {
		fmt.Fprintf(w, "  OVERRIDE  skipped %s %s: %s\n", termSafe(o.Kind), termSafe(o.Name), termSafe(o.Reason))
	}
	fmt.Fprintf(w, "  started   %s\n", d.Started.Local().Format("2006-01-02 15:04:05.000"))
	if !d.Finished.IsZero() {
		fmt.Fprintf(w, "  finished  %s (took %s)\n", d.Finished.Local().Format("2006-01-02 15:04:05.000"), d.Finished.Sub(d.Started).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "  status    %s", v.Status)
	if !d.Finished.IsZero() {
		fmt.Fprintf(w, " (exit %d)", d.ExitCode)
	}
	fmt.Fprintln(w)
	if d.Summary != "" {
		fmt.Fprintf(w, "  summary   %s\n", d.Summary)
	}
	for _, h := range v.Hosts {
		before := "nothing"
		switch {
		case h.Before.Foreign != nil:
			before = h.Before.Label()
		case h.Before.Current != "":
			before = fmt.Sprintf("%s (%s)", dash(h.Before.Version), h.Before.Current)
		}
		fmt.Fprintf(w, "\n%s", h.Name)
		if h.Group != "" {
			fmt.Fprintf(w, " [%s]", h.Group)
		}
		fmt.Fprintf(w, "  before: %s\n", before)
		if h.Skipped {
			fmt.Fprintln(w, "  skipped: already on the release")
			continue
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, s := range h.Steps {
			took := ""
			if !s.Finished.IsZero() {
				took = s.Elapsed.Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s.Started.Local().Format("15:04:05.000"), s.Step, s.Outcome, took, oneLine(s.Reason, 100))
		}
		tw.Flush()
		for _, s := range h.Steps {
			if s.Output != "" && s.Outcome != "ok" {
				fmt.Fprintf(w, "  output of %s (tail):\n", s.Step)
				lines := strings.Split(strings.TrimRight(s.Output, "\n"), "\n")
				if len(lines) > 10 {
					lines = lines[len(lines)-10:]
				}
				for _, l := range lines {
					fmt.Fprintf(w, "    | %s\n", l)
				}
			}
		}
	}
}
