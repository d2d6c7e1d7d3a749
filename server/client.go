package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"drover"
	"drover/runner"
)

// Client calls a drover server's API: what `drover deploy --server` and
// the other commands use, and the tests. Errors come back as
// *drover.Error with the server's code, where and hint.
type Client struct {
	// Base is the server's URL: http://127.0.0.1:7800.
	Base  string
	Token string
	// TLS configures https (a private CA); nil uses the system's roots.
	TLS *tls.Config
	// RetryFor is how long a request a replica could not hand to a
	// leader (503 with HeaderNotForwarded: none leads yet, or leadership
	// moved mid-flight) is sent again; DefaultRetryFor when 0, none when
	// negative. An election settles within the store's lease TTL, and an
	// operator failing over at 3 a.m. should not have to retry by hand.
	RetryFor time.Duration
	// Notify, when set, is told of each retry.
	Notify func(msg string)
	http   *http.Client
}

// DefaultRetryFor covers an election at the default lease TTL (10 s)
// twice over.
const DefaultRetryFor = 30 * time.Second

// NewClient returns a client of the server at base.
func NewClient(base, token string, tlsConf *tls.Config) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, drover.Errorf(drover.EINVALID, "--server %q: want http://HOST:PORT or https://HOST:PORT", base)
	}
	if token == "" {
		return nil, drover.Errorf(drover.EUNAUTHORIZED, "no token for %s", base).
			WithHint("pass --token or set DROVER_TOKEN; an admin makes one with drover server token create")
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		TLSClientConfig:       tlsConf,
		ResponseHeaderTimeout: 15 * time.Minute,
	}
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, TLS: tlsConf, http: &http.Client{Transport: tr}}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// request sends a request, again while a replica answers that no leader
// received it (see RetryFor). body, when not nil, must be seekable so
// that it can be sent again whole.
func (c *Client) request(ctx context.Context, method, path string, body io.ReadSeeker, ctype string) (*http.Response, error) {
	retryFor := c.RetryFor
	if retryFor == 0 {
		retryFor = DefaultRetryFor
	}
	var start int64
	if body != nil {
		var err error
		if start, err = body.Seek(0, io.SeekCurrent); err != nil {
			return nil, drover.Errorf(drover.EINVALID, "request body: %v", err)
		}
	}
	until := time.Now().Add(retryFor)
	for {
		resp, err := c.send(ctx, method, path, body, ctype)
		if err == nil || resp == nil {
			return resp, err
		}
		// resp is a 503 no leader received; its body is read and closed.
		wait := retryAfter(resp.Header.Get("Retry-After"))
		if retryFor < 0 || time.Now().Add(wait).After(until) {
			return nil, err
		}
		if c.Notify != nil {
			c.Notify(fmt.Sprintf("%s: %v; sending it again in %s", c.Base, err, wait))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if body != nil {
			if _, err := body.Seek(start, io.SeekStart); err != nil {
				return nil, drover.Errorf(drover.EINVALID, "request body: %v", err)
			}
		}
	}
}

// retryAfter reads a Retry-After in seconds, kept between 1 and 5 s.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		n = 1
	}
	return time.Duration(min(n, 5)) * time.Second
}

// send sends one request. An error answer is returned as err; resp is
// then non-nil (its body consumed) only for a 503 that no leader
// received, which request may send again.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	if _, ok := body.(io.Closer); ok {
		// The transport closes a body it can; request sends it again.
		body = struct{ io.Reader }{body}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, (&drover.Error{Code: drover.EUNREACHABLE, Message: "cannot reach the drover server", Err: err}).At(c.Base).
			WithHint("is drover server running there? check --server / DROVER_SERVER")
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var again *http.Response
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(HeaderNotForwarded) == "1" {
			again = resp
		}
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			return again, FromErrorJSON(eb.Error)
		}
		return again, drover.Errorf(drover.EINTERNAL, "%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b))).At(c.Base)
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.ReadSeeker
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	resp, err := c.request(ctx, method, path, body, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return drover.Errorf(drover.EINTERNAL, "%s %s: reading the answer: %v", method, path, err).At(c.Base)
	}
	return nil
}

func keyPath(key string) string { return "/api/v1/services/" + url.PathEscape(key) }

// Whoami is GET /whoami.
func (c *Client) Whoami(ctx context.Context) (Principal, error) {
	var p Principal
	return p, c.call(ctx, "GET", "/api/v1/whoami", nil, &p)
}

// Services is GET /services.
func (c *Client) Services(ctx context.Context) ([]ServiceInfo, error) {
	var out []ServiceInfo
	return out, c.call(ctx, "GET", "/api/v1/services", nil, &out)
}

// Status is GET /services/{key}/status.
func (c *Client) Status(ctx context.Context, key string) (*StatusView, error) {
	var out StatusView
	if err := c.call(ctx, "GET", keyPath(key)+"/status", nil, &out); err != nil {
		return nil, err
	}
	if out.FleetStatus == nil {
		out.FleetStatus = &runner.FleetStatus{}
	}
	return &out, nil
}

// History is GET /services/{key}/deploys.
func (c *Client) History(ctx context.Context, key string, limit int) ([]drover.DeployRecord, error) {
	var out []drover.DeployRecord
	return out, c.call(ctx, "GET", fmt.Sprintf("%s/deploys?limit=%d", keyPath(key), limit), nil, &out)
}

// Deploy starts a deploy of a release already on the server's machine.
func (c *Client) Deploy(ctx context.Context, key string, req DeployRequest) (Started, error) {
	var out Started
	return out, c.call(ctx, "POST", keyPath(key)+"/deploys", req, &out)
}

// DeployBundle uploads a bundle and starts its deploy; req.Release is
// ignored.
func (c *Client) DeployBundle(ctx context.Context, key, bundle string, req DeployRequest) (Started, error) {
	f, err := os.Open(bundle)
	if err != nil {
		return Started{}, drover.Errorf(drover.EINVALID, "bundle: %v", err)
	}
	defer f.Close()
	q := url.Values{}
	for k, v := range map[string]string{"version": req.Version, "limit": req.Limit, "message": req.Message} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if req.Force {
		q.Set("force", "1")
	}
	if req.Yes {
		q.Set("yes", "1")
	}
	q["skip_check"], q["skip_analysis"], q["skip_gate"] = req.SkipChecks, req.SkipAnalyses, req.SkipGates
	resp, err := c.request(ctx, "POST", keyPath(key)+"/deploys?"+q.Encode(), f, "application/gzip")
	if err != nil {
		return Started{}, err
	}
	defer resp.Body.Close()
	var out Started
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, drover.Errorf(drover.EINTERNAL, "reading the answer: %v", err).At(c.Base)
	}
	return out, nil
}

// Rollback is POST /services/{key}/rollback.
func (c *Client) Rollback(ctx context.Context, key string, req RollbackRequest) (Started, error) {
	var out Started
	return out, c.call(ctx, "POST", keyPath(key)+"/rollback", req, &out)
}

// DeployInfo is GET /deploys/{id}.
func (c *Client) DeployInfo(ctx context.Context, id string) (DeployInfo, error) {
	var out DeployInfo
	return out, c.call(ctx, "GET", "/api/v1/deploys/"+url.PathEscape(id), nil, &out)
}

// Approve is POST /deploys/{id}/approve.
func (c *Client) Approve(ctx context.Context, id string, req ApproveRequest) (Decided, error) {
	var out Decided
	return out, c.call(ctx, "POST", "/api/v1/deploys/"+url.PathEscape(id)+"/approve", req, &out)
}

// Abort is POST /deploys/{id}/abort.
func (c *Client) Abort(ctx context.Context, id string, req AbortRequest) (Decided, error) {
	var out Decided
	return out, c.call(ctx, "POST", "/api/v1/deploys/"+url.PathEscape(id)+"/abort", req, &out)
}

// StreamEvent is one event of the stream with the service it belongs to.
type StreamEvent struct {
	Service string `json:"service"`
	drover.Event
}

// Events reads GET /events with query q (service=, deploy=) and calls fn
// for each event until fn returns false, the stream ends or ctx is done.
func (c *Client) Events(ctx context.Context, q url.Values, fn func(StreamEvent) bool) error {
	resp, err := c.request(ctx, "GET", "/api/v1/events?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			var e StreamEvent
			err := json.Unmarshal([]byte(data.String()), &e)
			data.Reset()
			if err != nil {
				return drover.Errorf(drover.EINTERNAL, "event stream: %v", err).At(c.Base)
			}
			if !fn(e) {
				return nil
			}
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return (&drover.Error{Code: drover.EUNREACHABLE, Message: "the event stream broke", Err: err}).At(c.Base)
	}
	return (&drover.Error{Code: drover.EUNREACHABLE, Message: "the event stream ended"}).At(c.Base)
}

// Follow streams the events of run id (replayed from its start) to fn
// and returns its verdict event. When the stream breaks — the server
// dropped a slow reader, a proxy timed out — it reconnects and skips the
// events it already has.
func (c *Client) Follow(ctx context.Context, id string, fn func(drover.Event)) (drover.Event, error) {
	seen := 0
	var verdict *drover.Event
	for attempt := 0; ; attempt++ {
		n := 0
		err := c.Events(ctx, url.Values{"deploy": {id}}, func(e StreamEvent) bool {
			n++
			if n <= seen {
				return true
			}
			seen = n
			if fn != nil {
				fn(e.Event)
			}
			if e.Kind == drover.EventVerdict && e.Deploy == id {
				v := e.Event
				verdict = &v
				return false
			}
			return true
		})
		if verdict != nil {
			return *verdict, nil
		}
		if drover.ErrorCode(err) != drover.EUNREACHABLE || attempt >= 5 || ctx.Err() != nil {
			if err == nil {
				err = drover.Errorf(drover.EUNREACHABLE, "the event stream of %s ended without a verdict", id)
			}
			return drover.Event{}, err
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return drover.Event{}, ctx.Err()
		}
	}
}
