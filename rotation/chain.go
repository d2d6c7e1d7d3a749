package rotation

import (
	"context"
	"errors"
	"time"

	"drover"
)

// Chain runs several rotations as one: Depool and WaitIdle in order,
// Repool in reverse, so that the balancer named first is the first to stop
// sending traffic and the last to start again.
type Chain []drover.Rotation

var _ drover.Rotation = Chain(nil)

// New returns the rotation s asks for: the HAProxy integration of its
// rotation block, then its depool/wait_idle/repool hooks. It returns nil
// when s takes hosts out of rotation in no way.
func New(s *drover.Spec) drover.Rotation {
	var c Chain
	if s.Rotation.HAProxy != nil {
		c = append(c, NewHAProxy(*s.Rotation.HAProxy))
	}
	if s.Hooks.Depool != "" || s.Hooks.WaitIdle != "" || s.Hooks.Repool != "" {
		c = append(c, &Commands{DepoolCmd: s.Hooks.Depool, WaitIdleCmd: s.Hooks.WaitIdle, RepoolCmd: s.Hooks.Repool, Timeout: s.Hooks.Timeout})
	}
	switch len(c) {
	case 0:
		return nil
	case 1:
		return c[0]
	}
	return c
}

// Depool depools through each rotation in order and stops at the first
// error: the runner then repools, which undoes the ones that succeeded.
func (c Chain) Depool(ctx context.Context, h drover.RotationHost) error {
	for _, r := range c {
		if err := r.Depool(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// WaitIdle waits on each rotation in order; they share timeout. A timeout
// in one does not skip the others (each may still force its part out),
// and is returned after them.
func (c Chain) WaitIdle(ctx context.Context, h drover.RotationHost, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var timedOut error
	for _, r := range c {
		err := r.WaitIdle(ctx, h, max(time.Until(deadline), time.Millisecond))
		switch {
		case err == nil:
		case drover.ErrorCode(err) == drover.ETIMEOUT && ctx.Err() == nil:
			if timedOut == nil {
				timedOut = err
			}
		default:
			return err
		}
	}
	return timedOut
}

// Repool repools through every rotation in reverse order, even after one
// failed: a host must never stay out of a balancer because another one
// refused it. The errors are joined.
func (c Chain) Repool(ctx context.Context, h drover.RotationHost) error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i].Repool(ctx, h); err != nil {
			errs = append(errs, err)
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return &drover.Error{Code: drover.ErrorCode(errs[0]), Message: "repool", Err: errors.Join(errs...)}
}
