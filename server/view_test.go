package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/runner"
	"drover/runview"
)

// bareServer is a server of one service "hello" whose runner is never
// opened, and a viewer's token: enough to feed runs by hand.
func bareServer(t *testing.T) (*Server, string) {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	tok, err := CreateToken(tokens, "view", RoleViewer, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := &drover.Spec{Service: "hello", Hosts: []drover.Host{{Name: "h01"}}}
	s, err := New(Config{TokensFile: tokens, Services: []Service{{Spec: spec, Open: func(drover.EventSink) (*runner.Runner, func(), error) {
		return nil, nil, drover.Errorf(drover.EINTERNAL, "not in this test")
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background(), nil) })
	return s, tok
}

// feedRun publishes events as a run of the server's would, and returns
// the run.
func feedRun(s *Server, active bool, evs []drover.Event) *run {
	rn := &run{key: "hello", kind: drover.KindDeploy, running: active, begun: make(chan struct{}), done: make(chan struct{}),
		tracker: &hostTracker{m: s.metrics, service: "hello"}}
	s.runsMu.Lock()
	if active {
		s.active["hello"] = rn
	}
	s.runsMu.Unlock()
	for _, e := range evs {
		s.runsMu.Lock()
		if e.Kind == drover.EventDeployStart {
			rn.id = e.Deploy
			s.runs[rn.id] = rn
		}
		s.publishLocked(rn, e)
		s.runsMu.Unlock()
	}
	return rn
}

func runviewFixtures(t *testing.T) map[string][]drover.Event {
	t.Helper()
	files, _ := filepath.Glob("../runview/testdata/*.jsonl")
	if len(files) == 0 {
		t.Fatal("no run-view fixtures in ../runview/testdata")
	}
	out := map[string][]drover.Event{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := runview.DecodeEvents(b)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".jsonl")] = evs
	}
	return out
}

// The server folds a run's events with runview: the view it serves is the
// fixture's golden view, the one the terminal draws from.
func TestServerViewIsRunview(t *testing.T) {
	s, _ := bareServer(t)
	for name, evs := range runviewFixtures(t) {
		t.Run(name, func(t *testing.T) {
			feedRun(s, false, evs)
			id := runview.Fold(evs).Deploy
			got, ok := s.viewOf(id)
			if !ok {
				t.Fatalf("no view of %s", id)
			}
			want, err := os.ReadFile(filepath.Join("../runview/testdata", name+".view.json"))
			if err != nil {
				t.Fatal(err)
			}
			var a, b bytes.Buffer
			json.Indent(&a, got, "", "  ")
			json.Indent(&b, want, "", "  ")
			if strings.TrimSpace(a.String()) != strings.TrimSpace(b.String()) {
				t.Errorf("server's view of %s differs from runview's golden:\n%s", name, a.String())
			}
		})
	}
}

// GET /view streams the current run's view: null before any run, then
// views as the run goes, coalesced, the last one with the verdict.
func TestViewStream(t *testing.T) {
	s, tok := bareServer(t)
	old := viewInterval
	viewInterval = 50 * time.Millisecond
	t.Cleanup(func() { viewInterval = old })
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/view?service=hello&access_token="+url.QueryEscape(tok), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("view stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	views := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				views <- d
			}
		}
		close(views)
	}()
	if first := <-views; first != "null" {
		t.Fatalf("first view %q, want null before any run", first)
	}
	evs := runviewFixtures(t)["halt"]
	feedRun(s, true, evs)
	n := 0
	for d := range views {
		n++
		var v runview.View
		if err := json.Unmarshal([]byte(d), &v); err != nil {
			t.Fatalf("view %q: %v", d, err)
		}
		if v.Verdict != nil {
			if v.Verdict.Outcome != drover.OutcomeRolledBack || v.Groups[0].Hosts[0].State != runview.RolledBack {
				t.Errorf("final view %+v", v)
			}
			break
		}
	}
	if n == 0 || n >= len(evs) {
		t.Errorf("%d views for %d events, want some and fewer (coalesced)", n, len(evs))
	}
}
