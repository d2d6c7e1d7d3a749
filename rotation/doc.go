// Package rotation takes hosts out of a load balancer's rotation before
// their service restarts and puts them back once their checks pass: the
// implementations of drover.Rotation.
//
// The model: depool → wait until idle → (the runner switches, restarts and
// checks the host) → repool. Two ways to do it, combinable:
//
//   - Commands runs the hooks.depool, hooks.wait_idle and hooks.repool
//     command templates on the host (through drover.HostConn.Exec), for
//     any balancer a script can talk to.
//   - HAProxy talks to HAProxy's runtime API (the stats socket, level
//     admin) from the machine running drover: depool sets the server to
//     drain, wait-idle polls its current sessions (scur) until they reach
//     0 — past the drain timeout it sets the server to maint, so no new
//     request arrives whatever happens next — and repool sets it ready and
//     waits until HAProxy's own health check reports it UP.
//
// New builds what a spec asks for; Chain runs several, depooling in order
// and repooling in reverse, so the balancer in front is the first to stop
// sending traffic and the last to start again.
//
// A host never stays out of rotation after drover exits: the runner
// repools a host whose depool failed (it may have half-happened), repools
// after a failed deploy step through the restore path, and after a crash
// the journal sends every host the dead deploy touched through the restore
// path, repool included. A repool that fails is reported; the server is
// left administratively ready, and the balancer's health check keeps a
// broken host from receiving traffic.
package rotation
