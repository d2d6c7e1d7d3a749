package runner

import (
	"context"
	"fmt"
	"time"

	"drover"
)

// This file runs the depool and repool steps through the Runner's
// Rotation: depool, then wait until the host is idle; repool, which
// returns once the balancer sends the host traffic again.
//
// Where a host is taken out of rotation, the core (package rollout)
// guarantees it comes back: a failed depool is followed by a repool, a
// failed deploy step by the restore path, which ends in a repool; and
// after a crash, recovery sends every host the journal says was touched
// through the restore path. This file only has to make each step do what
// its name says, and to report — never fail — a drain that outlived its
// timeout.

// rotationSlack is added to a rotation step's bound for the balancer's
// own round trips.
const rotationSlack = 15 * time.Second

// rotation is what takes hosts out of rotation in this run: the Runner's,
// or, when none was given, the command hooks of the spec.
func (x *executor) rotation() drover.Rotation {
	if x.r.Rotation != nil {
		return x.r.Rotation
	}
	return hookRotation{x}
}

// checkRotation refuses a run whose spec asks for a native balancer that
// nobody wired into the Runner: depooling through hooks alone would
// restart hosts the balancer still sends traffic to.
func (r *Runner) checkRotation() error {
	if r.Rotation == nil && r.Spec.Rotation.HAProxy != nil {
		return drover.Errorf(drover.EINTERNAL, "%s has a rotation.haproxy block but this runner has no Rotation to act on it", r.Spec.Source).
			WithHint("set Runner.Rotation to rotation.New(spec)")
	}
	return nil
}

// rotationHost is h as the Rotation sees it: the release involved (the new
// one while deploying, the restored one while restoring), and where its
// hooks run.
func (x *executor) rotationHost(h drover.Host, restoring bool) drover.RotationHost {
	return drover.RotationHost{
		Host: h,
		Data: x.data(h, restoring),
		Dir:  x.hookDir(h.Name),
		Conn: func(ctx context.Context) (drover.HostConn, error) { return x.conns.get(ctx, h.Name) },
	}
}

// depool takes h out of rotation and waits until it is idle. A host still
// busy after the drain timeout is reported and the step goes on: the
// timeout is the operator's bound on how long slow clients may hold up a
// deploy, and the balancer has already stopped sending new requests (the
// HAProxy rotation forces maint).
func (x *executor) depool(ctx context.Context, h drover.Host, restoring bool) error {
	rot := x.rotation()
	rh := x.rotationHost(h, restoring)
	if err := rot.Depool(ctx, rh); err != nil {
		return err
	}
	drain := x.spec.DrainTimeout()
	err := rot.WaitIdle(ctx, rh, drain)
	switch {
	case err == nil:
		return nil
	case drover.ErrorCode(err) == drover.ETIMEOUT && ctx.Err() == nil:
		x.notice(h.Name, "depool", fmt.Sprintf("not idle after the drain timeout %s, going on: %v", drain, err))
		return nil
	}
	return fmt.Errorf("wait idle: %w", err)
}

// repool puts h back into rotation.
func (x *executor) repool(ctx context.Context, h drover.Host, restoring bool) error {
	return x.rotation().Repool(ctx, x.rotationHost(h, restoring))
}

// rotationTimeout bounds a depool or repool step: the hooks, the drain or
// the wait for UP, and the balancer's round trips.
func (x *executor) rotationTimeout(depool bool) time.Duration {
	t := x.hookTimeout() + rotationSlack
	if depool {
		return t + x.spec.DrainTimeout()
	}
	if hp := x.spec.Rotation.HAProxy; hp != nil {
		up := hp.UpTimeout
		if up <= 0 {
			up = drover.DefaultHAProxyUpTimeout
		}
		t += up
	}
	return t
}

// hookRotation is the rotation of a Runner given none: the spec's
// depool, wait_idle and repool command hooks (rotation.Commands does the
// same for the CLI, chained with the native balancers).
type hookRotation struct{ x *executor }

func (r hookRotation) Depool(ctx context.Context, h drover.RotationHost) error {
	return execHook(ctx, h, r.x.deployID, "depool", r.x.spec.Hooks.Depool, r.x.hookTimeout())
}

func (r hookRotation) WaitIdle(ctx context.Context, h drover.RotationHost, timeout time.Duration) error {
	return execHook(ctx, h, r.x.deployID, "wait_idle", r.x.spec.Hooks.WaitIdle, timeout)
}

func (r hookRotation) Repool(ctx context.Context, h drover.RotationHost) error {
	return execHook(ctx, h, r.x.deployID, "repool", r.x.spec.Hooks.Repool, r.x.hookTimeout())
}
