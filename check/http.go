package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"drover"
)

// maxBody is how much of a response body is searched for ExpectBody; a
// version endpoint is small, and a huge page must not exhaust memory.
const maxBody = 1 << 20

// httpProbe passes when GET c.URL answers with the expected status (200
// when c.ExpectStatus is 0), every header in c.ExpectHeaders has exactly
// its value (names are case-insensitive), and the body contains
// c.ExpectBody. The returned func closes the client's connections.
//
// The client is fresh per check and keeps no idle connections: a check
// must see the service as a new client would, not through a connection
// opened to the old process before the restart, and a fleet-wide rollout
// must not pile up idle connections to every host. It goes to the host
// directly, never through a proxy from the environment: a check through a
// proxy checks the proxy. Redirects are followed.
func httpProbe(c drover.CheckSpec) (func(context.Context, time.Duration) (string, error), func()) {
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{}).DialContext,
	}
	client := &http.Client{Transport: tr}
	want := c.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	names := make([]string, 0, len(c.ExpectHeaders))
	for name := range c.ExpectHeaders {
		names = append(names, name)
	}
	slices.Sort(names) // the same failure reads the same way every time

	run := func(ctx context.Context, budget time.Duration) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
		if err != nil {
			return fmt.Sprintf("http GET %s: %v", c.URL, err), nil
		}
		req.Header.Set("User-Agent", "drover-check")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Sprintf("http GET %s: %s", c.URL, netReason(err, budget)), nil
		}
		defer resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Sprintf("http GET %s: status %d, want %d", c.URL, resp.StatusCode, want), nil
		}
		for _, name := range names {
			wantV := c.ExpectHeaders[name]
			got := resp.Header.Values(name)
			if slices.Contains(got, wantV) {
				continue
			}
			if len(got) == 0 {
				return fmt.Sprintf("header %s missing, want %q", name, wantV), nil
			}
			return fmt.Sprintf("header %s = %q, want %q", name, strings.Join(got, ", "), wantV), nil
		}
		if c.ExpectBody != "" {
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
			if err != nil {
				return fmt.Sprintf("http GET %s: reading body: %s", c.URL, netReason(err, budget)), nil
			}
			if !strings.Contains(string(body), c.ExpectBody) {
				return fmt.Sprintf("body does not contain %q (got %s)", c.ExpectBody, quoteHead(string(body))), nil
			}
		}
		return "", nil
	}
	return run, tr.CloseIdleConnections
}

// maxQuoted is how much of a body or command output a reason quotes:
// enough to recognise what answered, short enough for one log line.
const maxQuoted = 200

// quoteHead quotes the start of s, marking a cut with "...".
func quoteHead(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", s[:cut])
}

// tail returns the end of command output, marking a cut with "...": the
// last lines are where a failing script says why.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= maxQuoted {
		return s
	}
	cut := len(s) - maxQuoted
	for cut < len(s) && !utf8RuneStart(s[cut]) {
		cut++
	}
	return "..." + s[cut:]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// netReason turns a dial or request error into its useful part:
// "connection refused" rather than "Get \"http://...\": dial tcp
// 127.0.0.1:18001: connect: connection refused", whose other parts the
// caller already names.
func netReason(err error, budget time.Duration) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf("no answer within %v", budget.Round(time.Millisecond))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	return err.Error()
}
