// Package hello is the sample service drover deploys in `drover demo` and in
// the end-to-end tests: a tiny HTTP server that reports its version and its
// health, configured by a file that drover renders per host.
//
// The service's code ships inside the drover binary (the hidden subcommand
// `drover sample-service`, which calls Main) so that the demo needs nothing
// but that one binary: no Go toolchain, no second download. What drover
// actually rolls out is the release directory written by WriteRelease — a
// config template, a VERSION file and a few POSIX shell scripts (bin/hello,
// bin/restart, bin/stop) that find `drover` on PATH. Those scripts are the
// part a real service would own, and they show the contract drover expects
// from a service: a config it can validate before switching (`-check`), a
// restart hook that returns at once and leaves the service fully detached,
// and endpoints the checks can ask (/version, /health).
//
// A release is made unhealthy by baking `health = fail` into its config
// template: the process starts and serves /version, but /health answers 500,
// which is exactly the "it started but it is broken" case drover's checks
// must catch and roll back.
package hello
