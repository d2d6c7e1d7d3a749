package notify

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"drover"
)

var _ drover.EventSink = (*Log)(nil)

// Log writes every event as one log/slog record: JSON lines (one object
// per event, for Logstash, Vector, Loki and the like) or slog's text form.
// The record's time is the event's, not the time it was written, so that a
// shipper orders lines the way they happened.
//
// The level says what needs reading: ERROR for a halt, a host that could
// not be restored or an abort; WARN for a failed step or host; INFO for the
// rest. Only the event's own fields are written: no config, no webhook
// headers, nothing that could carry a secret beyond what the event already
// shows on the terminal.
type Log struct {
	Service, Env string

	mu sync.Mutex
	h  slog.Handler
}

// NewLog returns a Log writing to w in format "json" (the default) or
// "text".
func NewLog(w io.Writer, format, service, env string) *Log {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return &Log{Service: service, Env: env, h: h}
}

// Level is the slog level an event is logged at.
func Level(e drover.Event) slog.Level {
	switch e.Kind {
	case drover.EventHalt, drover.EventHostStuck, drover.EventAbort:
		return slog.LevelError
	case drover.EventHostFailed:
		return slog.LevelWarn
	case drover.EventStepDone:
		if e.Outcome != "" && e.Outcome != "ok" {
			return slog.LevelWarn
		}
	}
	return slog.LevelInfo
}

// Emit writes e. Errors writing the log are dropped: a full disk under the
// log must not stop a deploy half-way.
func (l *Log) Emit(e drover.Event) {
	r := slog.NewRecord(e.Time, Level(e), e.Kind, 0)
	r.AddAttrs(slog.String("service", l.Service))
	if l.Env != "" {
		r.AddAttrs(slog.String("env", l.Env))
	}
	r.AddAttrs(slog.String("deploy", e.Deploy), slog.String("kind", e.Kind))
	str := func(k, v string) {
		if v != "" {
			r.AddAttrs(slog.String(k, v))
		}
	}
	str("operation", e.Operation)
	str("release", e.Release)
	str("version", e.Version)
	str("group", e.Group)
	str("host", e.Host)
	str("step", e.Step)
	str("outcome", e.Outcome)
	if e.Elapsed > 0 {
		r.AddAttrs(slog.Float64("elapsed_s", e.Elapsed.Seconds()))
	}
	str("message", e.Message)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.h.Handle(context.Background(), r)
}
