package server

import (
	"context"
	"fmt"
	"time"

	"drover"
	"drover/runner"
)

// This file runs deploys and rollbacks in the server: one goroutine per
// run, owned by the server (Close waits for it), under the server's run
// context (Close cancels it: the runner halts and rolls back). The caller
// of the API gets its answer as soon as the run has begun — the lock is
// held and the deploy recorded — or has failed before touching anything.

// run is one deploy or rollback started through the API. Its fields are
// guarded by Server.runsMu.
type run struct {
	key, kind, user string
	started         time.Time
	// id is the deploy id, known from the run's deploy_start (or, for a
	// run that ended before one, from its outcome).
	id      string
	running bool
	events  []*streamEvent
	// begun is closed when id is known; done when the run has ended.
	begun, done chan struct{}
	err         error
	tracker     *hostTracker
	// views are the run's views by deploy id (a recovery's, then its
	// deploy's); viewID is the last begun (view.go).
	views  map[string]*runView
	viewID string
	// verdicts are the runner's verdict events, held until the run has
	// returned: a client that starts the next deploy on a verdict must
	// find the lock free and the run gone from the active set.
	verdicts []drover.Event
	// published are the deploys (the run's own, those it recovered) whose
	// verdict is published: one each, whoever reports it.
	published map[string]bool
}

// emit is the run's event sink.
func (s *Server) emitter(rn *run) drover.EventSink {
	return drover.EventFunc(func(e drover.Event) {
		s.runsMu.Lock()
		defer s.runsMu.Unlock()
		if e.Kind == drover.EventDeployStart && rn.id == "" && e.Operation == rn.kind {
			rn.id = e.Deploy
			s.runs[rn.id] = rn
			close(rn.begun)
		}
		if e.Kind == drover.EventVerdict {
			rn.verdicts = append(rn.verdicts, e)
			return
		}
		s.publishLocked(rn, e)
	})
}

// publishLocked adds e to the run's timeline, the metrics and the stream.
func (s *Server) publishLocked(rn *run, e drover.Event) {
	if e.Schema == 0 {
		e.Schema = drover.EventSchema
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	se := &streamEvent{r: rn, service: rn.key, event: e, data: eventData(rn.key, e)}
	if len(rn.events) < maxRunEvents {
		rn.events = append(rn.events, se)
	}
	rn.tracker.observe(e)
	s.foldLocked(rn, e)
	s.events.publish(se)
}

// subscribe registers a stream's subscriber and returns the events to
// replay first: those of running runs (so a dashboard opened mid-deploy
// sees the plan), or with a deploy filter that run's whole timeline,
// finished or not. Holding runsMu while registering means no event falls
// between the replay and the live feed, and none comes twice.
func (s *Server) subscribe(f filter) (*subscriber, []*streamEvent) {
	s.runsMu.Lock()
	defer s.runsMu.Unlock()
	var replay []*streamEvent
	add := func(rn *run) {
		for _, e := range rn.events {
			if f.match(e) {
				replay = append(replay, e)
			}
		}
	}
	if f.run != "" {
		if rn, ok := s.runs[f.run]; ok {
			add(rn)
		}
	} else {
		for _, key := range s.keys {
			if rn := s.active[key]; rn != nil {
				add(rn)
			}
		}
	}
	return s.events.subscribe(f), replay
}

// operation is what a run does with its runner.
type operation func(ctx context.Context, r *runner.Runner) (*runner.Outcome, error)

// startOptions are the caller's part of a run.
type startOptions struct {
	kind string
	// yes answers the spec's confirm gates in advance (there is no
	// terminal in a server to ask on).
	yes bool
	// cleanup runs when the run is over (removes an uploaded bundle).
	cleanup func()
}

// start begins a run of op on svc for p and returns once it has begun or
// ended. An error means nothing was touched (bad input, the lock is held).
func (s *Server) start(ctx context.Context, p *Principal, svc *Service, o startOptions, op operation) (*run, error) {
	cleanup := o.cleanup
	if cleanup == nil {
		cleanup = func() {}
	}
	key := runner.Key(svc.Spec)
	s.runsMu.Lock()
	if s.closed {
		s.runsMu.Unlock()
		cleanup()
		return nil, drover.Errorf(drover.EUNREACHABLE, "the server is shutting down").WithHint("try again once it is back")
	}
	if other := s.active[key]; other != nil {
		id := other.id
		s.runsMu.Unlock()
		cleanup()
		if id == "" {
			id = "(starting)"
		}
		return nil, drover.Errorf(drover.ELOCKED, "%s %s of %s is running, started by %s at %s", other.kind, id, key, other.user, other.started.Format(time.RFC3339)).
			WithHint("wait for it, or abort it: POST /api/v1/deploys/" + id + "/abort")
	}
	rn := &run{key: key, kind: o.kind, user: p.User(), started: s.now(), running: true,
		begun: make(chan struct{}), done: make(chan struct{}),
		tracker: &hostTracker{m: s.metrics, service: key, all: len(svc.Spec.Hosts)}}
	s.active[key] = rn
	s.metrics.running.WithLabelValues(key).Set(1)
	s.wg.Add(1)
	s.runsMu.Unlock()

	r, release, err := svc.Open(s.emitter(rn))
	if err != nil {
		cleanup()
		s.finish(rn, nil, err)
		s.wg.Done()
		return nil, err
	}
	r.User = p.User()
	// No terminal to ask on: approval gates wait for POST .../approve
	// (or drover approve), and confirm gates were answered by "yes".
	r.AskApproval = nil
	r.Confirm = nil
	if o.yes {
		r.Confirm = func(context.Context, string) (bool, error) { return true, nil }
	}
	go func() {
		defer s.wg.Done()
		out, err := op(s.runCtx, r)
		release()
		cleanup()
		s.finish(rn, out, err)
	}()
	select {
	case <-rn.begun:
		s.audit("started", "by", rn.user, "kind", rn.kind, "deploy", rn.id, "service", key)
		return rn, nil
	case <-rn.done:
		s.runsMu.Lock()
		defer s.runsMu.Unlock()
		if rn.err != nil {
			return nil, rn.err
		}
		return rn, nil
	case <-ctx.Done():
		// The caller went away; the run goes on, owned by the server.
		return nil, drover.Errorf(drover.ETIMEOUT, "the request ended before the %s began; it may still run", o.kind).
			WithHint("GET /api/v1/services/" + key + "/deploys shows it")
	}
}

// finish records how a run ended: the runner's verdicts, then one for
// every outcome the runner reported none for (a run that failed after it
// began, a recovery that touched no host), the metrics, and the run
// leaves the active set.
func (s *Server) finish(rn *run, out *runner.Outcome, err error) {
	s.runsMu.Lock()
	defer s.runsMu.Unlock()
	for _, e := range rn.verdicts {
		s.verdictLocked(rn, e)
	}
	switch {
	case err != nil:
		rn.err = err
		if rn.id != "" {
			// Begun, then failed without a verdict: a person looks.
			s.verdictLocked(rn, drover.Event{Deploy: rn.id, Kind: drover.EventVerdict, Operation: rn.kind, Outcome: drover.OutcomeNeedsPerson, Message: err.Error()})
		}
	case out != nil:
		for _, o := range out.Recovered {
			if o != out {
				s.verdictLocked(rn, verdictEvent(o))
			}
		}
		if rn.id == "" {
			rn.id = out.DeployID
			s.runs[rn.id] = rn
		}
		s.verdictLocked(rn, verdictEvent(out))
	}
	rn.running = false
	if s.active[rn.key] == rn {
		delete(s.active, rn.key)
		s.metrics.running.WithLabelValues(rn.key).Set(0)
	}
	if rn.id != "" {
		s.finished = append(s.finished, rn)
		if len(s.finished) > keepRuns {
			old := s.finished[0]
			s.finished = s.finished[1:]
			if s.runs[old.id] == old {
				delete(s.runs, old.id)
			}
		}
	}
	close(rn.done)
}

// verdictEvent is the verdict of an outcome the runner returned.
func verdictEvent(o *runner.Outcome) drover.Event {
	return drover.Event{Deploy: o.DeployID, Kind: drover.EventVerdict, Operation: o.Kind, Outcome: o.Name(), Message: o.Summary}
}

// verdictLocked publishes the verdict of deploy e.Deploy, once, audits and
// counts it.
func (s *Server) verdictLocked(rn *run, e drover.Event) {
	if rn.published[e.Deploy] {
		return
	}
	if rn.published == nil {
		rn.published = map[string]bool{}
	}
	rn.published[e.Deploy] = true
	s.audit("finished", "kind", e.Operation, "deploy", e.Deploy, "service", rn.key, "by", rn.user, "outcome", e.Outcome, "summary", e.Message)
	s.publishLocked(rn, e)
	s.metrics.deploys.WithLabelValues(rn.key, e.Outcome).Inc()
}

// runInfo is a copy of what GET /deploys/{id} shows of a run.
func (s *Server) runInfo(id string) (key string, running bool, events []drover.Event, ok bool) {
	s.runsMu.Lock()
	defer s.runsMu.Unlock()
	rn, ok := s.runs[id]
	if !ok {
		return "", false, nil, false
	}
	events = make([]drover.Event, 0, len(rn.events))
	for _, e := range rn.events {
		events = append(events, e.event)
	}
	return rn.key, rn.running, events, true
}

// activeID is the id of the run of key in progress, "" for none.
func (s *Server) activeID(key string) string {
	s.runsMu.Lock()
	defer s.runsMu.Unlock()
	if rn := s.active[key]; rn != nil {
		return rn.id
	}
	return ""
}

func (rn *run) String() string { return fmt.Sprintf("%s %s of %s", rn.kind, rn.id, rn.key) }
