package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"drover"
)

// This file is the live event stream. Each run's events are kept in
// memory (its timeline) and fanned out to every subscriber through a
// bounded buffer. A subscriber that cannot keep up is dropped — its stream
// ends and the browser's EventSource reconnects, replaying — because a
// deploy must never wait for a slow dashboard.

// subscriberBuffer is how many events a subscriber may lag behind.
const subscriberBuffer = 1024

// maxRunEvents bounds one run's in-memory timeline; a deploy of thousands
// of hosts stays well under it.
const maxRunEvents = 200_000

// heartbeat is how often an idle stream gets a comment, so proxies and
// the browser keep the connection.
var heartbeat = 15 * time.Second

// streamEvent is one event as the stream and the timeline carry it.
type streamEvent struct {
	r       *run
	service string
	event   drover.Event
	// data is the JSON sent: the event's fields plus "service".
	data []byte
}

// eventData is the event's JSON with "service" added, made once per event
// and shared by every subscriber.
func eventData(service string, e drover.Event) []byte {
	b, _ := json.Marshal(e)
	k, _ := json.Marshal(service)
	var buf bytes.Buffer
	buf.Grow(len(b) + len(k) + 12)
	buf.WriteString(`{"service":`)
	buf.Write(k)
	if len(b) > 2 {
		buf.WriteByte(',')
	}
	buf.Write(b[1:])
	return buf.Bytes()
}

// filter selects a subscriber's events; zero fields select everything.
type filter struct {
	service string
	run     string
	// visible is the principal's scope.
	visible func(service string) bool
}

func (f filter) match(e *streamEvent) bool {
	return (f.service == "" || f.service == e.service) && (f.run == "" || f.run == e.r.id) && (f.visible == nil || f.visible(e.service))
}

type subscriber struct {
	f  filter
	ch chan *streamEvent
	// dropped is closed when the broker gave up on the subscriber.
	dropped chan struct{}
}

// broker fans events out to subscribers.
type broker struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

func newBroker() *broker { return &broker{subs: map[*subscriber]struct{}{}} }

// publish sends e to every matching subscriber without waiting: a full
// buffer drops the subscriber. Callers hold no lock of the run's: the
// run appends to its timeline and publishes under runsMu (see run.emit) so
// a subscriber's replay and its live events neither overlap nor miss one.
func (b *broker) publish(e *streamEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if !s.f.match(e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			delete(b.subs, s)
			close(s.dropped)
		}
	}
}

func (b *broker) subscribe(f filter) *subscriber {
	s := &subscriber{f: f, ch: make(chan *streamEvent, subscriberBuffer), dropped: make(chan struct{})}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *broker) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.dropped)
	}
}

func (b *broker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// handleEvents is GET /api/v1/events: server-sent events. ?service=KEY
// keeps one service; ?deploy=ID keeps one run and replays it even when it
// has finished (while the server remembers it), which is how `drover
// deploy --server` follows the deploy it started without a race.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r.Context())
	q := r.URL.Query()
	f := filter{service: q.Get("service"), run: q.Get("deploy"), visible: p.sees}
	if f.service != "" {
		if _, err := s.service(f.service); err != nil {
			writeError(w, err)
			return
		}
		if err := p.require(RoleViewer, f.service); err != nil {
			writeError(w, err)
			return
		}
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, drover.Errorf(drover.EINTERNAL, "streaming is not supported by this connection"))
		return
	}
	sub, replay := s.subscribe(f)
	defer s.events.unsubscribe(sub)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(e *streamEvent) bool {
		var buf bytes.Buffer
		buf.WriteString("event: drover\ndata: ")
		buf.Write(e.data)
		buf.WriteString("\n\n")
		_, err := w.Write(buf.Bytes())
		return err == nil
	}
	for _, e := range replay {
		if !write(e) {
			return
		}
	}
	// A comment at once: the client knows the stream is live even when
	// nothing runs.
	if _, err := w.Write([]byte(": ok\n\n")); err != nil {
		return
	}
	fl.Flush()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case e := <-sub.ch:
			if !write(e) {
				return
			}
			// Drain what is queued before flushing: one write per burst.
			for more := true; more; {
				select {
				case e := <-sub.ch:
					if !write(e) {
						return
					}
				default:
					more = false
				}
			}
			fl.Flush()
		case <-tick.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
			fl.Flush()
		case <-sub.dropped:
			return
		case <-r.Context().Done():
			return
		case <-s.streamCtx.Done():
			return
		}
	}
}
