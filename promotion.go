package drover

import (
	"context"
	"time"
)

// Requirement is environments.NAME.requires: a deploy to this environment
// accepts only a release that succeeded in Env and stayed there, healthy,
// for Soak (rollout.Promotable decides it from Env's history). It answers
// "what reached production is not what we tested on staging": a rebuilt
// bundle with the same version string, or a release whose staging deploy
// rolled back an hour ago, would otherwise go out on the word of whoever
// typed the command.
type Requirement struct {
	// Env is the environment releases must come from.
	Env string
	// Soak is how long the release must have run on all of Env, with no
	// failed deploy, rollback or recovery there since, before it is
	// accepted here; 0 asks only that it succeeded there.
	Soak time.Duration
	// Hosts are Env's hosts: a release soaks once it runs on every one
	// of them, so a deploy --limit'ed to half of staging proves nothing
	// about the other half's config.
	Hosts []string
}

// BundleStore keeps release bundles on the machine running drover, by
// release ID (which carries the content hash), so that `drover promote`
// deploys exactly the bytes another environment runs rather than a bundle
// rebuilt, or fetched again, under the same name. release.Dir implements
// it under the state directory.
type BundleStore interface {
	// Keep stores rel's bundle (a verified release of service) under its
	// ID. Keeping one already kept only marks it as recently used.
	Keep(ctx context.Context, service string, rel *Release) error
	// Path returns the kept bundle of release id of service. ENOTFOUND,
	// naming where it was looked for, when it is not (or no longer) kept.
	Path(service, id string) (string, error)
}
