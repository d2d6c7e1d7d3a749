package main

import (
	"context"

	"drover"
	"drover/check"
)

// checkRun runs checks for transports that run them on this machine.
func checkRun(ctx context.Context, c drover.CheckSpec, exec func(ctx context.Context, command string) (drover.ExecResult, error)) drover.CheckResult {
	return check.Run(ctx, c, check.ExecFunc(exec))
}
