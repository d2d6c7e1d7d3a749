package check

import (
	"context"
	"fmt"
	"time"

	"drover"
)

// commandProbe passes when command exits 0 on the host. An unreachable
// host is returned as an error so that the retries stop: the command
// cannot pass on a host drover cannot reach, and the runner treats an
// unreachable host differently from a failed one (it is skipped during
// rollback and reported for a person, exit 3).
func commandProbe(command string, exec ExecFunc) func(context.Context, time.Duration) (string, error) {
	return func(ctx context.Context, budget time.Duration) (string, error) {
		r, err := exec(ctx, command)
		if err != nil {
			if drover.ErrorCode(err) == drover.EUNREACHABLE {
				return "", err
			}
			if ctx.Err() != nil {
				return fmt.Sprintf("command did not finish within %v", budget.Round(time.Millisecond)), nil
			}
			return fmt.Sprintf("command: %v", err), nil
		}
		if r.ExitCode != 0 {
			out := tail(r.Output)
			if out == "" {
				return fmt.Sprintf("command exited %d", r.ExitCode), nil
			}
			return fmt.Sprintf("command exited %d: %s", r.ExitCode, out), nil
		}
		return "", nil
	}
}
