package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"drover"
)

// This file runs the lifecycle hooks around a host's steps:
//
//	stage:    before_stage  (deploy root)  · stage ·  after_stage   (the staged release)
//	switch:   before_promote (the staged release) · promote · after_promote (current)
//	restart:  before_restart (current) · restart hook · after_restart (current)
//	restore:  before_rollback (current) · restore · after_rollback (current)
//
// On the way to the new release a failing hook fails its step; a failing
// before-hook fails it before the step changed anything. For the switch
// that matters to the core: a switch that failed may have swapped the link
// and is undone through the restore path, but one refused by
// before_promote never touched the host, which then only goes back into
// rotation (rollout.Result.Unchanged) — its release, its state.json and
// its running service stay exactly as they were.
//
// On the restore path (a failed host, a rollback, a recovery) a failing
// hook is reported and the undo goes on: a hook that stops a restore would
// leave the host on the release just found bad and out of rotation, which
// is what the restore path exists to prevent.

// unchanged marks an error of a step that failed before it changed
// anything on the host.
type unchanged struct{ error }

func (u unchanged) Unwrap() error { return u.error }

// isUnchanged reports whether err is a step's refusal before any change.
func isUnchanged(err error) bool {
	var u unchanged
	return errors.As(err, &u)
}

// stageStep is before_stage, stage, after_stage. h is a pointer and the
// hooks are called only when set: every host waits for its transfer in
// here (see retrying on why the frames on that path are kept small).
func (x *executor) stageStep(ctx context.Context, h *drover.Host) error {
	if x.spec.Hooks.BeforeStage != "" && x.unknown[h.Name] == nil {
		if err := x.stageHook(ctx, h, false); err != nil {
			return err
		}
	}
	if err := x.stage(ctx, h); err != nil {
		return err
	}
	if x.spec.Hooks.AfterStage == "" {
		return nil
	}
	return x.stageHook(ctx, h, true)
}

// stageHook runs before_stage (in the deploy root) or after_stage (in the
// staged release).
//
//go:noinline
func (x *executor) stageHook(ctx context.Context, h *drover.Host, after bool) error {
	if after {
		return x.lifecycle(ctx, *h, "after_stage", x.spec.Hooks.AfterStage, x.stagedDir(h.Name), false)
	}
	return x.lifecycle(ctx, *h, "before_stage", x.spec.Hooks.BeforeStage, ".", false)
}

// switchStep is before_promote, promote, after_promote.
func (x *executor) switchStep(ctx context.Context, h drover.Host) error {
	if err := x.lifecycle(ctx, h, "before_promote", x.spec.Hooks.BeforePromote, x.stagedDir(h.Name), false); err != nil {
		return unchanged{err}
	}
	if err := x.promote(ctx, h); err != nil {
		return err
	}
	x.mu.Lock()
	x.current[h.Name] = x.slots[h.Name].Slot
	x.mu.Unlock()
	return x.lifecycle(ctx, h, "after_promote", x.spec.Hooks.AfterPromote, "", false)
}

// restartStep is before_restart, the restart hook, after_restart.
func (x *executor) restartStep(ctx context.Context, h drover.Host, restoring bool) error {
	if err := x.lifecycle(ctx, h, "before_restart", x.spec.Hooks.BeforeRestart, "", restoring); err != nil {
		return err
	}
	if err := x.markLogs(ctx, h, restoring); err != nil {
		return err
	}
	if err := x.runHook(ctx, h, "restart", x.spec.Hooks.Restart, "", restoring); err != nil {
		return err
	}
	return x.lifecycle(ctx, h, "after_restart", x.spec.Hooks.AfterRestart, "", restoring)
}

// restoreStep is before_rollback, restore, after_rollback.
func (x *executor) restoreStep(ctx context.Context, h drover.Host) error {
	x.lifecycle(ctx, h, "before_rollback", x.spec.Hooks.BeforeRollback, x.hookDir(h.Name), true)
	if err := x.restore(ctx, h); err != nil {
		return err
	}
	x.mu.Lock()
	x.current[h.Name] = x.before[h.Name].Current
	x.mu.Unlock()
	x.lifecycle(ctx, h, "after_rollback", x.spec.Hooks.AfterRollback, x.hookDir(h.Name), true)
	return nil
}

// lifecycle runs one lifecycle hook. While restoring a failure is a
// notice and lifecycle returns nil.
func (x *executor) lifecycle(ctx context.Context, h drover.Host, name, tmpl, dir string, restoring bool) error {
	if tmpl == "" {
		return nil
	}
	err := x.runHook(ctx, h, name, tmpl, dir, restoring)
	if err != nil && restoring {
		x.notice(h.Name, name, fmt.Sprintf("%v; restoring goes on", err))
		return nil
	}
	return err
}

// runHook runs the hook template tmpl on h in dir, seeing the release of
// the path h is on.
func (x *executor) runHook(ctx context.Context, h drover.Host, name, tmpl, dir string, restoring bool) error {
	if tmpl == "" {
		return nil
	}
	rh := x.rotationHost(h, restoring)
	rh.Dir = dir
	return execHook(ctx, rh, x.deployID, name, tmpl, x.hookTimeout())
}

// execHook renders a command hook for h and runs it there. An empty
// template does nothing. The hook sees its deploy and its name in
// DROVER_DEPLOY and DROVER_HOOK; the host records them as the holder of
// its lock, so a later run waiting for the host can say what it waits
// for (hostops/lock.go).
func execHook(ctx context.Context, h drover.RotationHost, deployID, name, tmpl string, timeout time.Duration) error {
	if tmpl == "" {
		return nil
	}
	cmd, err := drover.RenderCommand("hooks."+name, tmpl, h.Data)
	if err != nil {
		return err
	}
	conn, err := h.Conn(ctx)
	if err != nil {
		return err
	}
	env := []string{"DROVER_HOOK=" + name}
	if deployID != "" {
		env = append(env, "DROVER_DEPLOY="+deployID)
	}
	res, err := conn.Exec(ctx, drover.ExecRequest{Command: cmd, Dir: h.Dir, Env: env, Timeout: timeout})
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	if res.ExitCode != 0 {
		return &drover.Error{Code: drover.EFAILED, Message: fmt.Sprintf("%s hook exited %d: %s", name, res.ExitCode, tail(res.Output, 300))}
	}
	return nil
}

// stagedDir is the directory the release was staged in on host.
func (x *executor) stagedDir(host string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s, ok := x.slots[host]; ok && s.Slot != "" {
		return "releases/" + s.Slot
	}
	return "."
}

// hookDir is where a hook about the host's current release runs: the
// current release, or the deploy root when the host has none (a first
// deploy before its switch, or rolled back to nothing) — a hook must not
// fail only because there is no current link to run it in.
func (x *executor) hookDir(host string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	cur, known := x.current[host]
	if !known && x.release != nil {
		// Deploying: nothing changed the link yet.
		cur, known = x.before[host].Current, true
	}
	if known && cur == "" {
		return "."
	}
	return ""
}

// lifecycleTimeout is what a step's lifecycle hooks add to its bound.
func (x *executor) lifecycleTimeout(hooks ...string) time.Duration {
	var t time.Duration
	for _, h := range hooks {
		if h != "" {
			t += x.hookTimeout()
		}
	}
	return t
}

func (x *executor) notice(host, step, msg string) {
	x.r.emit(drover.Event{Deploy: x.deployID, Kind: drover.EventNotice, Host: host, Step: step, Message: msg})
}
