package ssh

import "time"

// Config is the ssh: block of drover.yaml, which config fills: how
// Transport logs in, verifies host keys and finds dead connections.
type Config struct {
	// User logs in; "" means the user running drover.
	User string
	// Identity is a private key file; "" means only the ssh-agent at
	// $SSH_AUTH_SOCK (which is also tried when Identity is set).
	Identity string
	// KnownHosts is the known_hosts file host keys are verified against;
	// "" means ~/.ssh/known_hosts.
	KnownHosts string
	// Port is used for addresses without one.
	Port int
	// ProxyJump is host[:port] of a jump host every connection goes
	// through (OpenSSH's ProxyJump); "" connects directly.
	ProxyJump string
	// TrustOnFirstUse records the key of a host missing from KnownHosts
	// instead of refusing it. A key that differs from a recorded one is
	// refused either way.
	TrustOnFirstUse bool
	// ConnectTimeout bounds the TCP connect and the SSH handshake.
	ConnectTimeout time.Duration
	// KeepaliveInterval is how often a connection is probed, busy or
	// idle; KeepaliveCount is how many intervals in a row a probe may go
	// unanswered before the connection is closed and its host (and the
	// step running on it) is unreachable. A host that stops answering is
	// so found within KeepaliveInterval × (KeepaliveCount + 1).
	KeepaliveInterval time.Duration
	KeepaliveCount    int
	// ConnectParallelism bounds how many hosts are connecting at once.
	ConnectParallelism int
	// HostBinary is a drover binary built for hosts whose OS or
	// architecture differ from this machine's; "" uploads this binary.
	HostBinary string
}

// Defaults for what Config leaves zero.
const (
	DefaultPort           = 22
	DefaultConnectTimeout = 10 * time.Second
	// A host that stops answering is found within
	// DefaultKeepaliveInterval × (DefaultKeepaliveCount + 1) = 20 s
	// (keepalive).
	DefaultKeepaliveInterval  = 5 * time.Second
	DefaultKeepaliveCount     = 3
	DefaultConnectParallelism = 32
)
