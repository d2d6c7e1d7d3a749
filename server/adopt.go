package server

import (
	"context"
	"net/http"

	"drover"
	"drover/runner"
)

// AdoptRequest is POST /api/v1/services/{key}/adopt: `drover adopt`
// through the server, the one-time step for hosts whose current is a live
// directory (runner.Adopt). Limit selects hosts as --limit does.
type AdoptRequest struct {
	Limit string `json:"limit,omitempty"`
}

// handleAdopt runs runner.Adopt and answers with its outcome, per host.
// It is quick (a rename per host, the service untouched), so it runs in
// the request rather than as a followed run; it takes the service's
// deploy lock like every change to hosts, so it never overlaps a deploy,
// and a client that goes away does not stop it half way through the
// fleet. A deployer's role is needed: it changes hosts.
func (s *Server) handleAdopt(w http.ResponseWriter, r *http.Request) {
	svc, p, err := s.serviceFor(r, RoleDeployer)
	if err != nil {
		writeError(w, err)
		return
	}
	var req AdoptRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	key := runner.Key(svc.Spec)
	s.runsMu.Lock()
	if s.closed {
		s.runsMu.Unlock()
		writeError(w, drover.Errorf(drover.EUNREACHABLE, "the server is shutting down").WithHint("try again once it is back"))
		return
	}
	if other := s.active[key]; other != nil {
		s.runsMu.Unlock()
		writeError(w, drover.Errorf(drover.ELOCKED, "%s %s of %s is running, started by %s", other.kind, other.id, key, other.user).
			WithHint("adopt once it is over"))
		return
	}
	s.wg.Add(1)
	s.runsMu.Unlock()
	defer s.wg.Done()

	rn, release, err := svc.Open(nil)
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	rn.User = p.User()
	out, err := rn.Adopt(context.WithoutCancel(r.Context()), req.Limit)
	if err != nil {
		writeError(w, err)
		return
	}
	s.audit("adopt", "by", p.User(), "service", key, "exit_code", out.ExitCode)
	writeJSON(w, http.StatusOK, out)
}

// Adopt is POST /services/{key}/adopt.
func (c *Client) Adopt(ctx context.Context, key string, req AdoptRequest) (*runner.AdoptOutcome, error) {
	var out runner.AdoptOutcome
	return &out, c.call(ctx, "POST", keyPath(key)+"/adopt", req, &out)
}
