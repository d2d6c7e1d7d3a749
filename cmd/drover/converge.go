package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"drover"
	"drover/config"
	"drover/rollout"
	"drover/runner"
)

type convergeFlags struct {
	deployFlags
	maxAttempts int
	// overrideList is what the override flags became, checked against
	// the spec.
	overrideList []drover.Override
}

func (a *app) convergeCmd() *cobra.Command {
	var f convergeFlags
	var configs *configList
	c := &cobra.Command{
		Use:   "converge --release SRC",
		Short: "Deploy in rounds until every host runs the release, with growing waits, replacing hosts that never come right",
		Long: `converge repeats, until every targeted host runs the release or the budget
(converge.max_attempts, default 10) is spent: find the hosts not on the release,
deploy to them (with the normal safety rules: lock, stage first, canary,
batches, failure limits, rollback), wait (converge.wait doubling up to
converge.max_wait, with jitter). A host that failed converge.replace_after
rounds runs hooks.replace once, on this machine, and the inventory is read
again; a replaced host that does not answer yet is waited for up to
converge.boot_timeout (5m).

Host trouble keeps the loop going: a host that failed, got stuck on its
restore path or does not answer is tried again next round (skipped while
it does not answer). Release trouble stops it: a round whose deploy halts
(past a failure limit, at a gate) ends converge with exit 1. One line per
round; at the end the hosts on the release, those not on it with their
last cause and rounds tried, and the replaced hosts. Exit 0 when every
targeted host is on the release, 3 when the rounds ran out with hosts left,
1 when the release was halted.`,
		Example: `  drover converge --release ./build --version 1.4.2
  drover converge -c prod.yaml --release hello-1.4.2.tar.gz --max-attempts 5 --yes
  drover converge -c pools/ --release ./build --parallel 3`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if files, multi, err := configs.files(); err != nil || multi {
				if err != nil {
					return err
				}
				return a.convergeMulti(c, files, &f, configs.parallel)
			}
			p, err := a.newPrinter(f.output)
			if err != nil {
				return err
			}
			defer p.close()
			e, err := a.open(f.specFlags, p)
			if err != nil {
				return err
			}
			defer e.close()
			if err := a.prepareConverge(c.Context(), &f, e, p); err != nil {
				return err
			}
			rel, cleanup, err := resolveRelease(c.Context(), &f.deployFlags, e)
			if err != nil {
				return err
			}
			defer cleanup()
			out, err := a.converge(c.Context(), &f, e, rel)
			if err != nil {
				return err
			}
			p.close()
			writeConverge(a.stdout, f.output == "json", out)
			a.exit(out.ExitCode)
			return nil
		},
	}
	f.add(c, true)
	f.addOverrides(c)
	c.Flags().IntVar(&f.maxAttempts, "max-attempts", 0, "deploy rounds at most (default: converge.max_attempts, else 10)")
	configs = a.multiConfig(c, &f.specFlags)
	return c
}

func (a *app) prepareConverge(ctx context.Context, f *convergeFlags, e *env, p eventOutput) error {
	if f.maxAttempts < 0 {
		return &usageError{fmt.Errorf("--max-attempts %d: want 1 or more", f.maxAttempts)}
	}
	if f.maxAttempts > 0 {
		e.spec.Converge.MaxAttempts = f.maxAttempts
	}
	if err := a.checkConfirm(e.spec, f.limit, f.yes); err != nil {
		return err
	}
	var err error
	if f.overrideList, err = f.overrides(e.spec); err != nil {
		return err
	}
	e.runner.Confirm = a.confirmer(ctx, f.yes, p)
	return nil
}

func (a *app) converge(ctx context.Context, f *convergeFlags, e *env, rel *drover.Release) (*runner.ConvergeOutcome, error) {
	source, envName := e.spec.Source, e.spec.Env
	return e.runner.Converge(ctx, runner.ConvergeOptions{
		Release: rel, Limit: f.limit, Message: f.message, Overrides: f.overrideList,
		// After a replace hook the inventory is read again; the
		// converge settings given on the command line stay.
		Reload: func(ctx context.Context) (*drover.Spec, error) {
			spec, err := config.Load(source, envName)
			if err != nil {
				return nil, err
			}
			spec.Converge = e.spec.Converge
			return spec, nil
		},
	})
}

// convergeMulti is `drover converge` with several configs (multi.go).
func (a *app) convergeMulti(c *cobra.Command, files []string, f *convergeFlags, parallel int) error {
	return a.multiRun(c.Context(), files, f.specFlags, f.output, parallel,
		func(s *service) error {
			if err := a.prepareConverge(c.Context(), f, s.e, s.p); err != nil {
				return err
			}
			rel, cleanup, err := resolveRelease(c.Context(), &f.deployFlags, s.e)
			if err != nil {
				return err
			}
			s.rel, s.done = rel, cleanup
			return nil
		},
		func(ctx context.Context, s *service) error {
			out, err := a.converge(ctx, f, s.e, s.rel)
			if err != nil {
				return err
			}
			writeConverge(&s.buf, f.output == "json", out)
			s.code = out.ExitCode
			return nil
		})
}

// writeConverge prints how a converge ended: a "result" JSON line with
// operation converge, or the summary, the hosts not on the release with
// their last cause, the replaced hosts and the exit code.
func writeConverge(w io.Writer, asJSON bool, out *runner.ConvergeOutcome) {
	left := out.Left
	if left == nil {
		left = []rollout.HostLeft{}
	}
	if asJSON {
		var deploys []string
		for _, d := range out.Deploys {
			deploys = append(deploys, d.DeployID)
		}
		type replaced struct {
			runner.Replacement
			By string `json:"by"`
		}
		reps := []replaced{}
		for _, r := range out.Replaced {
			reps = append(reps, replaced{r, r.By()})
		}
		v := struct {
			Schema     int                `json:"schema"`
			Kind       string             `json:"kind"`
			Operation  string             `json:"operation"`
			Converged  bool               `json:"converged"`
			End        string             `json:"end"`
			HaltReason string             `json:"halt_reason,omitempty"`
			Rounds     int                `json:"rounds"`
			On         []string           `json:"on_release"`
			Behind     []string           `json:"behind"`
			Left       []rollout.HostLeft `json:"not_on_release"`
			Replaced   []replaced         `json:"replaced"`
			Deploys    []string           `json:"deploys"`
			ExitCode   int                `json:"exit_code"`
			Summary    string             `json:"summary"`
		}{drover.EventSchema, "result", "converge", out.Converged, string(out.End), out.HaltReason, out.Rounds, nonNil(out.On), nonNil(out.Behind), left, reps, nonNil(deploys), out.ExitCode, out.Summary}
		b, _ := json.Marshal(v)
		w.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(w, "\n%s\n", out.Summary)
	if len(left) > 0 {
		fmt.Fprintln(w, "not on the release (last cause, rounds tried):")
		for _, l := range left {
			fmt.Fprintf(w, "  %-10s %s (%s)\n", l.Name, l.Cause, plural(l.Rounds, "round"))
		}
	}
	if len(out.Replaced) > 0 {
		fmt.Fprintln(w, "replaced (hooks.replace ran once each):")
		for _, r := range out.Replaced {
			fmt.Fprintf(w, "  %-10s round %d: %s\n", r.Host, r.Round, r.By())
		}
	}
	var words string
	switch {
	case out.ExitCode == drover.ExitOK:
		words = "every targeted host is on the release"
	case out.End == rollout.ConvergeHalted:
		words = "the release was halted; converge stopped"
	default:
		words = "did not converge: needs a person"
		if len(out.Behind) > 0 {
			words += " (" + strings.Join(out.Behind, " ") + ")"
		}
	}
	fmt.Fprintf(w, "exit %d: %s\n", out.ExitCode, words)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
