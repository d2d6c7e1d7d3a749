package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/config"
	"drover/rollout"
	"drover/runner"
)

// promoteCmd deploys to one environment exactly the bundle another runs:
// the release its history says runs on all of its hosts, from the bundle
// kept under the state directory when it was deployed there. The target's
// requires: (if any) is judged by the runner as for any deploy.
func (a *app) promoteCmd() *cobra.Command {
	var f deployFlags
	c := &cobra.Command{
		Use:   "promote FROM TO",
		Short: "Deploy to environment TO exactly the release bundle environment FROM runs",
		Long: `promote reads FROM's history for the release that runs on all of its hosts
and deploys the bundle kept for it in the state directory (state_dir/bundles,
kept for every deploy to an environment another one requires) to TO: the same
bytes, verified again, not a bundle rebuilt under the same version. When TO
requires FROM (environments.TO.requires: {env: FROM, soak: D}) the release
must also have run there, undisturbed, for the soak time. Anything missing —
FROM runs no one release, the bundle is gone, the soak is not over — stops it
with exit 2 before anything is touched, naming what is missing.`,
		Example: `  drover promote staging prod
  drover promote staging prod --yes -m "CHG-1234" --output json`,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) >= 2 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeEnv(c, args, toComplete)
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &usageError{fmt.Errorf("promote takes two environment names, FROM and TO, got %d arguments", len(args))}
			}
			if f.env != "" || f.release != "" || f.version != "" {
				return &usageError{fmt.Errorf("promote takes its environments as arguments and deploys FROM's release: no --env, --release or --version")}
			}
			from, to := args[0], args[1]
			if from == to {
				return &usageError{fmt.Errorf("promote %s %s: FROM and TO are the same environment", from, to)}
			}
			if a.viaServer() {
				return &usageError{fmt.Errorf("promote does not go through --server yet: deploy FROM's bundle with drover deploy --server --env %s --release BUNDLE (the server checks %s's requires too)", to, to)}
			}
			p, err := a.newPrinter(f.output)
			if err != nil {
				return err
			}
			defer p.close()
			f.env = to
			e, err := a.open(f.specFlags, p)
			if err != nil {
				return err
			}
			defer e.close()
			req := drover.Requirement{Env: from}
			if r := e.spec.Requires; r != nil && r.Env == from {
				req = *r
			} else {
				fs, err := config.Load(f.config, from)
				if err != nil {
					return err
				}
				for _, h := range fs.Hosts {
					req.Hosts = append(req.Hosts, h.Name)
				}
			}
			hist, err := e.store.History(c.Context(), e.spec.Service+"/"+from, 1000)
			if err != nil {
				return err
			}
			// Soak and resets are the runner's to judge (for a TO that
			// requires FROM); here only: which release FROM runs.
			req.Soak = 0
			pr := rollout.Promotable(req, hist, "", time.Now())
			if pr.Running == "" {
				return &drover.Error{Code: drover.EINVALID, Where: "environment " + from, Message: pr.Message, Hint: pr.Hint}
			}
			if e.runner.Bundles == nil {
				return drover.Errorf(drover.EINTERNAL, "no kept bundles to promote from")
			}
			path, err := e.runner.Bundles.Path(e.spec.Service, pr.Running)
			if err != nil {
				return err
			}
			f.release = path
			rel, cleanup, err := resolveRelease(c.Context(), &f, e)
			if err != nil {
				return err
			}
			defer cleanup()
			if rel.ID() != pr.Running {
				return drover.Errorf(drover.EINVALID, "kept bundle %s holds release %s, not %s", path, rel.ID(), pr.Running).
					WithHint("remove it; then deploy " + pr.Running + " to " + to + " from its original bundle")
			}
			fmt.Fprintf(a.stderr, "drover: promote: %s runs %s on all of its hosts since %s; deploying its kept bundle %s to %s\n",
				from, rel.ID(), pr.Since.UTC().Format(time.RFC3339), path, to)
			if err := a.checkConfirm(e.spec, f.limit, f.yes); err != nil {
				return err
			}
			overrides, err := f.overrides(e.spec)
			if err != nil {
				return err
			}
			e.runner.Confirm = a.confirmer(c.Context(), f.yes, p)
			if f.message == "" {
				f.message = fmt.Sprintf("promote %s from %s", rel.ID(), from)
			}
			out, err := e.runner.Deploy(c.Context(), runner.DeployOptions{Release: rel, Limit: f.limit, Force: f.force, Message: f.message, Overrides: overrides})
			if err != nil {
				return err
			}
			for _, r := range verdictsOf(out) {
				p.verdict(r)
			}
			a.exit(out.ExitCode)
			return nil
		},
	}
	f.add(c, true)
	f.addOverrides(c)
	// promote's release is FROM's: --release and --version do not apply.
	c.Flags().MarkHidden("release")
	c.Flags().MarkHidden("version")
	return c
}
