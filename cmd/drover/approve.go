package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"drover"
	"drover/check/prometheus"
	"drover/config"
	"drover/runner"
)

// This file is `drover approve` and `drover abort`, which decide about a
// running deploy from another process (a second terminal, a CI job), and
// the wiring of canary analysis and approvals into the runner.

// wireCanary gives a runner what canary analysis and approval gates need:
// the Prometheus analyzer, the store's approvals, and a prompt when drover
// runs in a terminal.
func (a *app) wireCanary(r *runner.Runner, st drover.Store) {
	r.Analyzer = &prometheus.Analyzer{}
	if ap, ok := st.(drover.Approvals); ok {
		r.Approvals = ap
	}
	r.AskApproval = a.askApproval
}

// askApproval asks at the terminal, beside the polling of the store. It
// never waits without a terminal (runner.ErrNoTerminal: the gate then
// waits for `drover approve` only). --yes does not answer it: an approval
// gate is there for a person, and a CI job that passes --yes to get past
// confirmations must still stop at it.
func (a *app) askApproval(ctx context.Context, question string) (bool, error) {
	if !isTerminal(a.stdin) {
		return false, runner.ErrNoTerminal
	}
	lines := terminalLines(a.stdin)
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	select {
	case line, ok := <-lines:
		if !ok {
			return false, runner.ErrNoTerminal
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true, nil
		}
		return false, nil
	case <-ctx.Done():
		fmt.Fprintln(a.stderr, "(decided elsewhere)")
		return false, ctx.Err()
	}
}

// stdinLines holds one line reader per input stream. A read from a
// terminal cannot be cancelled, so the reader is one goroutine per stream
// for the life of the process, handing lines to whichever prompt is
// waiting; a prompt that gives up (the deploy was approved from another
// process) leaves no goroutine of its own behind, and the next prompt
// gets the next line.
var stdinLines sync.Map // io.Reader -> chan string

func terminalLines(r io.Reader) <-chan string {
	if ch, ok := stdinLines.Load(r); ok {
		return ch.(chan string)
	}
	ch := make(chan string)
	if prev, loaded := stdinLines.LoadOrStore(r, ch); loaded {
		return prev.(chan string)
	}
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// decisionEnv is what approve and abort need: the spec's key and the
// store's approvals. No transport: deciding touches no host.
type decisionEnv struct {
	spec      *drover.Spec
	store     drover.Store
	approvals drover.Approvals
}

func (a *app) openDecisions(f specFlags) (*decisionEnv, error) {
	cfg, err := config.LoadConfig(f.config, f.env)
	if err != nil {
		return nil, err
	}
	spec := cfg.Spec
	dir, err := stateDir(spec)
	if err != nil {
		return nil, err
	}
	st, err := openStore(spec, cfg.Etcd, dir)
	if err != nil {
		return nil, err
	}
	ap, ok := st.(drover.Approvals)
	if !ok {
		st.Close()
		return nil, drover.Errorf(drover.EINVALID, "the state store %q cannot record approvals", spec.Store).At(spec.Source).
			WithHint("use store: sqlite or store: file")
	}
	return &decisionEnv{spec: spec, store: st, approvals: ap}, nil
}

func decider() string {
	user, machine := runner.Who()
	return user + "@" + machine
}

func (a *app) approveCmd() *cobra.Command {
	var f specFlags
	var message string
	c := &cobra.Command{
		Use:   "approve [DEPLOY-ID]",
		Short: "Let a deploy waiting at an approval gate (approve: manual) go on",
		Long: `approve releases a deploy that waits at a group's approval gate (approve:
manual in drover.yaml). It works from any terminal or CI job that reaches the
same state directory as the deploy: the running deploy sees the decision
within a second and goes on with the next group. Without DEPLOY-ID, the one
deploy of the service (and --env) that waits is approved.`,
		Example: `  drover approve
  drover approve d-20300102T030405-1a2b -m "dashboards look fine"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if a.viaServer() {
				return a.remoteDecide(c.Context(), f, args, c.Name() == "abort", message)
			}
			e, err := a.openDecisions(f)
			if err != nil {
				return err
			}
			defer e.store.Close()
			ctx := c.Context()
			key := runner.Key(e.spec)
			pending, err := e.approvals.Pending(ctx, key)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				kept := pending[:0]
				for _, p := range pending {
					if p.DeployID == args[0] {
						kept = append(kept, p)
					}
				}
				if len(kept) == 0 {
					return notWaiting(ctx, e, args[0])
				}
				pending = kept
			}
			ids := map[string]bool{}
			for _, p := range pending {
				ids[p.DeployID] = true
			}
			switch {
			case len(pending) == 0:
				return drover.Errorf(drover.EINVALID, "no deploy of %s is waiting for approval", key).
					WithHint("drover history shows recent deploys; a gate asks only once its group is done")
			case len(ids) > 1:
				var list []string
				for id := range ids {
					list = append(list, id)
				}
				sort.Strings(list)
				return drover.Errorf(drover.EINVALID, "%d deploys of %s wait for approval: %s", len(ids), key, strings.Join(list, ", ")).
					WithHint("name the one to approve: drover approve DEPLOY-ID")
			}
			// The oldest waiting gate: a deploy waits at one gate at a time.
			p := pending[0]
			d := drover.ApprovalDecision{DeployID: p.DeployID, Verdict: drover.VerdictApprove, Gate: p.Gate, By: decider(), Message: message}
			if err := e.approvals.Decide(ctx, d); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "approved deploy %s at group %s; it goes on\n", p.DeployID, p.Group)
			return nil
		},
	}
	f.add(c)
	c.Flags().StringVarP(&message, "message", "m", "", "a note recorded with the decision")
	return c
}

// notWaiting explains why a named deploy cannot be approved.
func notWaiting(ctx context.Context, e *decisionEnv, id string) error {
	d, err := e.store.Deploy(ctx, id)
	switch {
	case err != nil:
		return err
	case !d.Finished.IsZero():
		return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s)", id, d.Outcome)
	case d.Key != runner.Key(e.spec):
		return drover.Errorf(drover.EINVALID, "deploy %s is a deploy of %s, not of %s", id, d.Key, runner.Key(e.spec)).
			WithHint("pass the -c and --env of that deploy")
	}
	return drover.Errorf(drover.EINVALID, "deploy %s is running but not waiting for approval", id).
		WithHint("wait until its gate asks, or stop it with drover abort " + id)
}

func (a *app) abortCmd() *cobra.Command {
	var f specFlags
	var message string
	var yes bool
	c := &cobra.Command{
		Use:   "abort [DEPLOY-ID]",
		Short: "Stop a running deploy from another terminal: it halts and rolls back",
		Long: `abort asks a running deploy to stop, from any terminal or CI job that reaches
the same state directory. The deploy sees the request within a second —
while it waits at an approval gate, or between steps — halts, lets running
steps finish and puts every host it switched back where it was. Without
DEPLOY-ID, the one running deploy of the service (and --env) is aborted.`,
		Example: `  drover abort -m "error rate up on the canary"
  drover abort d-20300102T030405-1a2b`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if a.viaServer() {
				return a.remoteDecide(c.Context(), f, args, c.Name() == "abort", message)
			}
			e, err := a.openDecisions(f)
			if err != nil {
				return err
			}
			defer e.store.Close()
			ctx := c.Context()
			key := runner.Key(e.spec)
			var id string
			if len(args) == 1 {
				id = args[0]
				d, err := e.store.Deploy(ctx, id)
				if err != nil {
					return err
				}
				if d.Key != key {
					return drover.Errorf(drover.EINVALID, "deploy %s is a deploy of %s, not of %s", id, d.Key, key).
						WithHint("pass the -c and --env of that deploy")
				}
			} else {
				open, err := e.store.Unfinished(ctx, key)
				if err != nil {
					return err
				}
				switch len(open) {
				case 0:
					return drover.Errorf(drover.EINVALID, "no deploy of %s is running", key).
						WithHint("drover history shows recent deploys")
				case 1:
					id = open[0].ID
				default:
					var list []string
					for _, d := range open {
						list = append(list, d.ID)
					}
					return drover.Errorf(drover.EINVALID, "%d unfinished deploys of %s: %s", len(open), key, strings.Join(list, ", ")).
						WithHint("name the one to abort: drover abort DEPLOY-ID")
				}
			}
			d := drover.ApprovalDecision{DeployID: id, Verdict: drover.VerdictAbort, By: decider(), Message: message}
			if err := e.approvals.Decide(ctx, d); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "abort requested for deploy %s; it halts and rolls back what it switched (if its process died, run drover resume)\n", id)
			return nil
		},
	}
	f.add(c)
	c.Flags().StringVarP(&message, "message", "m", "", "why; recorded and shown in the deploy's halt reason")
	addYes(c, &yes)
	return c
}
