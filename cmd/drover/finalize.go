package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"drover"
	"drover/runner"
)

// finalizeCmd is `drover finalize`: the end of a blue/green deploy.
func (a *app) finalizeCmd() *cobra.Command {
	var f specFlags
	var limit, output string
	var yes bool
	c := &cobra.Command{
		Use:   "finalize",
		Short: "Stop the old colour kept running after a blue/green deploy",
		Long: `finalize ends the last blue/green deploy (strategy: blue-green): on every host
(or those --limit selects) that keeps its old colour running for an instant
switch back, it runs blue_green.stop_idle for that colour and records it
stopped. Afterwards a rollback starts the old release again instead of
switching back at once. The next deploy finalizes by itself once keep_old
has passed, and refuses to deploy before then.

Exit 0 when every host is finalized (or had nothing to finalize), 3 when a
host could not be.`,
		Example: `  drover finalize --yes
  drover finalize --limit 'web*' --yes`,
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
			if err := a.confirm(yes, fmt.Sprintf("stop the old colour of %s?", e.spec.Service)); err != nil {
				return err
			}
			res, err := e.runner.Finalize(c.Context(), runner.FinalizeOptions{Limit: limit})
			if err != nil {
				return err
			}
			if output != "json" {
				if len(res.Stopped) == 0 && len(res.Failed) == 0 {
					fmt.Fprintln(a.stdout, "finalize: nothing to finalize")
				}
				for _, s := range res.Stopped {
					fmt.Fprintln(a.stdout, "finalize: stopped "+s)
				}
			}
			if len(res.Failed) > 0 {
				fmt.Fprintf(a.stderr, "finalize: %s could not be finalized:\n  %s\n", plural(len(res.Failed), "host"), strings.Join(res.Failed, "\n  "))
				a.exit(drover.ExitNeedsPerson)
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().StringVar(&limit, "limit", "", "only hosts matching these comma-separated globs (!GLOB excludes)")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "answer yes to every confirmation")
	c.Flags().StringVar(&output, "output", "text", "text or json (NDJSON events)")
	return c
}
