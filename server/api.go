package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"drover"
	"drover/release"
	"drover/runner"
)

// This file is the REST API's handlers: reads for any token, changes for
// deployers and admins, each checked against the token's service scope.

func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r.Context())
	out := *p
	if out.Services == nil {
		out.Services = []string{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleOutcomes answers the outcome vocabulary (outcome.go): each
// outcome's exit code and words, so the dashboard labels a verdict with
// the words the CLI prints instead of a copy of them.
func (s *Server) handleOutcomes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, drover.Outcomes())
}

// ServiceInfo is one entry of GET /services.
type ServiceInfo struct {
	Key     string   `json:"key"`
	Service string   `json:"service"`
	Env     string   `json:"env"`
	Hosts   int      `json:"hosts"`
	Groups  []string `json:"groups"`
	// Running is the id of the deploy or rollback this server runs for
	// the service, "" for none.
	Running string `json:"running,omitempty"`
}

func (s *Server) handleServices(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r.Context())
	out := []ServiceInfo{}
	for _, key := range s.keys {
		if !p.sees(key) {
			continue
		}
		spec := s.services[key].Spec
		si := ServiceInfo{Key: key, Service: spec.Service, Env: spec.Env, Hosts: len(spec.Hosts), Groups: []string{}, Running: s.activeID(key)}
		for _, g := range spec.Groups {
			si.Groups = append(si.Groups, g.Name)
		}
		out = append(out, si)
	}
	writeJSON(w, http.StatusOK, out)
}

// serviceFor resolves {key} and checks the principal may act as role on it.
func (s *Server) serviceFor(r *http.Request, role string) (*Service, *Principal, error) {
	p := principalOf(r.Context())
	key := r.PathValue("key")
	svc, err := s.service(key)
	if err != nil {
		return nil, nil, err
	}
	if err := p.require(role, key); err != nil {
		return nil, nil, err
	}
	return svc, p, nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	svc, _, err := s.serviceFor(r, RoleViewer)
	if err != nil {
		writeError(w, err)
		return
	}
	var out StatusView
	err = s.read(svc, func(rn *runner.Runner) error {
		var err error
		if out.FleetStatus, err = rn.Status(r.Context()); err != nil {
			return err
		}
		if s.cfg.Activity != nil {
			out.Running, out.Unfinished, err = s.cfg.Activity(r.Context(), rn.Store, runner.Key(svc.Spec))
		}
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// StatusView is GET /services/{key}/status: the fleet, and with
// Config.Activity the deploy running now and the deploys that never
// finished — the fields `drover status --json` adds, omitted when empty.
type StatusView struct {
	*runner.FleetStatus
	Running    json.RawMessage `json:"running,omitempty"`
	Unfinished json.RawMessage `json:"unfinished,omitempty"`
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	svc, _, err := s.serviceFor(r, RoleViewer)
	if err != nil {
		writeError(w, err)
		return
	}
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			writeError(w, drover.Errorf(drover.EINVALID, "limit %q: want a number, 0 for all", v))
			return
		}
	}
	var recs []drover.DeployRecord
	err = s.read(svc, func(rn *runner.Runner) error {
		var err error
		recs, err = rn.Store.History(r.Context(), runner.Key(svc.Spec), limit)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if recs == nil {
		recs = []drover.DeployRecord{}
	}
	writeJSON(w, http.StatusOK, recs)
}

// DeployRequest is the JSON body of POST /services/{key}/deploys.
type DeployRequest struct {
	// Release is a release directory or bundle on the server's machine.
	Release string `json:"release"`
	Version string `json:"version,omitempty"`
	Limit   string `json:"limit,omitempty"`
	Force   bool   `json:"force,omitempty"`
	Message string `json:"message,omitempty"`
	// Yes answers the spec's confirm gates (confirm: true) in advance.
	Yes bool `json:"yes,omitempty"`
	// SkipChecks, SkipAnalyses and SkipGates (GROUP:KIND) are emergency
	// overrides for this deploy only, as drover deploy --skip-check and
	// friends; they need Message, the reason, and are recorded with the
	// deploy.
	SkipChecks   []string `json:"skip_checks,omitempty"`
	SkipAnalyses []string `json:"skip_analyses,omitempty"`
	SkipGates    []string `json:"skip_gates,omitempty"`
}

// Started is the answer to a change that began a run.
type Started struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// decodeBody reads a small JSON body strictly; an empty body is {}.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return drover.Errorf(drover.EINVALID, "request body: %v", err).WithHint("send a JSON object; see the README's drover server section")
	}
	return nil
}

func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request) {
	svc, p, err := s.serviceFor(r, RoleDeployer)
	if err != nil {
		writeError(w, err)
		return
	}
	tmp, err := os.MkdirTemp(s.cfg.TempDir, "drover-server-")
	if err != nil {
		writeError(w, drover.Errorf(drover.EINTERNAL, "temporary directory: %v", err))
		return
	}
	cleanup := func() { os.RemoveAll(tmp) }
	req, err := s.deployRequest(r, tmp)
	if err == nil {
		err = checkConfirm(svc.Spec, req.Limit, req.Yes)
	}
	var overrides []drover.Override
	if err == nil {
		overrides, err = drover.NewOverrides(svc.Spec, req.SkipChecks, req.SkipAnalyses, req.SkipGates, req.Message)
	}
	var rel *drover.Release
	if err == nil {
		rel, err = release.Resolve(r.Context(), req.Release, req.Version, svc.Spec.Service, tmp, s.now())
	}
	if err != nil {
		cleanup()
		writeError(w, err)
		return
	}
	opts := runner.DeployOptions{Release: rel, Limit: req.Limit, Force: req.Force, Message: req.Message, Overrides: overrides}
	rn, err := s.start(r.Context(), p, svc, startOptions{kind: drover.KindDeploy, yes: req.Yes, cleanup: cleanup},
		func(ctx context.Context, r *runner.Runner) (*runner.Outcome, error) { return r.Deploy(ctx, opts) })
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Started{ID: rn.id, Key: rn.key})
}

// deployRequest reads a deploy request: JSON naming a release on this
// machine, or a bundle uploaded as application/gzip with the options in
// the query.
func (s *Server) deployRequest(r *http.Request, tmp string) (DeployRequest, error) {
	var req DeployRequest
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/gzip", "application/x-gzip", "application/octet-stream":
		q := r.URL.Query()
		req = DeployRequest{Version: q.Get("version"), Limit: q.Get("limit"), Message: q.Get("message"),
			Force: queryBool(q.Get("force")), Yes: queryBool(q.Get("yes")),
			SkipChecks: q["skip_check"], SkipAnalyses: q["skip_analysis"], SkipGates: q["skip_gate"]}
		path := filepath.Join(tmp, "upload.tar.gz")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return req, drover.Errorf(drover.EINTERNAL, "saving the bundle: %v", err)
		}
		n, err := io.Copy(f, http.MaxBytesReader(nil, r.Body, s.cfg.MaxUpload))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return req, drover.Errorf(drover.EINVALID, "the bundle is larger than %d bytes", s.cfg.MaxUpload).WithHint("drover server --max-upload raises the limit")
		case err != nil:
			return req, drover.Errorf(drover.EINVALID, "receiving the bundle: %v", err)
		case n == 0:
			return req, drover.Errorf(drover.EINVALID, "the uploaded bundle is empty").WithHint("send the bytes of a bundle made by drover release build")
		}
		req.Release = path
		return req, nil
	case "", "application/json":
		if err := decodeBody(r, &req); err != nil {
			return req, err
		}
		switch {
		case req.Release == "":
			return req, drover.Errorf(drover.EINVALID, `no release: "release" names a directory or bundle on the server`).
				WithHint("or upload a bundle as application/gzip")
		case !filepath.IsAbs(req.Release):
			return req, drover.Errorf(drover.EINVALID, "release %q is not an absolute path on the server", req.Release).
				WithHint("name it from / — the server's working directory is not yours")
		}
		path, err := s.releasePath(req.Release)
		if err != nil {
			return req, err
		}
		req.Release = path
		return req, nil
	}
	return req, drover.Errorf(drover.EINVALID, "content type %q: want application/json or application/gzip", ct)
}

func queryBool(v string) bool {
	b, _ := strconv.ParseBool(v)
	return b || v == "yes"
}

// checkConfirm refuses a deploy through a group with confirm: true unless
// the request said yes: the server has no terminal to ask on, and a
// confirm gate nobody can answer would halt the deploy midway.
func checkConfirm(spec *drover.Spec, limit string, yes bool) error {
	if yes {
		return nil
	}
	targets, err := runner.SelectHosts(spec, limit)
	if err != nil {
		return err
	}
	var asks []string
	for _, g := range spec.Groups {
		if !g.Confirm {
			continue
		}
		for _, h := range g.Hosts {
			if targets[h] {
				asks = append(asks, g.Name)
				break
			}
		}
	}
	if len(asks) == 0 {
		return nil
	}
	return drover.Errorf(drover.EINVALID, "group %s has confirm: true and a server has no terminal to ask on; nothing was changed", strings.Join(asks, ", ")).
		At(spec.Source).WithHint(`confirm in advance: "yes": true (drover deploy --server ... --yes)`)
}

// RollbackRequest is the JSON body of POST /services/{key}/rollback.
type RollbackRequest struct {
	To      string `json:"to,omitempty"`
	Limit   string `json:"limit,omitempty"`
	Message string `json:"message,omitempty"`
}

func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request) {
	svc, p, err := s.serviceFor(r, RoleDeployer)
	if err != nil {
		writeError(w, err)
		return
	}
	var req RollbackRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	opts := runner.RollbackOptions{To: req.To, Limit: req.Limit, Message: req.Message}
	rn, err := s.start(r.Context(), p, svc, startOptions{kind: drover.KindRollback},
		func(ctx context.Context, r *runner.Runner) (*runner.Outcome, error) { return r.Rollback(ctx, opts) })
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Started{ID: rn.id, Key: rn.key})
}

// DeployInfo is GET /deploys/{id}.
type DeployInfo struct {
	Record  drover.DeployRecord `json:"record"`
	Running bool                `json:"running"`
	// Events is the timeline of a run this server started and still
	// remembers; Journal the journal entries of any other.
	Events  []drover.Event        `json:"events,omitempty"`
	Journal []drover.JournalEntry `json:"journal,omitempty"`
}

// findDeploy returns the record of deploy id and its service, checking
// the principal may act as role on it. A deploy of a service outside the
// token's scope is reported as not found by a read, so a scoped token
// learns nothing of other services' deploys.
func (s *Server) findDeploy(ctx context.Context, p *Principal, id, role string) (*Service, drover.DeployRecord, error) {
	if key, _, _, ok := s.runInfo(id); ok {
		svc := s.services[key]
		if !p.sees(key) {
			// The same answer as for an id that never existed: a token
			// scoped elsewhere learns nothing of this service's deploys.
			return nil, drover.DeployRecord{}, errNoDeploy(id)
		}
		if err := p.require(role, key); err != nil {
			return nil, drover.DeployRecord{}, err
		}
		var rec drover.DeployRecord
		err := s.read(svc, func(rn *runner.Runner) error {
			var err error
			rec, err = rn.Store.Deploy(ctx, id)
			return err
		})
		return svc, rec, err
	}
	for _, key := range s.keys {
		if !p.sees(key) {
			continue
		}
		svc := s.services[key]
		var rec drover.DeployRecord
		err := s.read(svc, func(rn *runner.Runner) error {
			var err error
			rec, err = rn.Store.Deploy(ctx, id)
			return err
		})
		if drover.ErrorCode(err) == drover.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, rec, err
		}
		if rec.Key != key {
			// Services sharing a state directory see each other's
			// records; the one whose key it is answers.
			continue
		}
		if err := p.require(role, key); err != nil {
			return nil, rec, err
		}
		return svc, rec, nil
	}
	return nil, drover.DeployRecord{}, errNoDeploy(id)
}

func errNoDeploy(id string) error {
	return drover.Errorf(drover.ENOTFOUND, "no deploy %s", id).
		WithHint("GET /api/v1/services/{key}/deploys lists recent ones")
}

func (s *Server) handleDeployInfo(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r.Context())
	id := r.PathValue("id")
	svc, rec, err := s.findDeploy(r.Context(), p, id, RoleViewer)
	if err != nil {
		writeError(w, err)
		return
	}
	info := DeployInfo{Record: rec}
	if _, running, events, ok := s.runInfo(id); ok {
		info.Running, info.Events = running, events
	} else {
		err = s.read(svc, func(rn *runner.Runner) error {
			var err error
			info.Journal, err = rn.Store.Journal(r.Context(), id)
			return err
		})
		if err != nil {
			writeError(w, err)
			return
		}
		if info.Journal == nil {
			info.Journal = []drover.JournalEntry{}
		}
	}
	writeJSON(w, http.StatusOK, info)
}

// ApproveRequest is the body of POST /deploys/{id}/approve.
type ApproveRequest struct {
	// Group is the group whose gate to approve; "" approves the gate the
	// deploy waits at.
	Group string `json:"group,omitempty"`
	Note  string `json:"note,omitempty"`
}

// AbortRequest is the body of POST /deploys/{id}/abort.
type AbortRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Decided is the answer to approve and abort.
type Decided struct {
	ID      string `json:"id"`
	Verdict string `json:"verdict"`
	Group   string `json:"group,omitempty"`
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	var req ApproveRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	var out Decided
	err := s.decide(r, id, func(ctx context.Context, p *Principal, ap drover.Approvals, rec drover.DeployRecord) error {
		pending, err := ap.Pending(ctx, rec.Key)
		if err != nil {
			return err
		}
		for _, pr := range pending {
			if pr.DeployID != id || (req.Group != "" && pr.Group != req.Group) {
				continue
			}
			d := drover.ApprovalDecision{DeployID: id, Verdict: drover.VerdictApprove, Gate: pr.Gate, By: p.User(), At: s.now(), Message: req.Note}
			if err := ap.Decide(ctx, d); err != nil {
				return err
			}
			s.audit("approved", "by", p.User(), "deploy", id, "service", rec.Key, "group", pr.Group, "note", req.Note)
			out = Decided{ID: id, Verdict: drover.VerdictApprove, Group: pr.Group}
			return nil
		}
		if !rec.Finished.IsZero() {
			return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s)", id, rec.Outcome)
		}
		at := ""
		if req.Group != "" {
			at = " at group " + req.Group
		}
		return drover.Errorf(drover.EINVALID, "deploy %s is not waiting for approval%s", id, at).
			WithHint("a gate asks once its group is done; POST .../abort stops the deploy")
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) {
	var req AbortRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	err := s.decide(r, id, func(ctx context.Context, p *Principal, ap drover.Approvals, rec drover.DeployRecord) error {
		if !rec.Finished.IsZero() {
			return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s)", id, rec.Outcome)
		}
		if err := ap.Decide(ctx, drover.ApprovalDecision{DeployID: id, Verdict: drover.VerdictAbort, By: p.User(), At: s.now(), Message: req.Reason}); err != nil {
			return err
		}
		s.audit("aborted", "by", p.User(), "deploy", id, "service", rec.Key, "reason", req.Reason)
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Decided{ID: id, Verdict: drover.VerdictAbort})
}

// decide finds deploy id for a deployer and runs fn with its service's
// approvals — the same record `drover approve` and `drover abort` write,
// which the running deploy polls wherever it runs.
func (s *Server) decide(r *http.Request, id string, fn func(context.Context, *Principal, drover.Approvals, drover.DeployRecord) error) error {
	p := principalOf(r.Context())
	// Forbidden before anything is looked up: a viewer learns nothing.
	if roleRank[p.Role] < roleRank[RoleDeployer] {
		return p.require(RoleDeployer, "")
	}
	svc, rec, err := s.findDeploy(r.Context(), p, id, RoleDeployer)
	if err != nil {
		return err
	}
	return s.read(svc, func(rn *runner.Runner) error {
		if rn.Approvals == nil {
			return drover.Errorf(drover.EINVALID, "the state store of %s cannot record approvals", rec.Key).At(svc.Spec.Source).
				WithHint("use store: sqlite or store: file")
		}
		return fn(r.Context(), p, rn.Approvals, rec)
	})
}
