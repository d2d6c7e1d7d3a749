package runner

import (
	"context"
	"fmt"
	"time"

	"drover"
	"drover/rollout"
)

// promotionHistory bounds how much of the required environment's history
// a deploy reads: enough for any soak, and a store with years of staging
// deploys is not read whole before every production deploy. A release
// whose success lies further back than this is judged as never having run
// there, which refuses, never accepts, wrongly.
const promotionHistory = 1000

// checkPromotion refuses, before anything is touched, a release the
// environment's requires: does not accept (rollout.Promotable): one that
// did not succeed in the required environment, was disturbed there since,
// or has not soaked yet. It reads the required environment's history from
// r.Store, so with a shared store (etcd, a drover server) every operator
// is held to the same history. It returns the words of the acceptance for
// the deploy's record; "" when the environment requires nothing.
func (r *Runner) checkPromotion(ctx context.Context, rel *drover.Release) (string, error) {
	req := r.Spec.Requires
	if req == nil {
		return "", nil
	}
	key := r.Spec.Service + "/" + req.Env
	if err := drover.CheckStoreKey(key); err != nil {
		return "", err
	}
	hist, err := r.Store.History(ctx, key, promotionHistory)
	if err != nil {
		return "", fmt.Errorf("history of %s, which %s requires: %w", req.Env, r.Spec.Env, err)
	}
	p := rollout.Promotable(*req, hist, rel.ID(), r.now())
	if !p.OK() {
		return "", &drover.Error{Code: drover.EINVALID, Where: "environment " + r.Spec.Env,
			Message: fmt.Sprintf("%s accepts only releases that ran in %s (requires: {env: %s, soak: %s}): %s", r.Spec.Env, req.Env, req.Env, rollout.Span(req.Soak), p.Message),
			Hint:    p.Hint}
	}
	return fmt.Sprintf("promotion: release %s has run on every host of %s since %s (soak %s)", p.Release, req.Env, p.Since.UTC().Format(time.RFC3339), rollout.Span(req.Soak)), nil
}

// keepBundle keeps the bundle of a deploy to an environment others
// require, for `drover promote` (drover.BundleStore). Without a place to
// keep it the deploy does not start: a staging that runs a release no one
// can promote byte for byte is the gap promotion closes.
func (r *Runner) keepBundle(ctx context.Context, rel *drover.Release) error {
	if len(r.Spec.RequiredBy) == 0 || r.Bundles == nil {
		return nil
	}
	return r.Bundles.Keep(ctx, r.Spec.Service, rel)
}
