package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"drover"
	"drover/runner"
	"drover/server"
)

// adoptCmd is `drover adopt`: the one-time step for hosts whose current is
// a live directory rather than a link into releases/.
func (a *app) adoptCmd() *cobra.Command {
	var f specFlags
	var limit string
	var yes, asJSON bool
	c := &cobra.Command{
		Use:   "adopt",
		Short: "Move a live current directory into releases/ so a failed deploy can go back to it",
		Long: `adopt is the one-time step for hosts another tool deployed with a live
directory as current (an Ansible copy, an rsync, a hand-made tree). On every
host (or those --limit selects) whose current is a directory, it moves the
directory to releases/foreign-<12 hex of its content hash> and makes current a
link to it, in one atomic exchange (renameat2): the service keeps running from
the same directory and is not restarted, and current never disappears.
Afterwards drover treats that directory as the host's current, foreign release:
a failed deploy goes back to it, rollback can return to it, and prune never
removes it while it is current or previous (nor after, unless drover.yaml
sets prune_foreign: true).

Hosts whose current is already a link (Capistrano, Scap, or adopted before)
are left alone. deploy and plan refuse a host with a live directory until it
is adopted.

With --server it runs in the drover server (its lock and audit log; the
token needs the deployer role), as deploy and rollback do.

Exit 0 when every targeted host is adopted or had nothing to adopt, 3 when a
host could not be.`,
		Example: `  drover adopt --yes
  drover adopt --limit 'web*' --yes`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			var out *runner.AdoptOutcome
			if a.viaServer() {
				// Through the server, as deploy and rollback go: its
				// lock, its audit log, the token's role.
				if err := a.confirm(yes, fmt.Sprintf("move live current directories into releases/ through %s?", a.remote.url)); err != nil {
					return err
				}
				cl, err := a.client()
				if err != nil {
					return err
				}
				defer cl.Close()
				key, _, err := a.remoteKey(c.Context(), cl, f)
				if err != nil {
					return err
				}
				if out, err = cl.Adopt(c.Context(), key, server.AdoptRequest{Limit: limit}); err != nil {
					return err
				}
			} else {
				e, err := a.open(f, nil)
				if err != nil {
					return err
				}
				defer e.close()
				if err := a.confirm(yes, fmt.Sprintf("move live current directories of %s into releases/?", e.spec.Service)); err != nil {
					return err
				}
				if out, err = e.runner.Adopt(c.Context(), limit); err != nil {
					return err
				}
			}
			a.printAdopt(out, asJSON)
			if out.ExitCode != drover.ExitOK {
				a.exit(out.ExitCode)
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().StringVar(&limit, "limit", "", "only hosts matching these comma-separated globs (!GLOB excludes)")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "answer yes to every confirmation")
	c.Flags().BoolVar(&asJSON, "json", false, "print what was done per host as JSON")
	return c
}

// printAdopt prints what adopt did per host, the same locally and
// through a server. Host-supplied text (errors) is made terminal-safe.
func (a *app) printAdopt(out *runner.AdoptOutcome, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return
	}
	for _, h := range out.Hosts {
		switch {
		case h.Error != "":
			fmt.Fprintf(a.stdout, "%s: not adopted: %s\n", h.Host, termSafe(h.Error))
		case h.Adopted:
			fmt.Fprintf(a.stdout, "%s: adopted: current -> releases/%s (foreign)\n", h.Host, termSafe(h.Slot))
		case h.Slot == "":
			fmt.Fprintf(a.stdout, "%s: no current; nothing to adopt\n", h.Host)
		default:
			fmt.Fprintf(a.stdout, "%s: current is already a link to releases/%s; nothing to adopt\n", h.Host, termSafe(h.Slot))
		}
	}
}
