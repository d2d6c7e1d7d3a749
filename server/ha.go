package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"drover"
	"drover/runner"
)

// This file makes a server one replica among several that share a
// distributed store (store/etcd): several `drover server` processes on
// different machines, one lock and one history, so that losing a machine
// loses no deploy.
//
// One replica leads, chosen by an election in the store (Elector). The
// leader runs every deploy, rollback, approval and abort; the others
// serve reads from the shared store themselves and forward changes — and
// the event stream and the live timeline of a run, which live in the
// leader's memory — to the leader, or answer 503 naming it when it cannot
// be reached. A request is forwarded once: a forwarded request that
// reaches a replica that does not lead (leadership moved meanwhile) is
// answered 503.
//
// While it leads, a replica recovers deploys that died with their
// process: on becoming leader and then every Interval, for every service
// with an unfinished deploy in the store, it runs runner.Resume. Resume
// takes the deploy lock, which a live deploy holds (ELOCKED: nothing to
// do) and a dead one gives up when its lease expires; then it rolls back
// every host the dead deploy touched, from the journal in the store. So a
// leader killed mid-deploy is succeeded, and its deploy rolled back, about
// one lease TTL after it died — as is a `drover deploy` from a terminal
// sharing the store.

// Elector is leader election among replicas: store/etcd's Elector.
type Elector interface {
	// Campaign blocks until this replica leads, with value (its URL)
	// for the others to find it by.
	Campaign(ctx context.Context, value string) error
	// Leader returns the leader's value; ENOTFOUND when there is none.
	Leader(ctx context.Context) (string, error)
	// Done is closed when the candidacy is lost (its lease expired).
	Done() <-chan struct{}
	// Close leaves the election; a leader's successor leads at once.
	Close() error
}

// ReplicaConfig is what NewReplica needs.
type ReplicaConfig struct {
	// NewElector joins the election. Run calls it again after a lost
	// candidacy.
	NewElector func(ctx context.Context) (Elector, error)
	// Unfinished counts the unfinished deploys of a service key in the
	// shared store: the leader's cheap check before it tries Resume.
	Unfinished func(ctx context.Context, key string) (int, error)
	// Interval is how often the leader looks for deploys to recover;
	// DefaultRecoverInterval when 0.
	Interval time.Duration
	// Log reports leadership changes and recoveries; nil discards.
	Log func(format string, args ...any)
}

// DefaultRecoverInterval is how often a leader looks for dead deploys.
const DefaultRecoverInterval = time.Second

// Headers of replication.
const (
	// HeaderLeader names the leader's URL on forwarded answers and 503s.
	HeaderLeader = "X-Drover-Leader"
	// headerForwardedBy marks a request a replica forwarded.
	headerForwardedBy = "X-Drover-Forwarded-By"
	// HeaderNotForwarded is "1" on a 503 whose request no leader
	// received: the client may send it again, even a change, without
	// doing anything twice. A 503 without it (the leader did not answer)
	// may have been acted on.
	HeaderNotForwarded = "X-Drover-Not-Forwarded"
)

// recoveryPrincipal is who the leader's recoveries are recorded as.
var recoveryPrincipal = &Principal{Name: "replica-recovery", Role: RoleAdmin}

// Replica is a server that takes part in an election. Make one with
// NewReplica, serve Handler, and Run it.
type Replica struct {
	srv *Server
	cfg ReplicaConfig

	mu     sync.Mutex
	el     Elector // the current candidacy; nil between two
	self   string
	leader bool
}

// NewReplica makes srv a replica.
func NewReplica(srv *Server, cfg ReplicaConfig) *Replica {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRecoverInterval
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	return &Replica{srv: srv, cfg: cfg}
}

// Leading reports whether this replica leads.
func (r *Replica) Leading() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

// Run campaigns with self (this replica's base URL, which the others
// forward to) and, while leading, recovers dead deploys; it campaigns
// again after losing its candidacy. It returns when ctx ends, having left
// the election.
func (r *Replica) Run(ctx context.Context, self string) {
	r.mu.Lock()
	r.self = strings.TrimRight(self, "/")
	r.mu.Unlock()
	for ctx.Err() == nil {
		el, err := r.cfg.NewElector(ctx)
		if err != nil {
			r.cfg.Log("replica: joining the election: %v", err)
			r.pause(ctx)
			continue
		}
		r.mu.Lock()
		r.el = el
		r.mu.Unlock()
		if err := el.Campaign(ctx, r.self); err == nil {
			r.setLeader(true)
			r.cfg.Log("replica: %s leads", r.self)
			r.lead(ctx, el)
			r.setLeader(false)
		} else if ctx.Err() == nil {
			r.cfg.Log("replica: campaign: %v", err)
		}
		r.mu.Lock()
		r.el = nil
		r.mu.Unlock()
		if err := el.Close(); err != nil && ctx.Err() == nil {
			r.cfg.Log("replica: leaving the election: %v", err)
		}
		if ctx.Err() == nil {
			r.cfg.Log("replica: %s lost its candidacy; campaigning again", r.self)
			r.pause(ctx)
		}
	}
}

func (r *Replica) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(r.cfg.Interval):
	}
}

func (r *Replica) setLeader(v bool) {
	r.mu.Lock()
	r.leader = v
	r.mu.Unlock()
}

// lead recovers dead deploys until ctx ends or the candidacy is lost.
func (r *Replica) lead(ctx context.Context, el Elector) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		for _, key := range r.srv.keys {
			r.recover(ctx, key)
		}
		select {
		case <-ctx.Done():
			return
		case <-el.Done():
			return
		case <-t.C:
		}
	}
}

// recover runs Resume for key when the store has an unfinished deploy of
// it, and waits for the recovery to end. ELOCKED means the deploy's
// holder lives (or its lease has not expired yet): the next round looks
// again.
func (r *Replica) recover(ctx context.Context, key string) {
	n, err := r.cfg.Unfinished(ctx, key)
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Log("replica: looking for unfinished deploys of %s: %v", key, err)
		}
		return
	}
	if n == 0 {
		return
	}
	rn, err := r.srv.start(ctx, recoveryPrincipal, r.srv.services[key], startOptions{kind: drover.KindRecover},
		func(ctx context.Context, rr *runner.Runner) (*runner.Outcome, error) {
			outs, err := rr.Resume(ctx)
			if err != nil || len(outs) == 0 {
				return nil, err
			}
			last := *outs[len(outs)-1]
			last.Recovered = outs[:len(outs)-1]
			return &last, nil
		})
	switch {
	case drover.ErrorCode(err) == drover.ELOCKED:
		return
	case err != nil:
		if ctx.Err() == nil {
			r.cfg.Log("replica: recovering %s: %v", key, err)
		}
		return
	}
	r.cfg.Log("replica: recovering %s: %s", key, rn.id)
	select {
	case <-rn.done:
	case <-ctx.Done():
	}
}

// Handler serves the API as a replica: changes, the event stream and
// live run timelines go to the leader.
func (r *Replica) Handler() http.Handler {
	inner := r.srv.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !leaderOnly(req) || r.Leading() {
			inner.ServeHTTP(w, req)
			return
		}
		// Authenticate before forwarding: a replica that forwarded
		// anything would relay a stranger's guesses (and its own
		// resources) to the leader, and answer them as the leader does.
		if _, err := r.srv.tokens.authenticate(bearer(req, req.URL.Path == "/api/v1/events")); err != nil {
			if drover.ErrorCode(err) == drover.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
			}
			r.srv.metrics.authFailures.Inc()
			writeError(w, err)
			return
		}
		r.forward(w, req)
	})
}

// leaderOnly reports whether req must be answered by the leader: a change,
// the event stream, a run's live timeline.
func leaderOnly(req *http.Request) bool {
	p := req.URL.Path
	if !strings.HasPrefix(p, "/api/") {
		return false
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return true
	}
	return p == "/api/v1/events" || strings.HasPrefix(p, "/api/v1/deploys/")
}

func (r *Replica) forward(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	el, self := r.el, r.self
	r.mu.Unlock()
	leader := ""
	if el != nil {
		ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
		leader, _ = el.Leader(ctx)
		cancel()
	}
	switch {
	case leader == "" || leader == self:
		w.Header().Set(HeaderNotForwarded, "1")
		notLeader(w, "", "no replica leads yet (one is elected within the store's lease TTL)")
		return
	case req.Header.Get(headerForwardedBy) != "":
		w.Header().Set(HeaderNotForwarded, "1")
		notLeader(w, leader, "a replica forwarded this here, but leadership has moved")
		return
	}
	u, err := leaderURL(leader)
	if err != nil {
		notLeader(w, "", err.Error())
		return
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
			pr.Out.Header.Set(headerForwardedBy, self)
		},
		// The event stream is sent as it comes.
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set(HeaderLeader, leader)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			notLeader(w, leader, "the leader did not answer: "+err.Error())
		},
	}
	p.ServeHTTP(w, req)
}

// notLeader answers 503: this replica cannot take the request now.
func notLeader(w http.ResponseWriter, leader, why string) {
	hint := "retry in a few seconds"
	if leader != "" {
		w.Header().Set(HeaderLeader, leader)
		hint = "send it to the leader at " + leader + ", or retry here in a few seconds"
	}
	w.Header().Set("Retry-After", "2")
	writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: ErrorJSON{
		Code:    drover.WireCode(drover.EUNREACHABLE),
		Message: "this replica does not lead and cannot forward the request: " + why,
		Hint:    hint,
	}})
}

// leaderURL parses the URL the leader advertised in the store, and takes
// it only when a bearer token forwarded there stays safe: https, or http
// to a loopback address (replicas on one machine, or a TLS-terminating
// proxy beside each). Whoever can write the election key in etcd would
// otherwise collect every token the replicas forward, in clear text.
func leaderURL(leader string) (*url.URL, error) {
	u, err := url.Parse(leader)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("the leader's address %q is not a URL", leader)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("the leader's address %q is neither https nor loopback http: tokens are not forwarded there in clear text (give every replica --tls-cert/--tls-key, or --advertise an https URL)", leader)
}
