package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"drover"
	"drover/rollout"
)

// statsServer serves {"orders":{"count":N}} where N is count(), and logs
// every request as a call of op opSmoke with Arg "stats".
func statsServer(t *testing.T, log *callLog, count func() int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(call{Op: opSmoke, Arg: "stats"})
		fmt.Fprintf(w, `{"orders":{"count":%d},"service":"hello"}`, count())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func ordersInvariant(url, after string) drover.Invariant {
	return drover.Invariant{Name: "orders", URL: url, After: after, Timeout: 2 * time.Second,
		Rules: []drover.InvariantRule{{Path: "$.orders.count", Op: drover.OpGTE}}}
}

// The statistics endpoint drops when the canary switches: the deploy halts
// after the canary group, before any other host switches, rolls the canary
// back, and the summary shows the path, both values and the rule.
func TestInvariantDropHaltsAfterCanary(t *testing.T) {
	spec := testSpec(5)
	e := newEnv(t, spec)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	before := e.states()
	srv := statsServer(t, e.log, func() int {
		if e.fleet.State("h01").Version == "2.0.0" {
			return 3
		}
		return 1042
	})
	spec.Invariants = []drover.Invariant{ordersInvariant(srv.URL+"/stats", drover.InvariantAfterGroup)}
	mark := e.log.mark()
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
	if out.Verdict != rollout.RolledBack || out.ExitCode != drover.ExitRolledBack {
		t.Fatalf("verdict %s exit %d: %s", out.Verdict, out.ExitCode, out.Summary)
	}
	e.wantSnapshots(before)
	want := "group canary: gate invariant orders failed: $.orders.count was 1042 before, 3 after: want >= before"
	if !strings.Contains(out.Summary, want) {
		t.Errorf("summary %q\ndoes not hold %q", out.Summary, want)
	}
	calls := e.log.since(mark)
	capture := seqOf(t, calls, func(c call) bool { return c.Op == opSmoke }, "capture")
	for _, c := range calls {
		if changesHost(c.Op) && c.Seq < capture {
			t.Errorf("%s %s on %s before the invariant was captured", c.Op, c.Arg, c.Host)
		}
		if c.Op == opPromote && c.Host != "h01" {
			t.Errorf("%s switched after the canary's invariant failed", c.Host)
		}
	}
	var notes []string
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventNotice && strings.HasPrefix(ev.Message, "invariant ") {
			notes = append(notes, ev.Message)
		}
	}
	if len(notes) != 1 || notes[0] != "invariant orders before the deploy: $.orders.count = 1042" {
		t.Errorf("invariant notices %q, want the value captured before", notes)
	}
}

// A healthy deploy compares after every group (after: group) or once at
// the end (after: deploy), and each comparison is told.
func TestInvariantComparedWhereAsked(t *testing.T) {
	for _, tc := range []struct {
		after   string
		fetches int
	}{{drover.InvariantAfterGroup, 3}, {drover.InvariantAfterDeploy, 2}} {
		t.Run(tc.after, func(t *testing.T) {
			spec := testSpec(5)
			e := newEnv(t, spec)
			var n atomic.Int32
			srv := statsServer(t, e.log, func() int { return 1000 + int(n.Add(1)) })
			spec.Invariants = []drover.Invariant{ordersInvariant(srv.URL, tc.after)}
			e.mustDeploy(mkRelease(t, "1.0.0"), "")
			if got := len(e.log.where(func(c call) bool { return c.Op == opSmoke })); got != tc.fetches {
				t.Errorf("%d fetches, want %d (one before, then one per comparison)", got, tc.fetches)
			}
		})
	}
}

// A document that cannot be captured stops the deploy before it starts:
// exit 3, nothing journaled, no host touched.
func TestInvariantCaptureFailureTouchesNothing(t *testing.T) {
	spec := testSpec(3)
	e := newEnv(t, spec)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "stats backend down", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	inv := ordersInvariant(srv.URL, drover.InvariantAfterGroup)
	// Long enough for a loaded machine to get an answer before the
	// deadline; the error must carry that answer, not the deadline.
	inv.Timeout = time.Second
	spec.Invariants = []drover.Invariant{inv}
	mark := e.log.mark()
	out, err := e.r.Deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if err == nil {
		t.Fatalf("deploy started: %s", out.Summary)
	}
	if code := drover.ExitCode(err); code != drover.ExitNeedsPerson {
		t.Errorf("exit %d, want 3: %v", code, err)
	}
	for _, want := range []string{"invariant orders", "nothing was touched", "status 502: stats backend down"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not hold %q", err, want)
		}
	}
	if hits.Load() < 2 {
		t.Errorf("fetched %d times, want retries until the timeout", hits.Load())
	}
	for _, c := range e.log.since(mark) {
		if changesHost(c.Op) || c.Op == opBegin {
			t.Errorf("%s on %q although the deploy never started", c.Op, c.Host)
		}
	}
}

// A rule naming a path the document does not have is found before the
// deploy, with what the document holds instead.
func TestInvariantMissingPathBeforeDeploy(t *testing.T) {
	spec := testSpec(2)
	e := newEnv(t, spec)
	srv := statsServer(t, e.log, func() int { return 1 })
	inv := ordersInvariant(srv.URL, drover.InvariantAfterGroup)
	inv.Rules[0].Path = "$.orders.total"
	spec.Invariants = []drover.Invariant{inv}
	_, err := e.r.Deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0")})
	if err == nil || !strings.Contains(err.Error(), `no key "total" in $.orders (keys: count)`) {
		t.Fatalf("error %v, want it to name the missing key and the keys there", err)
	}
}

// A command source runs on the controller; its stdout is the document.
func TestInvariantCommandSource(t *testing.T) {
	spec := testSpec(2)
	dir := t.TempDir()
	spec.Source = filepath.Join(dir, "drover.yaml")
	// The count file grows by one at every read: gte holds.
	spec.Invariants = []drover.Invariant{{Name: "rows", After: drover.InvariantAfterGroup, Timeout: 5 * time.Second,
		Command: `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; printf '{"service": "%s", "rows": [%d]}' "$DROVER_SERVICE" "$n"`,
		Rules:   []drover.InvariantRule{{Path: "$.rows[0]", Op: drover.OpGTE}, {Path: "$.service", Op: drover.OpEqual}}}}
	e := newEnv(t, spec)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	var compared []string
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventNotice && strings.HasPrefix(ev.Message, "invariant rows after") {
			compared = append(compared, ev.Message)
		}
	}
	want := []string{
		`invariant rows after group canary: $.rows[0] was 1 before, 2 after: ok, >= before; $.service was "hello" before, "hello" after: ok, equal to before`,
		`invariant rows after group default: $.rows[0] was 1 before, 3 after: ok, >= before; $.service was "hello" before, "hello" after: ok, equal to before`,
	}
	if strings.Join(compared, "\n") != strings.Join(want, "\n") {
		t.Errorf("comparisons\n%s\nwant\n%s", strings.Join(compared, "\n"), strings.Join(want, "\n"))
	}
}

func TestEvalRule(t *testing.T) {
	doc := func(s string) any {
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		rule          drover.InvariantRule
		before, after string
		ok            bool
		msg           string
	}{
		{drover.InvariantRule{Path: "$.n", Op: "gte"}, `{"n":1042}`, `{"n":3}`, false, "$.n was 1042 before, 3 after: want >= before"},
		{drover.InvariantRule{Path: "$.n", Op: "gte"}, `{"n":1042}`, `{"n":1042}`, true, "$.n was 1042 before, 1042 after"},
		{drover.InvariantRule{Path: "$.n", Op: "lte"}, `{"n":5}`, `{"n":6}`, false, "$.n was 5 before, 6 after: want <= before"},
		{drover.InvariantRule{Path: "$.n", Op: "equal"}, `{"n":5}`, `{"n":5.0}`, true, "$.n was 5 before, 5.0 after"},
		{drover.InvariantRule{Path: "$.n", Op: "equal"}, `{"n":5}`, `{"n":4}`, false, "want equal to before"},
		{drover.InvariantRule{Path: "$.s", Op: "equal"}, `{"s":{"a":1,"b":[1,2]}}`, `{"s":{"b":[1,2],"a":1}}`, true, ""},
		{drover.InvariantRule{Path: "$.s", Op: "equal"}, `{"s":"primary"}`, `{"s":"replica"}`, false, `$.s was "primary" before, "replica" after: want equal to before`},
		{drover.InvariantRule{Path: "$.n", Op: "within", Percent: 10}, `{"n":100}`, `{"n":109}`, true, ""},
		{drover.InvariantRule{Path: "$.n", Op: "within", Percent: 10}, `{"n":100}`, `{"n":111}`, false, "$.n was 100 before, 111 after: want within 10% of before (90 to 110)"},
		{drover.InvariantRule{Path: "$.n", Op: "within", Percent: 10}, `{"n":-100}`, `{"n":-89}`, false, "(-110 to -90)"},
		{drover.InvariantRule{Path: "$.n", Op: "within", Percent: 0}, `{"n":0}`, `{"n":0}`, true, ""},
		{drover.InvariantRule{Path: "$.rate", Op: "lte", Value: f(0.01)}, `{"rate":0.5}`, `{"rate":0.02}`, false, "$.rate was 0.5 before, 0.02 after: want <= 0.01"},
		{drover.InvariantRule{Path: "$.rate", Op: "lte", Value: f(0.01)}, `{"rate":0.5}`, `{"rate":0.001}`, true, ""},
		{drover.InvariantRule{Path: "$.n", Op: "gte"}, `{"n":5}`, `{"n":"5"}`, false, "(the value after is a string, not a number)"},
		{drover.InvariantRule{Path: "$.n", Op: "gte"}, `{"n":5}`, `{"m":5}`, false, `$.n was 5 before, and now: no key "n" in $ (keys: m)`},
		{drover.InvariantRule{Path: "$.n", Op: "gte"}, `{"n":5}`, `{"n":null}`, false, "(the value after is null, not a number)"},
	} {
		msg, ok := evalRule(tc.rule, doc(tc.before), doc(tc.after))
		if ok != tc.ok || !strings.Contains(msg, tc.msg) {
			t.Errorf("%+v %s -> %s: got (%q, %v), want (%q, %v)", tc.rule, tc.before, tc.after, msg, ok, tc.msg, tc.ok)
		}
	}
}
