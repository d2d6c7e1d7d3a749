package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/release"
	"drover/runner"
)

type deployFlags struct {
	specFlags
	release string
	version string
	limit   string
	force   bool
	yes     bool
	output  string
	message string
	// Emergency overrides (--skip-check, --skip-analysis, --skip-gate):
	// deploy and converge only.
	skipChecks, skipAnalyses, skipGates []string
	// changesNothing: plan; a directory release is packed into a
	// temporary directory, not the state directory's bundle cache.
	changesNothing bool
}

// addOverrides adds the emergency override flags; each needs -m.
func (f *deployFlags) addOverrides(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.skipChecks, "skip-check", nil, "skip the health check NAME for this deploy only (repeatable; needs -m REASON)")
	c.Flags().StringArrayVar(&f.skipAnalyses, "skip-analysis", nil, "skip the metric analysis NAME for this deploy only (repeatable; needs -m REASON)")
	c.Flags().StringArrayVar(&f.skipGates, "skip-gate", nil, "skip a group's gate, GROUP:KIND with KIND one of "+strings.Join(drover.GateKinds, ", ")+", for this deploy only (repeatable; needs -m REASON)")
}

// overrides checks the override flags against spec before anything is
// touched: no -m, or a name spec does not have, is exit 2.
func (f *deployFlags) overrides(spec *drover.Spec) ([]drover.Override, error) {
	return drover.NewOverrides(spec, f.skipChecks, f.skipAnalyses, f.skipGates, f.message)
}

func (f *deployFlags) add(c *cobra.Command, withYes bool) {
	f.specFlags.add(c)
	c.Flags().StringVar(&f.release, "release", "", "the release: a directory (built on the fly) or a bundle made by `drover release build`")
	c.Flags().StringVar(&f.version, "version", "", "the version, for a directory release without a VERSION file")
	c.Flags().StringVar(&f.limit, "limit", "", "only hosts matching these comma-separated globs (!GLOB excludes)")
	c.Flags().BoolVar(&f.force, "force", false, "deploy to hosts already on the release too")
	c.Flags().StringVar(&f.output, "output", "text", "text or json (NDJSON events)")
	c.Flags().StringVarP(&f.message, "message", "m", "", "a message recorded with the deploy")
	if withYes {
		c.Flags().BoolVarP(&f.yes, "yes", "y", false, "answer yes to every confirmation")
	}
}

// resolveRelease turns --release into a verified release. A directory is
// packed into a bundle in the state directory's bundle cache (at most
// release.KeepCached bundles are kept), or, for plan (which changes
// nothing) and without a state directory, in a temporary directory that
// cleanup removes.
func resolveRelease(ctx context.Context, f *deployFlags, e *env) (rel *drover.Release, cleanup func(), err error) {
	if f.release == "" {
		return nil, nil, &usageError{fmt.Errorf("--release is required: a release directory or a bundle from `drover release build`")}
	}
	// A directory deployed again (a retry, the next environment, a
	// rollback) reuses the bundle packed last time from the state
	// directory's bundle cache: packing a multi-megabyte tree costs
	// seconds of compression each time (bench/README.md).
	if fi, err := os.Stat(f.release); err == nil && fi.IsDir() && !f.changesNothing {
		if dir, err := stateDir(e.spec); err == nil {
			rel, err := release.ResolveReusing(ctx, f.release, f.version, e.spec.Service, filepath.Join(dir, "bundles"), time.Now())
			if err != nil {
				return nil, nil, err
			}
			return rel, func() {}, nil
		}
	}
	tmp, err := os.MkdirTemp("", "drover-bundle-")
	if err != nil {
		return nil, nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	rel, err = release.Resolve(ctx, f.release, f.version, e.spec.Service, tmp, time.Now())
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return rel, cleanup, nil
}

func (a *app) deployCmd() *cobra.Command {
	var f deployFlags
	var configs *configList
	var planFile string
	c := &cobra.Command{
		Use:   "deploy --release SRC",
		Short: "Roll a release out: stage everywhere, then canary and batches, rolling back past the failure limit",
		Example: `  drover deploy --release ./build --version 1.4.2
  drover deploy -c prod.yaml --env eu --release hello-1.4.2.tar.gz --limit 'web*,!web13'
  drover deploy --release hello.tar.gz --output json | jq .
  drover deploy -c web.yaml -c api.yaml --release ./build --parallel 2`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if planFile != "" && a.viaServer() {
				return &usageError{fmt.Errorf("--plan deploys from this machine; leave out --server")}
			}
			if a.viaServer() {
				return a.remoteDeploy(c.Context(), &f)
			}
			// Several configs: a run of several services (multi.go).
			if files, multi, err := configs.files(); err != nil || multi {
				if err == nil && planFile != "" {
					err = &usageError{fmt.Errorf("--plan takes one drover.yaml")}
				}
				if err != nil {
					return err
				}
				return a.deployMulti(c, files, &f, configs.parallel)
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
			if err := a.checkConfirm(e.spec, f.limit, f.yes); err != nil {
				return err
			}
			overrides, err := f.overrides(e.spec)
			if err != nil {
				return err
			}
			e.runner.Confirm = a.confirmer(c.Context(), f.yes, p)
			rel, cleanup, err := resolveRelease(c.Context(), &f, e)
			if err != nil {
				return err
			}
			defer cleanup()
			var expect string
			if planFile != "" {
				pr, err := readPlan(planFile, rel, e.spec.Service)
				if err != nil {
					return err
				}
				expect = pr.Fingerprint
			}
			if !f.yes {
				f.message = a.deployMessage(f.message, e.spec)
			}
			out, err := e.runner.Deploy(c.Context(), runner.DeployOptions{Release: rel, Limit: f.limit, Force: f.force, Message: f.message, Overrides: overrides, Expect: expect})
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
	c.Flags().StringVar(&planFile, "plan", "", "deploy only if the fleet is still as the plan saved by `drover plan -o FILE` saw it")
	configs = a.multiConfig(c, &f.specFlags)
	return c
}

func (a *app) resumeCmd() *cobra.Command {
	var f specFlags
	var output string
	var yes bool
	c := &cobra.Command{
		Use:   "resume",
		Short: "Finish a deploy that was interrupted (killed, crashed) by rolling back what it touched",
		Long: `resume finds deploys that began and never finished — the drover process was
killed — and takes every host they touched back to its recorded pre-deploy
release, config included, and back into rotation. drover deploy does the same
before its own work, so resume is for when you want the fleet restored
without deploying again.

With no interrupted deploy, resume restores the hosts the last deploy lost:
hosts that stopped answering mid-way (reported UNREACHABLE) are taken back to
their recorded pre-deploy release once they answer again.`,
		Example: `  drover resume
  drover resume -c prod.yaml --env eu --output json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
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
			outs, err := e.runner.Resume(c.Context())
			if err != nil {
				return err
			}
			if len(outs) == 0 {
				// NDJSON on stdout stays parseable: an empty stream.
				w := a.stdout
				if output == "json" {
					w = a.stderr
				}
				fmt.Fprintln(w, "nothing to resume: no interrupted deploy, no host lost by the last one")
				return nil
			}
			code := drover.ExitOK
			for _, o := range outs {
				p.verdict(o)
				if o.ExitCode != drover.ExitOK {
					code = o.ExitCode
				}
			}
			a.exit(code)
			return nil
		},
	}
	f.add(c)
	c.Flags().StringVar(&output, "output", "text", "text or json (NDJSON events)")
	addYes(c, &yes)
	return c
}

// addYes gives a command that changes hosts but asks nothing (resume puts
// hosts back, abort asks a deploy to) the --yes of deploy and rollback, so
// a script passes it to every such command without knowing which ask: a
// script that learned `drover resume --yes` is an unknown flag stops at
// exit 2 in the middle of a recovery.
func addYes(c *cobra.Command, yes *bool) {
	c.Flags().BoolVarP(yes, "yes", "y", false, "answer yes to every confirmation (this command asks none; accepted so scripts pass it uniformly)")
}
