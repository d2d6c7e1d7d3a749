package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"drover"
	"drover/internal/jsonpath"
	"drover/rollout"
)

// This file runs invariants: a JSON document (an HTTP GET, or a command's
// standard output on the controller) captured before the deploy switches
// anything and compared, rule by rule, after groups.
//
// It is the lesson of docs/why.md#compare-before-after: a migration destroyed data because nothing
// compared the statistics before and after, and the numbers that would have
// shown it were on an endpoint nobody looked at. Here the comparison is a
// gate: a violation halts the deploy and rolls back every host it
// switched, canaries included, and the halt reason carries the path, both
// values and the rule, so the person reading it knows what was lost
// without opening a dashboard.
//
// A comparison is judged once, on the first document fetched after the
// group: retrying a comparison until it passes would let a counter that
// dips and recovers through, and it is the dip that was the data loss.
// Only fetching is retried (a statistics endpoint restarting with the
// service), until the invariant's timeout.

// captureInvariants fetches every invariant's document before the deploy
// and checks that every rule's path is in it. It runs before anything on
// any host changes, so a failure here stops the deploy with nothing
// touched: comparing after a group with a baseline we never had would
// either halt a good deploy or, worse, pass a bad one.
func (x *executor) captureInvariants(ctx context.Context) error {
	for _, inv := range x.spec.Invariants {
		doc, err := x.fetchDocument(ctx, inv, "")
		if err == nil {
			var vals []string
			for _, r := range inv.Rules {
				v, perr := lookup(r.Path, doc)
				if perr != nil {
					err = perr
					break
				}
				vals = append(vals, r.Path+" = "+show(v))
			}
			if err == nil {
				x.mu.Lock()
				x.baseline[inv.Name] = doc
				x.baselineNotes = append(x.baselineNotes, fmt.Sprintf("invariant %s before the deploy: %s", inv.Name, strings.Join(vals, ", ")))
				x.mu.Unlock()
				continue
			}
		}
		return &drover.Error{
			Code:    drover.EFAILED,
			Where:   fmt.Sprintf("%s: invariant %s", x.spec.Source, inv.Name),
			Message: "cannot capture the document to compare against, so the deploy did not start; nothing was touched",
			Err:     err,
			Hint:    "make the source answer from this machine with JSON holding every rule's path, or remove the invariant",
		}
	}
	return nil
}

// emitBaseline tells what was captured, once the deploy has started: the
// values an operator compares the halt reason with.
func (x *executor) emitBaseline() {
	x.mu.Lock()
	notes := x.baselineNotes
	x.mu.Unlock()
	for _, n := range notes {
		x.r.emit(drover.Event{Deploy: x.deployID, Kind: drover.EventNotice, Message: n})
	}
}

// invariantGate compares inv after group as a run gate.
func (x *executor) invariantGate(group string, inv drover.Invariant) groupGate {
	return groupGate{
		plan: rollout.Gate{Name: "invariant " + inv.Name, Kind: rollout.GateRun}, kind: "invariant",
		run:     func(ctx context.Context) error { return x.compareInvariant(ctx, group, inv) },
		timeout: inv.Timeout + gateGrace,
	}
}

// compareInvariant fetches inv's document now and checks every rule
// against the one captured before the deploy. Every violated rule is
// reported, not only the first.
func (x *executor) compareInvariant(ctx context.Context, group string, inv drover.Invariant) error {
	x.mu.Lock()
	before, ok := x.baseline[inv.Name]
	x.mu.Unlock()
	if !ok {
		return drover.Errorf(drover.EINTERNAL, "invariant %s: no document was captured before the deploy", inv.Name)
	}
	after, err := x.fetchDocument(ctx, inv, group)
	if err != nil {
		return &drover.Error{Code: drover.EFAILED, Message: "cannot read the document after group " + group, Err: err}
	}
	var bad, good []string
	for _, r := range inv.Rules {
		msg, ok := evalRule(r, before, after)
		if ok {
			good = append(good, msg)
		} else {
			bad = append(bad, msg)
		}
	}
	if len(bad) > 0 {
		return &drover.Error{Code: drover.EFAILED, Message: strings.Join(bad, "; ")}
	}
	x.r.emit(drover.Event{Deploy: x.deployID, Kind: drover.EventNotice, Group: group, Message: fmt.Sprintf("invariant %s after group %s: %s", inv.Name, group, strings.Join(good, "; "))})
	return nil
}

// evalRule judges one rule. It returns what it saw in words — for a
// violation "$.orders.count was 1042 before, 3 after: want >= before" —
// and whether the rule holds.
func evalRule(r drover.InvariantRule, beforeDoc, afterDoc any) (string, bool) {
	before, err := lookup(r.Path, beforeDoc)
	if err != nil {
		return fmt.Sprintf("%s before the deploy: %v", r.Path, err), false
	}
	after, err := lookup(r.Path, afterDoc)
	if err != nil {
		return fmt.Sprintf("%s was %s before, and now: %v", r.Path, show(before), err), false
	}
	seen := fmt.Sprintf("%s was %s before, %s after", r.Path, show(before), show(after))
	ref, refName := before, "before"
	if r.Value != nil {
		ref, refName = json.Number(strconv.FormatFloat(*r.Value, 'g', -1, 64)), strconv.FormatFloat(*r.Value, 'g', -1, 64)
	}
	want := map[string]string{
		drover.OpEqual:  "want equal to " + refName,
		drover.OpGTE:    "want >= " + refName,
		drover.OpLTE:    "want <= " + refName,
		drover.OpWithin: fmt.Sprintf("want within %s%% of %s", strconv.FormatFloat(r.Percent, 'g', -1, 64), refName),
	}[r.Op]
	if want == "" {
		return fmt.Sprintf("%s: unknown op %q", r.Path, r.Op), false
	}
	a, aNum := number(after)
	b, bNum := number(ref)
	var ok bool
	switch {
	case r.Op == drover.OpEqual && !(aNum && bNum):
		ok = canonical(after) == canonical(ref)
	case !aNum:
		return fmt.Sprintf("%s: %s (the value after is %s, not a number)", seen, want, jsonpath.Describe(after)), false
	case !bNum:
		return fmt.Sprintf("%s: %s (the value before is %s, not a number)", seen, want, jsonpath.Describe(ref)), false
	case r.Op == drover.OpEqual:
		ok = a == b
	case r.Op == drover.OpGTE:
		ok = a >= b
	case r.Op == drover.OpLTE:
		ok = a <= b
	default: // within
		tol := math.Abs(b) * r.Percent / 100
		lo, hi := b-tol, b+tol
		ok = a >= lo && a <= hi
		want += fmt.Sprintf(" (%s to %s)", fmtNum(lo), fmtNum(hi))
	}
	if ok {
		return seen + ": ok, " + strings.TrimPrefix(want, "want "), true
	}
	return seen + ": " + want, false
}

func lookup(path string, doc any) (any, error) {
	p, err := jsonpath.Parse(path)
	if err != nil {
		return nil, err
	}
	return p.Get(doc)
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// canonical is v as compact JSON with sorted keys (encoding/json sorts map
// keys), so equal documents compare equal whatever their spacing.
func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// show is v for people: numbers and strings as JSON writes them, anything
// longer than a line cut short.
func show(v any) string {
	s := canonical(v)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// maxDocument bounds an invariant's document.
const maxDocument = controllerStdout

// fetchInterval is the pause between attempts to fetch a document (a
// quarter of the timeout when that is shorter, so a short one still retries).
const fetchInterval = 500 * time.Millisecond

// fetchDocument reads inv's document, retrying a failed read until
// inv.Timeout. group is the group just finished ("" before the deploy).
func (x *executor) fetchDocument(ctx context.Context, inv drover.Invariant, group string) (any, error) {
	timeout := inv.Timeout
	if timeout <= 0 {
		timeout = drover.DefaultInvariantTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	data := x.gateData()
	interval := min(fetchInterval, timeout/4)
	var answer error // the last failure that was the endpoint's, not our deadline's
	for attempt := 1; ; attempt++ {
		doc, err := x.fetchOnce(ctx, inv, data, group)
		if err == nil || drover.ErrorCode(err) == drover.EINVALID {
			return doc, err
		}
		// An attempt cut short by the timeout only says "deadline
		// exceeded"; the endpoint's own answer before it (a 502 and its
		// body) is what the operator needs to act on.
		if ctx.Err() == nil || answer == nil {
			answer = err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (%d attempts in %s)", answer, attempt, timeout)
		case <-t.C:
		}
	}
}

// fetchOnce makes one attempt. A document that is not JSON is EINVALID:
// the endpoint answered, and asking again gets the same answer.
func (x *executor) fetchOnce(ctx context.Context, inv drover.Invariant, data drover.GateData, group string) (any, error) {
	var body []byte
	var what string
	if inv.URL != "" {
		u, err := drover.Render("invariant "+inv.Name+" url", inv.URL, data)
		if err != nil {
			return nil, err
		}
		what = "GET " + u
		if body, err = httpGet(ctx, u); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	} else {
		cmd, err := drover.RenderGateCommand("invariant "+inv.Name+" command", inv.Command, data)
		if err != nil {
			return nil, err
		}
		what = "command " + strconv.Quote(cmd)
		res, err := runController(ctx, cmd, x.controllerDir(), x.gateEnv(group))
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s: %w", what, err)
		case res.exitCode != 0:
			return nil, fmt.Errorf("%s exited %d: %s", what, res.exitCode, tail(res.stderr, 300))
		case res.truncated:
			return nil, drover.Errorf(drover.EINVALID, "%s: its output is larger than %d bytes", what, maxDocument)
		}
		body = []byte(res.stdout)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	err := dec.Decode(&doc)
	if err == nil && dec.More() {
		err = fmt.Errorf("more than one JSON value")
	}
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "%s: not a JSON document: %v (it starts %q)", what, err, tail(firstBytes(body, 60), 60))
	}
	return doc, nil
}

func firstBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// httpGet reads a URL the way a check does: straight to the address given,
// never through a proxy from the environment, on a fresh connection.
func httpGet(ctx context.Context, u string) ([]byte, error) {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: (&net.Dialer{}).DialContext}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "%v", err)
	}
	req.Header.Set("User-Agent", "drover-invariant")
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, tail(string(body), 200))
	}
	if len(body) > maxDocument {
		return nil, drover.Errorf(drover.EINVALID, "the document is larger than %d bytes", maxDocument)
	}
	return body, nil
}
