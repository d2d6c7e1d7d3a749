package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"drover"
	"drover/runner"
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
