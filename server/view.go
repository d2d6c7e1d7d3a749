package server

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"drover"
	"drover/runner"
	"drover/runview"
)

// This file serves run views: each run's events folded on the server by
// runview — the fold the terminal's progress view uses — so that the
// dashboard draws what the CLI draws and holds no model of its own.
//
//	GET /api/v1/deploys/{id}/view        one run's view (from memory, or
//	                                     its record and journal)
//	GET /api/v1/view?service=KEY         server-sent "view" events: the
//	                                     service's current run, again at
//	                                     most every viewInterval while it
//	                                     changes
//	GET /api/v1/deploys/{id}/analyses/{group}/{name}
//	                                     an analysis's metric per host over
//	                                     its window, for the canary chart

// viewInterval is the least time between two views sent to one stream: a
// deploy of a thousand hosts changes its view thousands of times a
// second, and a browser needs a few frames a second.
var viewInterval = 200 * time.Millisecond

// runView is one run's view and the JSON last made of it.
type runView struct {
	v       *runview.View
	version int
	json    []byte
	jsonVer int
}

// foldLocked folds e into the run's views (a run may hold a recovery's
// and then its deploy's) and wakes the view streams of the service.
func (s *Server) foldLocked(rn *run, e drover.Event) {
	if rn.views == nil {
		rn.views = map[string]*runView{}
	}
	if e.Kind == drover.EventDeployStart {
		rn.views[e.Deploy] = &runView{v: runview.New()}
		rn.viewID = e.Deploy
	}
	rv := rn.views[e.Deploy]
	if rv == nil {
		return
	}
	rv.v.Apply(e)
	rv.version++
	for sub := range s.viewSubs {
		if sub.service == rn.key {
			select {
			case sub.changed <- struct{}{}:
			default:
			}
		}
	}
}

// viewJSONLocked is the JSON of a run's view, made once per change.
func (rv *runView) jsonLocked() []byte {
	if rv.json == nil || rv.jsonVer != rv.version {
		b, err := json.Marshal(rv.v)
		if err != nil {
			b = []byte("null")
		}
		rv.json, rv.jsonVer = b, rv.version
	}
	return rv.json
}

// viewOf is the JSON view of run id when this server ran it.
func (s *Server) viewOf(id string) ([]byte, bool) {
	s.runsMu.Lock()
	defer s.runsMu.Unlock()
	rn, ok := s.runs[id]
	if !ok {
		return nil, false
	}
	rv := rn.views[id]
	if rv == nil {
		return nil, false
	}
	return rv.jsonLocked(), true
}

// currentView is the view of key's run in progress or, when none runs,
// of the last one this server ran; nil when it ran none.
func (s *Server) currentView(key string) []byte {
	s.runsMu.Lock()
	defer s.runsMu.Unlock()
	rn := s.active[key]
	if rn == nil {
		for _, f := range slices.Backward(s.finished) {
			if f.key == key {
				rn = f
				break
			}
		}
	}
	if rn == nil || rn.views[rn.viewID] == nil {
		return nil
	}
	return rn.views[rn.viewID].jsonLocked()
}

type viewSub struct {
	service string
	changed chan struct{}
}

func (s *Server) handleViewOne(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r.Context())
	id := r.PathValue("id")
	svc, rec, err := s.findDeploy(r.Context(), p, id, RoleViewer)
	if err != nil {
		writeError(w, err)
		return
	}
	if b, ok := s.viewOf(id); ok {
		writeRaw(w, b)
		return
	}
	var journal []drover.JournalEntry
	err = s.read(svc, func(rn *runner.Runner) error {
		var err error
		journal, err = rn.Store.Journal(r.Context(), id)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, runview.FromRecord(rec, journal))
}

func writeRaw(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	w.Write([]byte("\n"))
}

// handleViewStream is GET /api/v1/view?service=KEY: server-sent events
// named "view", each the whole view of the service's current run (or
// "null" before this server ran one). A stream is never dropped for being
// slow: it skips to the newest view instead.
func (s *Server) handleViewStream(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r.Context())
	key := r.URL.Query().Get("service")
	if key == "" {
		writeError(w, drover.Errorf(drover.EINVALID, "no service named").WithHint("GET /api/v1/view?service=KEY"))
		return
	}
	if _, err := s.service(key); err != nil {
		writeError(w, err)
		return
	}
	if err := p.require(RoleViewer, key); err != nil {
		writeError(w, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, drover.Errorf(drover.EINTERNAL, "streaming is not supported by this connection"))
		return
	}
	sub := &viewSub{service: key, changed: make(chan struct{}, 1)}
	s.runsMu.Lock()
	if s.viewSubs == nil {
		s.viewSubs = map[*viewSub]struct{}{}
	}
	s.viewSubs[sub] = struct{}{}
	s.runsMu.Unlock()
	defer func() {
		s.runsMu.Lock()
		delete(s.viewSubs, sub)
		s.runsMu.Unlock()
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func() bool {
		b := s.currentView(key)
		if b == nil {
			b = []byte("null")
		}
		buf := make([]byte, 0, len(b)+24)
		buf = append(buf, "event: view\ndata: "...)
		buf = append(buf, b...)
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send() {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-sub.changed:
			// Let a burst of events settle into one view.
			if !sleepCtx(r.Context(), viewInterval) {
				return
			}
			select {
			case <-sub.changed:
			default:
			}
			if !send() {
				return
			}
		case <-tick.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
			fl.Flush()
		case <-r.Context().Done():
			return
		case <-s.streamCtx.Done():
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
