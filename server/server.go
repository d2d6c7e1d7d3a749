// Package server is `drover server`: one place that holds a team's deploy
// lock and history, runs deploys in-process on behalf of authenticated
// callers, and shows them live.
//
// The model: each Service is a drover.yaml the server was started with,
// keyed like the lock (runner.Key: service or service/env). A change
// (deploy, rollback, approve, abort) needs a token with the deployer or
// admin role; reads need any token. A deploy started through the API runs
// in a goroutine the server owns, through a runner the caller's factory
// builds (the server never wires transports or stores itself), and every
// event it emits goes to the run's in-memory timeline, to the metrics and
// to the subscribers of the event stream. Close cancels running deploys —
// the runner's interrupt path rolls back what they switched — and waits
// for them.
//
// The HTTP contract (paths, JSON, status codes) is in the README's
// "drover server" section.
package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"drover"
	"drover/runner"
)

// Service is one service the server deploys.
type Service struct {
	Spec *drover.Spec
	// Open returns a runner for one operation on the service with its
	// events going to sink (nil for a read that reports none), and a func
	// that releases what the runner holds (store, connections, logs).
	Open func(sink drover.EventSink) (*runner.Runner, func(), error)
}

// Config is what New needs.
type Config struct {
	Services []Service
	// TokensFile is the tokens file (see ReadTokens); required.
	TokensFile string
	// MaxUpload bounds an uploaded bundle; 0 means DefaultMaxUpload.
	MaxUpload int64
	// TempDir holds uploaded bundles and the bundles built from release
	// directories while their deploy runs; "" means os.TempDir().
	TempDir string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ReleasesDir is the only directory a deploy request may name a
	// release in ({"release": PATH}): a directory or bundle whose path,
	// after every symlink, lies inside it. "" refuses every path: a
	// deployer then uploads a bundle. Without this rule a deployer token
	// could pack any directory the server can read (its ~/.ssh) and ship
	// it to the hosts (see releasepath.go).
	ReleasesDir string
	// Log records who changed what (the audit trail besides the
	// history): runs started and ended, approvals, aborts, never a token.
	// Each value is a structured field, so a caller's text (an abort
	// reason with newlines) is quoted and cannot forge a log line. nil
	// logs nothing.
	Log *slog.Logger
	// Activity, when set, answers for GET /status which deploy holds the
	// service's lock and which never finished (hosts left switched,
	// `drover resume` to run), as JSON; nil values are left out. Without
	// it `drover status --server` could not say what the lock error's
	// "see `drover status`" promises.
	Activity func(ctx context.Context, st drover.Store, key string) (running, unfinished json.RawMessage, err error)
}

// DefaultMaxUpload bounds an uploaded bundle.
const DefaultMaxUpload = 1 << 30

// keepRuns is how many finished runs keep their timeline in memory.
const keepRuns = 32

// Server serves the API. Make one with New; Handler serves it; Close
// ends it.
type Server struct {
	cfg      Config
	services map[string]*Service
	keys     []string
	tokens   *tokenStore
	events   *broker
	metrics  *metrics

	// runCtx is the parent of every run: Close cancels it and the runs
	// roll back. streamCtx ends the event streams after the runs are done,
	// so a dashboard sees the rollbacks that shutdown caused.
	runCtx       context.Context
	cancelRuns   context.CancelCauseFunc
	streamCtx    context.Context
	cancelStream context.CancelFunc
	wg           sync.WaitGroup

	// runsMu guards the runs, their timelines and the order in which
	// events are published (see run.emit).
	runsMu   sync.Mutex
	runs     map[string]*run // by deploy id, once known
	active   map[string]*run // by service key, while running
	finished []*run          // oldest first, at most keepRuns
	closed   bool
	// viewSubs are the view streams (view.go).
	viewSubs map[*viewSub]struct{}

	mux *http.ServeMux
}

// dashboard is the web UI, set by dashboard.go's init; nil serves 404.
var dashboard http.Handler

// New checks cfg and returns a server. It refuses to start without a
// readable, private tokens file: there is no anonymous access.
func New(cfg Config) (*Server, error) {
	if cfg.TokensFile == "" {
		return nil, drover.Errorf(drover.EINVALID, "no tokens file: drover server refuses every unauthenticated change, so it needs tokens").
			WithHint("drover server token create --name NAME --role admin --tokens FILE, then --tokens FILE")
	}
	if len(cfg.Services) == 0 {
		return nil, drover.Errorf(drover.EINVALID, "no service to serve").WithHint("pass -c drover.yaml (once per service)")
	}
	tokens, err := newTokenStore(cfg.TokensFile)
	if err != nil {
		return nil, err
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	if cfg.ReleasesDir != "" {
		dir, err := releasesDir(cfg.ReleasesDir)
		if err != nil {
			return nil, err
		}
		cfg.ReleasesDir = dir
	}
	s := &Server{cfg: cfg, services: map[string]*Service{}, tokens: tokens, events: newBroker(), metrics: newMetrics(),
		runs: map[string]*run{}, active: map[string]*run{}}
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		if svc.Spec == nil || svc.Open == nil {
			return nil, drover.Errorf(drover.EINTERNAL, "service %d has no spec or no runner factory", i)
		}
		key := runner.Key(svc.Spec)
		if prev, dup := s.services[key]; dup {
			return nil, drover.Errorf(drover.EINVALID, "%s and %s are both service %s", prev.Spec.Source, svc.Spec.Source, key).
				At(svc.Spec.Source).WithHint("serve each service (and environment) once")
		}
		s.services[key] = svc
		s.keys = append(s.keys, key)
		s.metrics.initService(key, len(svc.Spec.Hosts))
	}
	sort.Strings(s.keys)
	s.runCtx, s.cancelRuns = context.WithCancelCause(context.Background())
	s.streamCtx, s.cancelStream = context.WithCancel(context.Background())
	s.routes()
	return s, nil
}

// audit records a change with its fields as slog attributes.
func (s *Server) audit(msg string, args ...any) {
	if s.cfg.Log != nil {
		s.cfg.Log.Info(msg, args...)
	}
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Handler serves the API, the metrics and the dashboard.
func (s *Server) Handler() http.Handler { return s.mux }

// Close stops accepting deploys, cancels the running ones (each halts and
// rolls back what it switched, as on SIGINT) and waits for them, then ends
// the event streams. ctx bounds the wait: past it Close returns ctx's
// error while the runs still finish their rollback in the background.
func (s *Server) Close(ctx context.Context, cause error) error {
	s.runsMu.Lock()
	s.closed = true
	s.runsMu.Unlock()
	s.cancelRuns(cause)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.cancelStream()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	const v1 = "/api/v1"
	m.HandleFunc("GET "+v1+"/whoami", s.authed(false, s.handleWhoami))
	m.HandleFunc("GET "+v1+"/services", s.authed(false, s.handleServices))
	m.HandleFunc("GET "+v1+"/outcomes", s.authed(false, s.handleOutcomes))
	m.HandleFunc("GET "+v1+"/services/{key}/status", s.authed(false, s.handleStatus))
	m.HandleFunc("GET "+v1+"/services/{key}/deploys", s.authed(false, s.handleHistory))
	m.HandleFunc("POST "+v1+"/services/{key}/deploys", s.authed(false, s.handleDeploy))
	m.HandleFunc("POST "+v1+"/services/{key}/rollback", s.authed(false, s.handleRollback))
	m.HandleFunc("POST "+v1+"/services/{key}/adopt", s.authed(false, s.handleAdopt)) // adopt.go
	m.HandleFunc("GET "+v1+"/deploys/{id}", s.authed(false, s.handleDeployInfo))
	m.HandleFunc("POST "+v1+"/deploys/{id}/approve", s.authed(false, s.handleApprove))
	m.HandleFunc("POST "+v1+"/deploys/{id}/abort", s.authed(false, s.handleAbort))
	m.HandleFunc("GET "+v1+"/events", s.authed(true, s.handleEvents))
	m.HandleFunc("GET "+v1+"/deploys/{id}/view", s.authed(false, s.handleViewOne))
	m.HandleFunc("GET "+v1+"/view", s.authed(true, s.handleViewStream))
	m.HandleFunc("GET "+v1+"/deploys/{id}/analyses/{group}/{name}", s.authed(false, s.handleAnalysisSeries))
	m.HandleFunc(v1+"/", s.authed(false, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, drover.Errorf(drover.ENOTFOUND, "no API %s %s", r.Method, r.URL.Path).WithHint("see the README's drover server section for the API"))
	}))
	m.Handle("GET /metrics", s.metrics.handler())
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok"))
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if dashboard == nil {
			http.NotFound(w, r)
			return
		}
		dashboard.ServeHTTP(w, r)
	})
	s.mux = m
}

// service returns the service of key; ENOTFOUND names the ones served.
func (s *Server) service(key string) (*Service, error) {
	svc, ok := s.services[key]
	if !ok {
		return nil, drover.Errorf(drover.ENOTFOUND, "no service %q on this server", key).
			WithHint("GET /api/v1/services lists them; a service with an environment is service/env, escaped as service%2Fenv")
	}
	return svc, nil
}

// read runs fn with a runner of the service that reports no events.
func (s *Server) read(svc *Service, fn func(r *runner.Runner) error) error {
	r, release, err := svc.Open(nil)
	if err != nil {
		return err
	}
	defer release()
	return fn(r)
}
