// Package ssh is the transport for real servers: it reaches hosts the way
// operators already do, over OpenSSH-compatible SSH (golang.org/x/crypto/ssh),
// with their keys, their ssh-agent, their known_hosts and their jump host,
// and needs nothing installed on the targets by hand.
//
// # The model
//
// One Transport serves one drover command. It keeps ONE SSH connection per
// host, and on it ONE long-lived session running `drover host serve`, which
// carries every step of that host as a request line and a response line.
// A deploy of hundreds of hosts thus costs, per host, one TCP connection,
// one key exchange and one session — one process launch and one login
// shell (whose rc files may cost more than everything else) — not one of
// each per step. Steps that overlap on a host get a second session.
// A connection that is lost (the keepalive goes unanswered, the server
// closes it) is dropped, the step running on it is reported EUNREACHABLE,
// and the next step on that host connects again. Transport.Close closes
// every connection and waits for their goroutines.
//
// Host-side work is not written in shell. On first contact drover uploads
// ITSELF to the host, content-addressed under the deploy root:
//
//	<deploy_root>/.drover/bin/drover-<first 16 hex of its sha256>
//
// streamed over a session's stdin, its sha256 checked on the host before
// it is renamed into place with mode 0700 (run by the deploy user only).
// Every operation then goes to that binary, `drover host serve`, which
// calls the same package hostops that transport/local calls in-process,
// so a local fleet and a real one behave the same. The first session on a
// host is the probe (uname, is drover there, state.json), which ends by
// exec'ing `drover host serve` when drover is there: a host that already
// holds this drover costs a single session for the whole command. A host whose OS or
// architecture (uname -sm) differs from this machine's is refused with a
// clear message unless Config.HostBinary (--host-binary) provides a
// drover built for it.
//
// # The wire protocol
//
// `drover host serve --root ROOT` writes a greeting line (Response.Ready),
// then reads one JSON line, a Request naming its Op, and writes one JSON
// line, a Response, again and again until stdin ends. A request's Body
// bytes follow its line: for stage, the release bundle itself, whose
// sha256 hostops.Stage checks as it unpacks, so no scp or sftp is needed.
// EOF on stdin cancels the operation running (the controller is gone); a
// step whose deadline passes is cancelled with SIGTERM and its session
// dropped, and a lost connection is EUNREACHABLE, as before.
//
// `drover host OP --root ROOT`, one operation per session (the request
// line, for stage the bundle up to EOF, one response line), is kept: a
// --host-binary that does not answer serve's greeting is driven that way,
// and Transport.OneShot forces it. Errors travel as drover.Error fields,
// so a hint written on the host reaches the operator.
//
// # Trust
//
// Host keys are always verified against known_hosts (knownhosts). An
// unknown key or one that differs from the recorded key refuses that host
// with an error naming it, the key's fingerprint and the command that fixes
// it; the code is EINVALID, so a deploy touching such a host is refused
// before anything is staged. Trust on first use is only ever done when
// asked for (Config.TrustOnFirstUse, --ssh-accept-new): the new key is
// appended to known_hosts and the operator is told. A changed key is never
// accepted silently — that is exactly what a man in the middle looks like.
package ssh
