package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/report"
	"drover/runner"
	"drover/server"
)

func (a *app) rollbackCmd() *cobra.Command {
	var f specFlags
	var to, limit, output, message string
	var yes bool
	c := &cobra.Command{
		Use:   "rollback",
		Short: "Take hosts back to their previous release and config (or --to a release)",
		Long: `rollback takes every host (or those --limit selects) back to the release it
was on before its current one, config included: each host to its own recorded
previous release, never to "latest". It goes through the same safe path as a
deploy — out of rotation, switch, restart, checks, back into rotation — groups
in reverse order, a batch at a time.`,
		Example: `  drover rollback --yes
  drover rollback --to v1.4.1-3f2a9c0d1e2b --limit 'web*'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if a.viaServer() {
				if err := a.confirm(yes, fmt.Sprintf("roll back through %s?", a.remote.url)); err != nil {
					return err
				}
				return a.remoteRollback(c.Context(), f, server.RollbackRequest{To: to, Limit: limit, Message: message}, output)
			}
			p, err := a.newPrinter(output)
			if err != nil {
				return err
			}
			defer p.close()
			e, err := a.open(f, p)
			if err != nil {
				return err
			}
			defer e.close()
			what := "each host's previous release"
			if to != "" {
				what = to
			}
			if err := a.confirm(yes, fmt.Sprintf("roll %s back to %s?", e.spec.Service, what)); err != nil {
				return err
			}
			out, err := e.runner.Rollback(c.Context(), runner.RollbackOptions{To: to, Limit: limit, Message: message})
			if err != nil {
				return err
			}
			p.verdict(out)
			a.exit(out.ExitCode)
			return nil
		},
	}
	f.add(c)
	c.Flags().StringVar(&to, "to", "", "a release ID to go to instead of each host's previous")
	c.Flags().StringVar(&limit, "limit", "", "only hosts matching these comma-separated globs (!GLOB excludes)")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "answer yes to every confirmation")
	c.Flags().StringVar(&output, "output", "text", "text or json (NDJSON events)")
	c.Flags().StringVarP(&message, "message", "m", "", "a message recorded with the rollback")
	return c
}

// confirm asks a yes/no question on a terminal. Without a terminal drover
// never waits for input: the step needs --yes, or stops with exit 2 — a CI
// job must not hang on a prompt nobody sees.
func (a *app) confirm(yes bool, question string) error {
	if yes {
		return nil
	}
	if !isTerminal(a.stdin) {
		return &usageError{fmt.Errorf("%s needs confirmation and there is no terminal to ask: pass --yes", strings.TrimSuffix(question, "?"))}
	}
	fmt.Fprintf(a.stdout, "%s [y/N] ", question)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return &usageError{fmt.Errorf("not confirmed; nothing was changed")}
}

func (a *app) statusCmd() *cobra.Command {
	var f specFlags
	var asJSON, stragglers bool
	var since, want string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show each host's current and previous release",
		Example: `  drover status
  drover status -c prod.yaml --env eu
  drover status --json | jq '.hosts[] | select(.reachable | not) | .name'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			sinceT, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			if (since != "" || want != "") && !stragglers {
				return &usageError{fmt.Errorf("--since and --release go with --stragglers")}
			}
			if a.viaServer() {
				if stragglers {
					return &usageError{fmt.Errorf("--stragglers is not available through --server")}
				}
				return a.remoteStatus(c.Context(), f, asJSON)
			}
			e, err := a.open(f, nil)
			if err != nil {
				return err
			}
			defer e.close()
			if stragglers {
				return a.stragglers(c.Context(), e, sinceT, want, asJSON)
			}
			st, err := e.runner.Status(c.Context())
			if err != nil {
				return err
			}
			running, unfinished, err := report.Activity(c.Context(), e.store, runner.Key(e.spec))
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(statusView{FleetStatus: st, Running: running, Unfinished: unfinished})
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tGROUP\tREACHABLE\tVERSION\tRELEASE\tPREVIOUS\tDEPLOYED")
			for _, h := range st.Hosts {
				deployed := ""
				if !h.DeployedAt.IsZero() {
					deployed = h.DeployedAt.Local().Format("2006-01-02 15:04:05")
				}
				reach := "yes"
				if !h.Reachable {
					reach = "NO: " + h.Error
				}
				version, prev := statusWords(h)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Group, reach, version, dash(h.Release), prev, deployed)
			}
			tw.Flush()
			printDeployActivity(a.stdout, running, unfinished)
			unreachable := 0
			for _, h := range st.Hosts {
				if !h.Reachable {
					unreachable++
				}
			}
			if unreachable > 0 {
				a.exit(drover.ExitNeedsPerson)
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&stragglers, "stragglers", false, "list only hosts not on the desired release (the last successful deploy's) or, with --since, not deployed since then")
	c.Flags().StringVar(&since, "since", "", "with --stragglers: also list hosts not deployed since a date, a time or an age (7d)")
	c.Flags().StringVar(&want, "release", "", "with --stragglers: the desired release ID, instead of the last successful deploy's")
	return c
}

// statusWords is the VERSION and PREVIOUS columns of `drover status`:
// another tool's release says "foreign", a live directory as current says
// what to run.
func statusWords(h runner.HostStatus) (version, previous string) {
	version, previous = dash(h.Version), dash(h.Previous)
	switch {
	case h.Unadopted:
		version = "live directory: run drover adopt"
	case h.Foreign != nil:
		version = "foreign"
	}
	if h.PreviousForeign {
		previous += " (foreign)"
	}
	return version, previous
}

// dash is s for a table cell, "-" when empty; host-supplied values
// (versions from state.json) are made terminal-safe.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return termSafe(s)
}
