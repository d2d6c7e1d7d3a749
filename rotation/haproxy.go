package rotation

import (
	"context"
	"fmt"
	"time"

	"drover"
)

// HAProxy is the rotation of a server in an HAProxy backend, through the
// runtime API on the machine running drover. The host itself is never
// contacted: a host that is down can still be drained, and put back.
type HAProxy struct {
	Runtime Runtime
	Backend string
	// Server is the template naming a host's server (rendered with
	// drover.Render from the host's template data).
	Server string
	// UpTimeout bounds waiting, after ready, for the health check to
	// report the server UP.
	UpTimeout time.Duration
	// Interval is the pause between polls of `show stat`.
	Interval time.Duration
	// Sleep waits between polls; nil means a timer honoring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock of the timeouts; nil means time.Now.
	Now func() time.Time
}

var _ drover.Rotation = (*HAProxy)(nil)

// NewHAProxy returns the rotation a spec's rotation.haproxy block asks for.
func NewHAProxy(c drover.HAProxyRotation) *HAProxy {
	return &HAProxy{Runtime: Runtime{Addr: c.Socket}, Backend: c.Backend, Server: c.Server, UpTimeout: c.UpTimeout}
}

// ServerName renders the name of h's server.
func (p *HAProxy) ServerName(h drover.RotationHost) (string, error) {
	tmpl := p.Server
	if tmpl == "" {
		tmpl = drover.DefaultHAProxyServer
	}
	name, err := drover.Render("rotation.haproxy.server", tmpl, h.Data)
	if err != nil {
		return "", err
	}
	if err := CheckName("server", name); err != nil {
		return "", err
	}
	return name, nil
}

// Depool sets the server to drain: no new connections from the balancing
// algorithm, sessions in progress go on, health checks keep running.
func (p *HAProxy) Depool(ctx context.Context, h drover.RotationHost) error {
	name, err := p.ServerName(h)
	if err != nil {
		return err
	}
	return p.Runtime.SetState(ctx, p.Backend, name, StateDrain)
}

// WaitIdle polls the server's current sessions until they are 0. Past
// timeout it sets the server to maint — the sessions still open are cut
// when the service restarts, and maint guarantees nothing new arrives in
// the meantime, persistent clients included — and returns ETIMEOUT.
func (p *HAProxy) WaitIdle(ctx context.Context, h drover.RotationHost, timeout time.Duration) error {
	name, err := p.ServerName(h)
	if err != nil {
		return err
	}
	deadline := p.now().Add(timeout)
	for {
		st, err := p.Runtime.Stat(ctx, p.Backend, name)
		if err != nil {
			return err
		}
		if st.Sessions == 0 {
			return nil
		}
		if !p.now().Before(deadline) {
			if err := p.Runtime.SetState(context.WithoutCancel(ctx), p.Backend, name, StateMaint); err != nil {
				return fmt.Errorf("still %d sessions after %s, and putting it in maint failed: %w", st.Sessions, timeout, err)
			}
			return drover.Errorf(drover.ETIMEOUT, "haproxy %s/%s: still %d sessions after the drain timeout %s; set to maint", p.Backend, name, st.Sessions, timeout)
		}
		if err := p.sleep(ctx, min(p.interval(), max(deadline.Sub(p.now()), 0))); err != nil {
			return drover.Errorf(drover.ETIMEOUT, "haproxy %s/%s: waiting for %d sessions to end: %v", p.Backend, name, st.Sessions, err)
		}
	}
}

// Repool sets the server ready and waits until HAProxy reports it UP.
// Past UpTimeout it returns EFAILED with the last status and check result,
// leaving the server ready: HAProxy routes nothing to a server its check
// finds down, and one left in drain after drover exits would be out of
// rotation with nobody knowing.
func (p *HAProxy) Repool(ctx context.Context, h drover.RotationHost) error {
	name, err := p.ServerName(h)
	if err != nil {
		return err
	}
	if err := p.Runtime.SetState(ctx, p.Backend, name, StateReady); err != nil {
		return err
	}
	timeout := p.UpTimeout
	if timeout <= 0 {
		timeout = drover.DefaultHAProxyUpTimeout
	}
	deadline := p.now().Add(timeout)
	for {
		st, err := p.Runtime.Stat(ctx, p.Backend, name)
		if err != nil {
			return err
		}
		if st.Up() {
			return nil
		}
		if !p.now().Before(deadline) {
			return &drover.Error{Code: drover.EFAILED,
				Message: fmt.Sprintf("haproxy %s/%s is ready but not UP after %s: status %s, last check %s", p.Backend, name, timeout, st.Status, orDash(st.CheckStatus)),
				Hint:    "HAProxy's health check does not pass: look at the backend's check and the service on the host"}
		}
		if err := p.sleep(ctx, min(p.interval(), max(deadline.Sub(p.now()), 0))); err != nil {
			return drover.Errorf(drover.ETIMEOUT, "haproxy %s/%s: waiting for UP (status %s): %v", p.Backend, name, st.Status, err)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (p *HAProxy) interval() time.Duration {
	if p.Interval > 0 {
		return p.Interval
	}
	return drover.DefaultHAProxyPollInterval
}

func (p *HAProxy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *HAProxy) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
