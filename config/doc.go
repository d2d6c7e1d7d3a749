// Package config loads drover.yaml into a validated, fully resolved
// *drover.Spec.
//
// The model has three layers, each with its own type:
//
//   - File is the raw YAML shape, decoded strictly: an unknown key anywhere
//     is an error, because a misspelt "failure_limt" that silently falls back
//     to the default of 0 (or worse, a misspelt "batch" that falls back to 1
//     in a group that was meant to go 25% at a time) is how a careful rollout
//     becomes a careless one.
//   - File.Validate checks every rule the file must satisfy on its own and for
//     every fleet it describes: the top-level hosts and groups, and each
//     environment overlay applied on top of them. A mistake in the "prod"
//     overlay is reported while deploying "staging", before anything is
//     touched, not on the day prod is deployed.
//   - File.Spec applies the overlay for one environment (--env), expands
//     group patterns to host names, turns "n%" batches and failure limits
//     into whole numbers of hosts and fills in defaults (the Default*
//     constants of package drover).
//
// Environments overlay the file: an environment's hosts and groups replace
// the top-level ones when present, its vars are merged into every host's vars
// (a host's own vars win) and its deploy_root replaces the top-level one.
// Its requires names the environment its releases must come from; the spec
// carries it with that environment's hosts, and the required one's spec
// lists who requires it (promotion.go).
//
// Groups are deployed in file order. A group's hosts list holds host names
// or path.Match globs; a host belongs to the first group that names it, so a
// final catch-all group ["*"] collects every host not named earlier. A
// pattern that matches no host at all, a group left empty because earlier
// groups took its hosts, and a host that no group takes are all errors: each
// is a fleet that would be deployed differently from how it reads.
//
// Templates (hooks, checks, config file validate commands) are parsed at
// load time, then executed once per host with placeholder release values, so
// a typo such as {{.Host.Vars.prot}} or a host without the var a check needs
// is reported here, at the template's line and naming the host, instead of
// halting a deploy half way through.
//
// Every error is a *drover.Error with code EINVALID, Where "file:line" and a
// hint. Validation reports every problem it finds, ordered by line, joined
// with errors.Join; YAML syntax and shape errors stop decoding and come alone.
package config
