package rotation

import (
	"context"
	"fmt"
	"strings"
	"time"

	"drover"
)

// Commands is the rotation of command hooks run on the host: DepoolCmd,
// WaitIdleCmd and RepoolCmd are command templates (hooks.depool,
// hooks.wait_idle, hooks.repool), rendered with drover.RenderCommand so
// every value a template reaches is shell-quoted. An empty template does
// nothing: not every service has a balancer to leave.
type Commands struct {
	DepoolCmd   string
	WaitIdleCmd string
	RepoolCmd   string
	// Timeout bounds the depool and repool commands; the wait-idle
	// command runs under the timeout WaitIdle is given.
	Timeout time.Duration
}

var _ drover.Rotation = (*Commands)(nil)

// Depool runs the depool command. A non-zero exit is EFAILED.
func (c *Commands) Depool(ctx context.Context, h drover.RotationHost) error {
	return c.run(ctx, h, "depool", c.DepoolCmd, c.timeout())
}

// WaitIdle runs the wait-idle command under timeout: it is expected to
// return once the host serves nothing. A command still running at the
// timeout is killed and WaitIdle returns ETIMEOUT; a non-zero exit is
// EFAILED.
func (c *Commands) WaitIdle(ctx context.Context, h drover.RotationHost, timeout time.Duration) error {
	return c.run(ctx, h, "wait_idle", c.WaitIdleCmd, timeout)
}

// Repool runs the repool command. A non-zero exit is EFAILED.
func (c *Commands) Repool(ctx context.Context, h drover.RotationHost) error {
	return c.run(ctx, h, "repool", c.RepoolCmd, c.timeout())
}

func (c *Commands) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return drover.DefaultHookTimeout
}

func (c *Commands) run(ctx context.Context, h drover.RotationHost, name, tmpl string, timeout time.Duration) error {
	if tmpl == "" {
		return nil
	}
	return RunHook(ctx, h, name, tmpl, timeout)
}

// RunHook renders the command template tmpl of hook name for h and runs it
// on h's host in h.Data's terms, in the directory h.Dir names. The error
// names the hook and carries the tail of its output.
func RunHook(ctx context.Context, h drover.RotationHost, name, tmpl string, timeout time.Duration) error {
	cmd, err := drover.RenderCommand("hooks."+name, tmpl, h.Data)
	if err != nil {
		return err
	}
	if h.Conn == nil {
		return drover.Errorf(drover.EINTERNAL, "%s hook: no connection to host %s", name, h.Host.Name)
	}
	conn, err := h.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	res, err := conn.Exec(ctx, drover.ExecRequest{Command: cmd, Dir: h.Dir, Timeout: timeout})
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	if res.ExitCode != 0 {
		return &drover.Error{Code: drover.EFAILED, Message: fmt.Sprintf("%s hook exited %d: %s", name, res.ExitCode, tail(res.Output, 300))}
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
