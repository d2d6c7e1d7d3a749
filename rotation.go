package drover

import (
	"context"
	"time"
)

// Rotation is how drover takes a host out of a load balancer's rotation
// before its service restarts and puts it back once its checks pass. Package
// rotation implements it with command hooks run on the host
// (hooks.depool, hooks.wait_idle, hooks.repool) and natively over HAProxy's
// runtime API; the runner calls it in its depool and repool steps.
//
// Every method returns an *Error: EFAILED when the balancer refused or a
// hook failed, EUNREACHABLE when the host (for hooks) or the balancer
// could not be reached, ETIMEOUT when ctx or the method's own timeout ran
// out, EINVALID for a server name the balancer's protocol cannot carry.
type Rotation interface {
	// Depool stops new requests reaching the host. Requests already in
	// flight go on (the server drains); WaitIdle waits for them.
	Depool(ctx context.Context, h RotationHost) error
	// WaitIdle returns once the host serves no request, or an *Error with
	// code ETIMEOUT when it is still busy after timeout. A balancer that
	// can force the host out (HAProxy's maint) does so before returning
	// ETIMEOUT, so that whatever the caller does next, no new request
	// arrives. The caller goes on after ETIMEOUT: a drain timeout is the
	// operator's bound on how long a restart may wait for slow clients.
	WaitIdle(ctx context.Context, h RotationHost, timeout time.Duration) error
	// Repool puts the host back into rotation and returns once the
	// balancer sends it traffic again (HAProxy: its health check reports
	// it UP). An error leaves the host administratively in rotation: a
	// balancer never routes to a server its health check finds down, and
	// a host left out of rotation after drover exits is the failure this
	// interface exists to prevent.
	Repool(ctx context.Context, h RotationHost) error
}

// RotationHost is the host a Rotation acts on, with what command hooks
// need to run there.
type RotationHost struct {
	Host Host
	// Data is what the host's templates see for the release involved:
	// the new release while deploying, the one being restored while
	// restoring.
	Data TemplateData
	// Dir is where command hooks run, relative to the deploy root: ""
	// is the current release, "." the deploy root (a host that has no
	// current release yet).
	Dir string
	// Conn returns the connection to the host (opened on first use).
	// Only rotations that run commands on the host call it, so a
	// balancer on the controller can depool a host that is unreachable.
	Conn func(ctx context.Context) (HostConn, error)
}

// RotationSpec is the rotation: block of drover.yaml: native load balancer
// integrations. Command hooks live in Hooks (depool, wait_idle, repool).
type RotationSpec struct {
	// HAProxy, when not nil, depools through HAProxy's runtime API.
	HAProxy *HAProxyRotation
}

// Defaults of the HAProxy rotation.
const (
	DefaultHAProxyServer       = "{{.Host.Name}}"
	DefaultDrainTimeout        = 30 * time.Second
	DefaultHAProxyUpTimeout    = 30 * time.Second
	DefaultHAProxyPollInterval = 200 * time.Millisecond
)

// HAProxyRotation takes hosts out of an HAProxy backend through its runtime
// API (the stats socket with level admin), on the machine running drover.
type HAProxyRotation struct {
	// Socket is the runtime API: a unix socket path or host:port.
	Socket string
	// Backend is the backend holding the servers.
	Backend string
	// Server is a template naming a host's server in Backend; it sees
	// what host templates see (default "{{.Host.Name}}").
	Server string
	// DrainTimeout bounds waiting for a drained server's sessions to end;
	// then the server is put in maint and the deploy goes on.
	DrainTimeout time.Duration
	// UpTimeout bounds waiting for a repooled server's health check to
	// report it UP; past it the repool fails.
	UpTimeout time.Duration
}

// DrainTimeout is how long the depool step waits for a host to go idle:
// the HAProxy rotation's drain_timeout when there is one, else the hooks'
// timeout (hooks.wait_idle runs under it).
func (s *Spec) DrainTimeout() time.Duration {
	if s.Rotation.HAProxy != nil && s.Rotation.HAProxy.DrainTimeout > 0 {
		return s.Rotation.HAProxy.DrainTimeout
	}
	if s.Hooks.Timeout > 0 {
		return s.Hooks.Timeout
	}
	return DefaultHookTimeout
}

// HasRotation reports whether the spec takes hosts out of rotation at all.
func (s *Spec) HasRotation() bool {
	return s.Rotation.HAProxy != nil || s.Hooks.Depool != "" || s.Hooks.Repool != "" || s.Hooks.WaitIdle != ""
}
