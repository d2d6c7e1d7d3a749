// Package ssh is the transport for real servers: it reaches hosts the way
// operators already do, over OpenSSH-compatible SSH (golang.org/x/crypto/ssh),
// with their keys, their ssh-agent, their known_hosts and their jump host,
// and needs nothing installed on the targets by hand.
//
// # The model
//
// One Transport serves one drover command. It keeps ONE SSH connection per
// host and runs every step of that host as a new session on it (SSH
// multiplexes sessions over a connection), so a deploy of hundreds of hosts
// costs one TCP connection and one key exchange per host, not one per step.
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
// Every operation then runs that binary as `drover host OP`, which calls
// the same package hostops that transport/local calls in-process, so a
// local fleet and a real one behave the same. A host whose OS or
// architecture (uname -sm) differs from this machine's is refused with a
// clear message unless SSHConfig.HostBinary (--host-binary) provides a
// drover built for it.
//
// # The wire protocol
//
// `drover host OP --root ROOT` reads one JSON line, a Request, from stdin
// and writes one JSON line, a Response, to stdout. Stage is followed on
// stdin by the release bundle itself, whose sha256 hostops.Stage checks as
// it unpacks: no scp or sftp is needed. Errors travel as drover.Error
// fields, so a hint written on the host reaches the operator.
//
// # Trust
//
// Host keys are always verified against known_hosts (knownhosts). An
// unknown key or one that differs from the recorded key refuses that host
// with an error naming it, the key's fingerprint and the command that fixes
// it; the code is EINVALID, so a deploy touching such a host is refused
// before anything is staged. Trust on first use is only ever done when
// asked for (SSHConfig.TrustOnFirstUse, --ssh-accept-new): the new key is
// appended to known_hosts and the operator is told. A changed key is never
// accepted silently — that is exactly what a man in the middle looks like.
package ssh
