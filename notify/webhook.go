// Package notify tells other systems about deploys: webhooks (a JSON POST
// when a deploy starts, finishes, halts or rolls back) and a structured
// event log for log shippers.
//
// The model for webhooks: Webhooks is a drover.EventSink. Emit never
// blocks the deploy: it turns an event into a payload and puts it on the
// hook's bounded queue, dropping it (and counting the drop) when the queue
// is full, because a slow chat server must never hold a host out of
// rotation. One goroutine per hook, owned by Webhooks, delivers its queue
// in order, retrying a failed delivery with jittered exponential backoff.
// Close, at the end of the run, waits for the queues to drain up to a
// deadline and then abandons what is left, reporting it.
//
// Exactly once per event per hook, as far as HTTP allows: a delivery that
// got a 2xx is never sent again, and every attempt at one event carries the
// same Idempotency-Key header, so a receiver that got a request whose
// response was lost (a timeout after it answered) can drop the repeat.
//
// Secrets: header values and the signing secret may name environment
// variables (${TOKEN}), so a token need not be written in drover.yaml; they
// are expanded once, here, and never logged or put in an error. Errors name
// a hook by scheme, host and path only — a query string may hold a token
// too.
//
// Authenticity: with a secret, every body is signed (X-Hub-Signature-256:
// sha256=<hex HMAC-SHA256 of the body>, GitHub's scheme), so a receiver
// can tell drover's posts from anyone's who learned its URL. Redirects are
// refused, never followed: Go's client would resend the custom headers
// (an Authorization token) to wherever a compromised or misconfigured
// endpoint points, and a hook that moved is a configuration to fix.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"drover"
)

var _ drover.EventSink = (*Webhooks)(nil)

// Defaults for Options.
const (
	DefaultQueueSize   = 256
	DefaultAttempts    = 5
	DefaultBaseBackoff = 250 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
)

// PayloadSchema is the version of the webhook JSON body.
const PayloadSchema = 1

// Payload is the JSON body of a webhook request.
type Payload struct {
	Schema int `json:"schema"`
	// ID is unique per event per hook, the same on every retry; it is
	// also the Idempotency-Key header.
	ID string `json:"id"`
	// Event is the webhook event name: start, finish, halt or rollback.
	Event   string    `json:"event"`
	Service string    `json:"service"`
	Env     string    `json:"env,omitempty"`
	Deploy  string    `json:"deploy"`
	Time    time.Time `json:"time"`
	Message string    `json:"message,omitempty"`
	// Detail is the drover event as `--output json` prints it.
	Detail drover.Event `json:"detail"`
	// Overrides are the checks, analyses and gates the deploy skipped
	// (--skip-check and friends, with the reason), on every event of that
	// deploy: a "finish" that reads succeeded must not hide that nothing
	// checked it.
	Overrides []drover.Override `json:"overrides,omitempty"`
}

// Options tune delivery; the zero value means the defaults.
type Options struct {
	Service, Env string
	// Client sends the requests; nil means a client without a global
	// timeout (each attempt is bounded by the hook's timeout).
	Client *http.Client
	// QueueSize bounds each hook's queue of undelivered events.
	QueueSize int
	// Attempts is how many times one event is tried, the first included.
	Attempts int
	// BaseBackoff doubles after each failed attempt up to MaxBackoff; the
	// wait is a random point in its upper half, so hooks retried by many
	// drover runs at once do not arrive in lockstep.
	BaseBackoff, MaxBackoff time.Duration
	// Seed seeds the jitter; 0 means from the clock.
	Seed uint64
	// Sleep waits between attempts; nil means a timer honoring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnError is told about each event given up on, in the hook's
	// goroutine; nil discards.
	OnError func(hook string, err error)
	// Getenv expands ${VAR} in header values; nil means os.Getenv with a
	// missing variable an error.
	LookupEnv func(string) (string, bool)
}

// Webhooks delivers events to the configured hooks.
type Webhooks struct {
	opts  Options
	hooks []*hook

	mu     sync.Mutex
	closed bool
	// overrides of the deploys this sink saw start, until their verdict.
	overrides map[string][]drover.Override

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// SignatureHeader carries the body's HMAC-SHA256 under the hook's secret.
const SignatureHeader = "X-Hub-Signature-256"

// Sign is the value of SignatureHeader for body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// errRedirect ends a delivery answered with a redirect.
var errRedirect = errors.New("the hook answered with a redirect, which drover does not follow (it would resend the headers elsewhere): configure the final URL")

type hook struct {
	cfg     Webhook
	name    string // scheme://host/path, safe to print
	secret  []byte // expanded; nil signs nothing
	headers http.Header
	kinds   map[string]string // event kind -> webhook event name
	queue   chan Payload

	mu        sync.Mutex
	seq       int
	dropped   int
	failed    int
	delivered int
}

// New returns Webhooks for hooks and starts one delivery goroutine per
// hook; Close stops them. A header naming an unset environment variable
// is EINVALID: sending "Bearer " with an empty token would fail every
// delivery with a 401 nobody reads.
func New(hooks []Webhook, o Options) (*Webhooks, error) {
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	client := &http.Client{}
	if o.Client != nil {
		c := *o.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return errRedirect }
	o.Client = client
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	w := &Webhooks{opts: o}
	for i, cfg := range hooks {
		h := &hook{cfg: cfg, name: SafeURL(cfg.URL), headers: http.Header{}, kinds: map[string]string{}, queue: make(chan Payload, o.QueueSize)}
		expand := func(v, where, what string) (string, error) {
			var missing []string
			val := os.Expand(v, func(name string) string {
				s, ok := o.LookupEnv(name)
				if !ok {
					missing = append(missing, name)
				}
				return s
			})
			if len(missing) > 0 {
				return "", (&drover.Error{Code: drover.EINVALID, Where: where,
					Message: fmt.Sprintf("the %s names environment variable %s, which is not set", what, strings.Join(missing, ", "))}).
					WithHint("export it before running drover, or write $$ for a literal $")
			}
			return val, nil
		}
		for k, v := range cfg.Headers {
			val, err := expand(v, fmt.Sprintf("webhooks[%d].headers.%s", i, k), "header")
			if err != nil {
				return nil, err
			}
			h.headers.Set(k, val)
		}
		if cfg.Secret != "" {
			val, err := expand(cfg.Secret, fmt.Sprintf("webhooks[%d].secret", i), "secret")
			if err != nil {
				return nil, err
			}
			if val == "" {
				// An empty key signs with nothing a receiver could not
				// compute itself.
				return nil, (&drover.Error{Code: drover.EINVALID, Where: fmt.Sprintf("webhooks[%d].secret", i), Message: "the secret is empty"}).
					WithHint("set the variable it names to a long random string, or drop secret:")
			}
			h.secret = []byte(val)
		}
		events := cfg.Events
		if len(events) == 0 {
			for name := range Events {
				events = append(events, name)
			}
		}
		for _, name := range events {
			kind, ok := Events[name]
			if !ok {
				return nil, drover.Errorf(drover.EINVALID, "webhooks[%d]: %q is not a webhook event", i, name)
			}
			h.kinds[kind] = name
		}
		if h.cfg.Timeout <= 0 {
			h.cfg.Timeout = DefaultTimeout
		}
		w.hooks = append(w.hooks, h)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for i, h := range w.hooks {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.deliverAll(h, rng)
		}()
	}
	return w, nil
}

// Emit queues e for every hook that wants it. It never blocks: a full
// queue drops the event and Close reports the drop.
func (w *Webhooks) Emit(e drover.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	ovs := w.overrides[e.Deploy]
	switch {
	case e.Kind == drover.EventDeployStart && len(e.Overrides) > 0:
		if w.overrides == nil {
			w.overrides = map[string][]drover.Override{}
		}
		ovs = e.Overrides
		w.overrides[e.Deploy] = ovs
	case e.Kind == drover.EventVerdict:
		delete(w.overrides, e.Deploy)
	}
	for _, h := range w.hooks {
		name, ok := h.kinds[e.Kind]
		if !ok {
			continue
		}
		h.mu.Lock()
		h.seq++
		p := Payload{Schema: PayloadSchema, ID: eventID(h.cfg.URL, e, name, h.seq), Event: name,
			Service: w.opts.Service, Env: w.opts.Env, Deploy: e.Deploy, Time: e.Time, Message: e.Message, Detail: e, Overrides: ovs}
		select {
		case h.queue <- p:
		default:
			h.dropped++
		}
		h.mu.Unlock()
	}
}

// eventID is the idempotency key: unique per hook, deploy, event and
// position in this run's stream, and the same on every retry.
func eventID(url string, e drover.Event, name string, seq int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%d", url, e.Deploy, name, seq, e.Time.UnixNano())))
	return e.Deploy + "-" + name + "-" + hex.EncodeToString(sum[:6])
}

// Close stops accepting events and waits until every queued event was
// delivered or given up, or until ctx is done; then it cancels what is in
// flight and waits for the goroutines to return. It returns an error
// naming the hooks that lost events (dropped, failed or abandoned).
func (w *Webhooks) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		for _, h := range w.hooks {
			close(h.queue)
		}
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		w.cancel()
		<-done
	}
	w.cancel()
	var problems []string
	for _, h := range w.hooks {
		h.mu.Lock()
		if lost := h.dropped + h.failed; lost > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d of %d events not delivered (%d dropped from a full queue, %d failed or abandoned at the deadline)",
				h.name, lost, h.seq, h.dropped, h.failed))
		}
		h.mu.Unlock()
	}
	if len(problems) > 0 {
		return drover.Errorf(drover.EFAILED, "webhooks: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Delivered returns how many events each hook delivered, by safe URL.
func (w *Webhooks) Delivered() map[string]int {
	out := map[string]int{}
	for _, h := range w.hooks {
		h.mu.Lock()
		out[h.name] += h.delivered
		h.mu.Unlock()
	}
	return out
}

// deliverAll is a hook's goroutine: it sends the queue in order until the
// queue is closed and empty, or Close's deadline cancels w.ctx (then the
// rest is left in the queue and counted).
func (w *Webhooks) deliverAll(h *hook, rng *rand.Rand) {
	for p := range h.queue {
		if w.ctx.Err() != nil {
			h.mu.Lock()
			h.failed++
			h.mu.Unlock()
			continue
		}
		err := w.deliver(h, p, rng)
		h.mu.Lock()
		if err != nil {
			h.failed++
		} else {
			h.delivered++
		}
		h.mu.Unlock()
		if err != nil && w.opts.OnError != nil {
			w.opts.OnError(h.name, fmt.Errorf("event %s of %s: %w", p.Event, p.Deploy, err))
		}
	}
}

// deliver sends p until a 2xx, a permanent failure or the last attempt.
func (w *Webhooks) deliver(h *hook, p Payload, rng *rand.Rand) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	backoff := w.opts.BaseBackoff
	var last error
	for attempt := 1; attempt <= w.opts.Attempts; attempt++ {
		retry, err := w.post(h, p.ID, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry || attempt == w.opts.Attempts {
			break
		}
		// A random point in the upper half of the backoff.
		d := backoff/2 + time.Duration(rng.Int64N(int64(backoff/2)+1))
		if err := w.sleep(w.ctx, d); err != nil {
			return fmt.Errorf("abandoned at the deadline after %d attempts: %w", attempt, last)
		}
		backoff = min(backoff*2, w.opts.MaxBackoff)
	}
	return fmt.Errorf("gave up after %d attempts: %w", w.opts.Attempts, last)
}

// post makes one attempt. retry says whether another could succeed: yes
// for network errors, timeouts, 408, 429 and 5xx; no for other statuses,
// which will not change by asking again.
func (w *Webhooks) post(h *hook, id string, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(w.ctx, h.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("bad request: " + SafeURL(h.cfg.URL))
	}
	for k, v := range h.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	req.Header.Set("User-Agent", "drover-webhook/1")
	if h.secret != nil {
		req.Header.Set(SignatureHeader, Sign(h.secret, body))
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		// The error of Do quotes the URL, query included; say what
		// happened without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, errRedirect) {
			return false, fmt.Errorf("POST %s: %v", h.name, err)
		}
		return true, fmt.Errorf("POST %s: %v", h.name, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("POST %s: %s", h.name, resp.Status)
	}
	return false, fmt.Errorf("POST %s: %s (not retried)", h.name, resp.Status)
}

func (w *Webhooks) sleep(ctx context.Context, d time.Duration) error {
	if w.opts.Sleep != nil {
		return w.opts.Sleep(ctx, d)
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

// SafeURL is u without user info, query or fragment: what may be printed.
func SafeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(webhook)"
	}
	return p.Scheme + "://" + p.Host + p.Path
}
