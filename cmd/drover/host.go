package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"drover"
	sshtransport "drover/transport/ssh"
)

// hostCmd is the host side of transport ssh: `drover host OP --root DIR`
// runs on the target, reads one JSON request on stdin (for stage, the
// bundle follows it), performs the operation with package hostops and
// answers one JSON line on stdout. drover uploads itself to every host and
// runs this; people do not.
func (a *app) hostCmd() *cobra.Command {
	var root string
	c := &cobra.Command{
		Use:    "host OP --root DEPLOY_ROOT",
		Short:  "Perform one host operation here, speaking JSON on stdin/stdout (run by transport ssh)",
		Hidden: true,
		Long: `host is what drover runs on a target over SSH. OP is one of: ` + strings.Join(sshtransport.Ops, ", ") + `.
It reads a JSON request line on stdin and writes a JSON response line on stdout.
OP ` + sshtransport.OpServe + ` serves many requests, one after another, on the same stdin and stdout.`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{fmt.Errorf("host takes one operation (%s), got %d arguments", strings.Join(sshtransport.Ops, ", "), len(args))}
			}
			self, err := os.Executable()
			if err != nil {
				return drover.Errorf(drover.EINTERNAL, "find this binary: %v", err)
			}
			return sshtransport.Serve(c.Context(), args[0], a.stdin, a.stdout, sshtransport.ServeOptions{Root: root, Self: self, RunCheck: checkRun})
		},
	}
	c.Flags().StringVar(&root, "root", "", "the deploy root on this host")
	return c
}

// newSSHTransport is transport ssh with the config's ssh: settings, the
// command line's --host-binary and --ssh-accept-new over them.
func newSSHTransport(cfg sshtransport.Config, f specFlags, stderr interface{ Write([]byte) (int, error) }) *sshtransport.Transport {
	if f.hostBinary != "" {
		cfg.HostBinary = f.hostBinary
	}
	if f.acceptNew {
		cfg.TrustOnFirstUse = true
	}
	return &sshtransport.Transport{
		Config: cfg,
		Notice: func(host, msg string) { fmt.Fprintf(stderr, "drover: host %s: %s\n", host, msg) },
	}
}
