package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"drover"
	"drover/notify"
)

// receiver is a webhook endpoint that records every request and can fail
// the first attempt of each event.
type receiver struct {
	mu        sync.Mutex
	attempts  map[string]int // idempotency key -> requests
	accepted  map[string]int // idempotency key -> 2xx answers
	payloads  []notify.Payload
	headers   []http.Header
	failFirst bool
	status    int           // answer every request with this, when set
	block     chan struct{} // when set, requests wait for it to close
}

func newReceiver(t *testing.T, r *receiver) *httptest.Server {
	r.attempts, r.accepted = map[string]int{}, map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.block != nil {
			select {
			case <-r.block:
			case <-req.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(req.Body)
		key := req.Header.Get("Idempotency-Key")
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts[key]++
		switch {
		case r.status != 0:
			w.WriteHeader(r.status)
			return
		case r.failFirst && r.attempts[key] == 1:
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if r.accepted[key] == 0 {
			var p notify.Payload
			if err := json.Unmarshal(body, &p); err != nil {
				t.Errorf("payload: %v: %s", err, body)
			}
			r.payloads = append(r.payloads, p)
			r.headers = append(r.headers, req.Header.Clone())
		}
		r.accepted[key]++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func noSleep(context.Context, time.Duration) error { return nil }

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func events() []drover.Event {
	return []drover.Event{
		{Time: t0, Deploy: "d-1", Kind: drover.EventDeployStart, Message: "deploy hello 2.0.0", Operation: "deploy", Release: "2.0.0-abc", Version: "2.0.0"},
		{Time: t0.Add(time.Second), Deploy: "d-1", Kind: drover.EventStepDone, Host: "h01", Step: "switch", Outcome: "ok"},
		{Time: t0.Add(2 * time.Second), Deploy: "d-1", Kind: drover.EventHalt, Message: "group default: 2 failed > limit 1"},
		{Time: t0.Add(3 * time.Second), Deploy: "d-1", Kind: drover.EventRollback, Message: "rolling back 3 hosts"},
		{Time: t0.Add(4 * time.Second), Deploy: "d-1", Kind: drover.EventVerdict, Message: "rolled back"},
	}
}

// Every event a hook asked for arrives exactly once, even when the first
// attempt at each fails with 500: it is retried with the same idempotency
// key, and never sent again after a 2xx.
func TestWebhookExactlyOnceWithRetries(t *testing.T) {
	rec := &receiver{failFirst: true}
	srv := newReceiver(t, rec)
	var slept []time.Duration
	var mu sync.Mutex
	w, err := notify.New([]notify.Webhook{{URL: srv.URL + "/hook?token=s3cret", Timeout: 5 * time.Second,
		Headers: map[string]string{"Authorization": "Bearer ${HOOK_TOKEN}"}}},
		notify.Options{Service: "hello", Env: "prod", Seed: 1,
			LookupEnv: func(k string) (string, bool) { return map[string]string{"HOOK_TOKEN": "tok-123"}[k], k == "HOOK_TOKEN" },
			Sleep: func(_ context.Context, d time.Duration) error {
				mu.Lock()
				slept = append(slept, d)
				mu.Unlock()
				return nil
			}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events() {
		w.Emit(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	w.Emit(events()[0]) // after Close: ignored, not a panic

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var names []string
	for _, p := range rec.payloads {
		names = append(names, p.Event)
	}
	if got := strings.Join(names, " "); got != "start halt rollback finish" {
		t.Errorf("delivered %q, want start halt rollback finish, in order (step_done is not a webhook event)", got)
	}
	for key, n := range rec.accepted {
		if n != 1 || rec.attempts[key] != 2 {
			t.Errorf("event %s: accepted %d times after %d attempts, want once after 2", key, n, rec.attempts[key])
		}
	}
	if len(rec.accepted) != 4 {
		t.Errorf("%d distinct idempotency keys, want 4", len(rec.accepted))
	}
	p := rec.payloads[0]
	if p.Service != "hello" || p.Env != "prod" || p.Deploy != "d-1" || !p.Time.Equal(t0) || p.Detail.Release != "2.0.0-abc" || p.ID == "" || p.Schema != notify.PayloadSchema {
		t.Errorf("payload %+v", p)
	}
	h := rec.headers[0]
	if h.Get("Authorization") != "Bearer tok-123" || h.Get("Content-Type") != "application/json" || h.Get("Idempotency-Key") != p.ID {
		t.Errorf("headers %v", h)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(slept) != 4 {
		t.Errorf("slept %v, want one backoff per event", slept)
	}
	for _, d := range slept {
		if d < notify.DefaultBaseBackoff/2 || d > notify.DefaultBaseBackoff {
			t.Errorf("first backoff %v, want within [%v, %v]", d, notify.DefaultBaseBackoff/2, notify.DefaultBaseBackoff)
		}
	}
	if got := w.Delivered()[notify.SafeURL(srv.URL+"/hook")]; got != 4 {
		t.Errorf("Delivered = %d, want 4", got)
	}
}

// A deploy's overrides ride on every payload of that deploy, the finish
// included, and on none of another deploy's.
func TestWebhookCarriesOverrides(t *testing.T) {
	rec := &receiver{}
	srv := newReceiver(t, rec)
	w, err := notify.New([]notify.Webhook{{URL: srv.URL}}, notify.Options{Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	ovs := []drover.Override{{Kind: drover.OverrideCheck, Name: "version", Reason: "INC-42"}}
	evs := events()
	evs[0].Overrides = ovs
	for _, e := range evs {
		w.Emit(e)
	}
	w.Emit(drover.Event{Time: t0.Add(time.Minute), Deploy: "d-2", Kind: drover.EventDeployStart})
	w.Emit(drover.Event{Time: t0.Add(2 * time.Minute), Deploy: "d-2", Kind: drover.EventVerdict})
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.payloads) != 6 {
		t.Fatalf("%d payloads, want 6", len(rec.payloads))
	}
	for _, p := range rec.payloads {
		want := 1
		if p.Deploy == "d-2" {
			want = 0
		}
		if len(p.Overrides) != want || (want == 1 && p.Overrides[0] != ovs[0]) {
			t.Errorf("%s %s: overrides %+v", p.Deploy, p.Event, p.Overrides)
		}
	}
}

func TestWebhookEventFilter(t *testing.T) {
	rec := &receiver{}
	srv := newReceiver(t, rec)
	w, err := notify.New([]notify.Webhook{{URL: srv.URL, Events: []string{"finish"}}}, notify.Options{Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events() {
		w.Emit(e)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.payloads) != 1 || rec.payloads[0].Event != "finish" {
		t.Errorf("payloads %+v, want only finish", rec.payloads)
	}
}

// Backoff grows, stays jittered and capped, and a hook that keeps failing
// is given up after Attempts, reported without its query string.
func TestWebhookGivesUpAndReportsSafely(t *testing.T) {
	rec := &receiver{status: http.StatusBadGateway}
	srv := newReceiver(t, rec)
	var slept []time.Duration
	var reported []string
	w, err := notify.New([]notify.Webhook{{URL: srv.URL + "/x?token=s3cret", Events: []string{"start"}}}, notify.Options{
		Attempts: 6, BaseBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		Sleep:   func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil },
		OnError: func(hook string, err error) { reported = append(reported, hook+": "+err.Error()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Emit(events()[0])
	err = w.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "1 of 1 events not delivered") {
		t.Fatalf("Close: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.attempts[rec.keys()[0]] != 6 {
		t.Errorf("attempts %v, want 6", rec.attempts)
	}
	caps := []time.Duration{100, 200, 400, 400, 400}
	for i, d := range slept {
		c := caps[i] * time.Millisecond
		if d < c/2 || d > c {
			t.Errorf("backoff %d = %v, want within [%v, %v]", i, d, c/2, c)
		}
	}
	if len(slept) != 5 {
		t.Errorf("slept %v, want 5 waits between 6 attempts", slept)
	}
	all := strings.Join(reported, "\n") + err.Error()
	if len(reported) != 1 || !strings.Contains(all, "502") || strings.Contains(all, "s3cret") {
		t.Errorf("reported %q / %v: want one report naming the status and not the token", reported, err)
	}
}

func (r *receiver) keys() []string {
	var out []string
	for k := range r.attempts {
		out = append(out, k)
	}
	return out
}

// A 4xx other than 408/429 will not change by asking again.
func TestWebhookClientErrorNotRetried(t *testing.T) {
	rec := &receiver{status: http.StatusUnauthorized}
	srv := newReceiver(t, rec)
	w, _ := notify.New([]notify.Webhook{{URL: srv.URL, Events: []string{"start"}}}, notify.Options{Sleep: noSleep})
	w.Emit(events()[0])
	if err := w.Close(context.Background()); err == nil {
		t.Fatal("Close: no error for an undelivered event")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := rec.attempts[rec.keys()[0]]; n != 1 {
		t.Errorf("401 tried %d times, want 1", n)
	}
}

// Emit never blocks on a stuck receiver, and Close gives up at its
// deadline instead of holding the end of a deploy hostage.
func TestWebhookNeverBlocksTheDeploy(t *testing.T) {
	rec := &receiver{block: make(chan struct{})}
	srv := newReceiver(t, rec)
	defer close(rec.block)
	w, err := notify.New([]notify.Webhook{{URL: srv.URL, Timeout: time.Minute}}, notify.Options{QueueSize: 3, Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	emitted := make(chan struct{})
	go func() {
		for range 50 {
			for _, e := range events() {
				w.Emit(e)
			}
		}
		close(emitted)
	}()
	select {
	case <-emitted:
	case <-time.After(20 * time.Second):
		t.Fatal("Emit blocked on a stuck receiver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- w.Close(ctx) }()
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(err.Error(), "dropped from a full queue") {
			t.Errorf("Close: %v, want the dropped events reported", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return at its deadline")
	}
}

func TestWebhookMissingEnvIsBadInput(t *testing.T) {
	_, err := notify.New([]notify.Webhook{{URL: "https://x/hook", Headers: map[string]string{"Authorization": "Bearer ${NOPE_TOKEN}"}}},
		notify.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "NOPE_TOKEN") || !strings.Contains(err.Error(), "webhooks[0].headers.Authorization") {
		t.Fatalf("New: %v, want EINVALID naming the variable and the header", err)
	}
}

func TestWebhookLog(t *testing.T) {
	var buf bytes.Buffer
	l := notify.NewLog(&buf, "json", "hello", "prod")
	evs := events()
	evs[1].Elapsed = 1500 * time.Millisecond
	evs = append(evs, drover.Event{Time: t0.Add(5 * time.Second), Deploy: "d-1", Kind: drover.EventStepDone, Host: "h02", Step: "check", Outcome: "failed", Message: "health: 500"})
	for _, e := range evs {
		l.Emit(e)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(evs), buf.String())
	}
	var recs []map[string]any
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		recs = append(recs, m)
	}
	if r := recs[0]; r["time"] != t0.Format(time.RFC3339) || r["level"] != "INFO" || r["msg"] != "deploy_start" || r["service"] != "hello" || r["env"] != "prod" || r["release"] != "2.0.0-abc" {
		t.Errorf("deploy_start line %v", r)
	}
	if r := recs[1]; r["host"] != "h01" || r["elapsed_s"] != 1.5 {
		t.Errorf("step_done line %v", r)
	}
	if recs[2]["level"] != "ERROR" || recs[5]["level"] != "WARN" {
		t.Errorf("levels: halt %v, failed step %v", recs[2]["level"], recs[5]["level"])
	}
}
