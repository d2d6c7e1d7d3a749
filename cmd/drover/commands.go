package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/report"
	"drover/runner"
	"drover/server"
)

func (a *app) planCmd() *cobra.Command {
	var f deployFlags
	var asJSON, showDiff bool
	var outFile string
	c := &cobra.Command{
		Use:   "plan --release SRC",
		Short: "Show what a deploy would change per host, with config and release file diffs; changes nothing",
		Long: `plan says what a deploy of the release would do on each host: deploy, skip
(already on it) or unreachable, with the config files and release files that
change. Each host it would deploy to runs the config files' validate commands
on the new release in a scratch directory that it removes: plan changes
nothing on the hosts. Exit 0; 1 when a validate command would fail; 3 when
hosts are unreachable.

-o FILE saves the plan; deploy --plan FILE then refuses, with nothing changed,
if the fleet is no longer as planned.`,
		Example: `  drover plan --release ./build --version 1.4.2
  drover plan --release ./build --version 1.4.2 --diff
  drover plan --release hello.tar.gz --json
  drover plan --release hello.tar.gz -o plan.json && drover deploy --release hello.tar.gz --plan plan.json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := a.open(f.specFlags, nil)
			if err != nil {
				return err
			}
			defer e.close()
			f.changesNothing = true
			rel, cleanup, err := resolveRelease(c.Context(), &f, e)
			if err != nil {
				return err
			}
			defer cleanup()
			res, err := e.runner.Plan(c.Context(), runner.DeployOptions{Release: rel, Limit: f.limit, Force: f.force})
			if err != nil {
				return err
			}
			if outFile != "" {
				if err := writePlan(outFile, res); err != nil {
					return err
				}
			}
			if asJSON || f.output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				printPlan(a, res, showDiff)
			}
			a.exit(planExit(res))
			return nil
		},
	}
	f.add(c, false)
	c.Flags().StringVarP(&outFile, "out", "o", "", "save the plan to `FILE` for deploy --plan")
	c.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	c.Flags().BoolVar(&showDiff, "diff", false, "show unified diffs of each host's rendered config against what is live")
	return c
}

// printPlan prints a plan for people. Config diffs are shown with --diff;
// without it each host says how many of its config files change, so a
// plan of a hundred hosts stays readable and still shows which change.
func printPlan(a *app, res *runner.PlanResult, showDiff bool) {
	counts := map[string]int{}
	fmt.Fprintf(a.stdout, "plan: %s %s (%s)\n", res.Service, res.Version, res.Release)
	for _, g := range res.Groups {
		fmt.Fprintf(a.stdout, "\ngroup %s: %s, batch %d, failure limit %d\n", g.Name, plural(len(g.Hosts), "host"), g.Batch, g.FailureLimit)
		for _, h := range g.Hosts {
			counts[h.Action]++
			from := h.Version
			switch {
			case h.Foreign != nil:
				from = "foreign releases/" + h.Current
			case from == "" && h.Current != "":
				from = h.Current
			case from == "":
				from = "(none)"
			}
			switch h.Action {
			case "deploy":
				fmt.Fprintf(a.stdout, "  ~ %-10s %s -> %s\n", h.Name, from, res.Version)
			case "skip":
				fmt.Fprintf(a.stdout, "  = %-10s already on %s\n", h.Name, res.Release)
			default:
				fmt.Fprintf(a.stdout, "  ! %-10s unreachable: %s\n", h.Name, h.Error)
			}
			switch {
			case h.ValidateError != "":
				counts["invalid"]++
				fmt.Fprintf(a.stdout, "      validate: FAILED, the deploy would fail staging here:\n")
				for _, line := range strings.Split(strings.TrimRight(termSafe(h.ValidateError), "\n"), "\n") {
					fmt.Fprintf(a.stdout, "        %s\n", line)
				}
			case h.Validated:
				fmt.Fprintf(a.stdout, "      validate: ok\n")
			}
			printReleaseFiles(a, h.Files, showDiff)
			if !showDiff && len(h.Diffs) > 0 {
				fmt.Fprintf(a.stdout, "      %s changed (--diff shows how)\n", plural(len(h.Diffs), "config file"))
				continue
			}
			for _, d := range h.Diffs {
				for _, line := range strings.Split(strings.TrimRight(d.Diff, "\n"), "\n") {
					fmt.Fprintf(a.stdout, "      %s\n", line)
				}
			}
		}
	}
	invalid := ""
	if counts["invalid"] > 0 {
		invalid = fmt.Sprintf(" (%d would fail validate)", counts["invalid"])
	}
	fmt.Fprintf(a.stdout, "\n%d to deploy%s, %d already on %s, %d unreachable. Nothing was changed.\n", counts["deploy"], invalid, counts["skip"], res.Release, counts["unreachable"])
}

// printReleaseFiles prints how a host's release files change: counts, and
// with --diff the paths.
func printReleaseFiles(a *app, rf *runner.ReleaseFiles, showDiff bool) {
	switch {
	case rf == nil:
		return
	case rf.Unknown != "":
		fmt.Fprintf(a.stdout, "      release files: not compared (%s)\n", termSafe(rf.Unknown))
		return
	case len(rf.Added)+len(rf.Removed)+len(rf.Changed) == 0:
		fmt.Fprintf(a.stdout, "      release files: unchanged\n")
		return
	}
	fmt.Fprintf(a.stdout, "      release files: %d changed, %d added, %d removed\n", len(rf.Changed), len(rf.Added), len(rf.Removed))
	if !showDiff {
		return
	}
	for _, l := range []struct {
		mark  string
		paths []string
	}{{"~", rf.Changed}, {"+", rf.Added}, {"-", rf.Removed}} {
		for _, p := range l.paths {
			fmt.Fprintf(a.stdout, "        %s %s\n", l.mark, p)
		}
	}
}

// planExit is plan's exit code: 3 when hosts did not answer (as status),
// else 1 when a validate command would fail (the deploy would halt while
// staging), else 0.
func planExit(res *runner.PlanResult) int {
	code := drover.ExitOK
	for _, g := range res.Groups {
		for _, h := range g.Hosts {
			if !h.Reachable {
				return drover.ExitNeedsPerson
			}
			if h.ValidateError != "" {
				code = drover.ExitRolledBack
			}
		}
	}
	return code
}

// writePlan saves a plan for deploy --plan.
func writePlan(name string, res *runner.PlanResult) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
		return drover.Errorf(drover.EINVALID, "saving the plan: %v", err).WithHint("pass -o a file in a directory you can write")
	}
	return nil
}

// readPlan reads a plan saved by plan -o for a deploy of rel.
func readPlan(name string, rel *drover.Release, service string) (*runner.PlanResult, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "--plan: %v", err).WithHint("pass the file `drover plan -o FILE` wrote")
	}
	var res runner.PlanResult
	if err := json.Unmarshal(b, &res); err != nil || res.Fingerprint == "" {
		return nil, drover.Errorf(drover.EINVALID, "--plan %s: not a plan saved by `drover plan -o`", name).WithHint("run `drover plan -o FILE` and pass that file")
	}
	if res.Service != service {
		return nil, drover.Errorf(drover.EINVALID, "--plan %s is a plan of service %s, not %s", name, res.Service, service).WithHint("pass the plan made with this drover.yaml")
	}
	if res.Release != rel.ID() {
		return nil, drover.Errorf(drover.EINVALID, "--plan %s plans release %s, not %s", name, res.Release, rel.ID()).WithHint("deploy the release the plan was made for, or make a new plan")
	}
	return &res, nil
}

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
