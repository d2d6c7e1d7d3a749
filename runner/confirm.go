package runner

import (
	"context"
	"fmt"
	"time"

	"drover"
	"drover/rollout"
)

// This file is the confirm gate: a group with `confirm: true` asks a
// person, once all its hosts are done and its other gates passed, before
// the deploy moves past it. "No", no answer within ConfirmTimeout, or no
// way to ask all halt the deploy and roll back what it switched: a deploy
// nobody approved does not go on, and does not stay half-done either.
//
// Asking is the caller's (Runner.Confirm): the CLI asks on a terminal and
// answers yes itself for --yes; without a terminal and without --yes it
// refuses the deploy before anything is touched, so this gate never waits
// for input nobody can type.

// ConfirmTimeout bounds how long a confirm gate waits for its answer.
const ConfirmTimeout = 30 * time.Minute

// GateConfirm is the name of the confirm gate, in events and the journal.
const GateConfirm = "confirm"

// confirmGates is the GateSource of groups with confirm: true.
func (r *Runner) confirmGates(g drover.Group, last bool) []groupGate {
	if !g.Confirm {
		return nil
	}
	q := fmt.Sprintf("group %s is done. Go on with the next group?", g.Name)
	if last {
		q = fmt.Sprintf("group %s is done, the last one. Keep the new release? (no rolls every host back)", g.Name)
	}
	return []groupGate{{
		plan: rollout.Gate{Name: GateConfirm, Kind: rollout.GateRun}, kind: "confirm",
		timeout: ConfirmTimeout,
		run: func(ctx context.Context) error {
			if r.Confirm == nil {
				return drover.Errorf(drover.EFAILED, "group %s needs a confirmation and there is no one to ask", g.Name).
					WithHint("run drover in a terminal, or pass --yes")
			}
			ok, err := r.Confirm(ctx, q)
			switch {
			case err != nil:
				return fmt.Errorf("asking to confirm group %s: %w", g.Name, err)
			case !ok:
				return drover.Errorf(drover.EFAILED, "not confirmed: the operator declined to go past group %s", g.Name)
			}
			return nil
		},
	}}
}
