package server

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A change sent to a replica before any leader is known is answered 503
// and never reaches a leader; the client sends it again, whole (the
// bundle rewound), once a leader is there, and says so.
func TestClientSendsAgainWhatNoLeaderReceived(t *testing.T) {
	e := newEnv(t, 2, "")
	var (
		mu  sync.Mutex
		got []string // sha256 of each body the leader received
	)
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(b)
		mu.Lock()
		got = append(got, string(sum[:]))
		mu.Unlock()
		writeJSON(w, http.StatusAccepted, Started{ID: "d-from-leader", Key: "hello"})
	}))
	defer leader.Close()
	rep := NewReplica(e.srv, ReplicaConfig{})
	rep.self = "http://127.0.0.1:1" // no candidacy yet: rep.el is nil
	var answered atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep.Handler().ServeHTTP(w, r)
		if answered.Add(1) == 1 {
			// The election settles after the first answer.
			rep.mu.Lock()
			rep.el = &fakeElector{leader: leader.URL}
			rep.mu.Unlock()
		}
	}))
	defer ts.Close()

	bundle := filepath.Join(t.TempDir(), "b.tar.gz")
	payload := strings.Repeat("drover bundle bytes ", 64<<10) // 1.25 MB: more than one write
	if err := os.WriteFile(bundle, []byte(payload), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := NewClient(ts.URL, e.tokens["dep"], nil)
	var notes []string
	c.Notify = func(m string) { notes = append(notes, m) }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := c.DeployBundle(ctx, "hello", bundle, DeployRequest{})
	if err != nil || st.ID != "d-from-leader" {
		t.Fatalf("deploy through a replica that had no leader yet: %+v, %v (notes %q)", st, err, notes)
	}
	want := sha256.Sum256([]byte(payload))
	if len(got) != 1 || got[0] != string(want[:]) {
		t.Fatalf("the leader received %d bodies, want the whole bundle once", len(got))
	}
	if n := answered.Load(); n != 2 {
		t.Errorf("the replica answered %d requests, want 2 (one 503, one forwarded)", n)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "no replica leads yet") || !strings.Contains(notes[0], "sending it again in 2s") {
		t.Errorf("notes %q, want one saying why and when it sends again", notes)
	}

	// With retries off the first 503 is the answer.
	rep.mu.Lock()
	rep.el = nil
	rep.mu.Unlock()
	answered.Store(1) // the election does not settle again
	c.RetryFor = -1
	if _, err := c.Rollback(ctx, "hello", RollbackRequest{}); err == nil || !strings.Contains(err.Error(), "no replica leads yet") {
		t.Fatalf("with RetryFor < 0: %v, want the replica's 503", err)
	}
}

// A 503 after the request was handed to a leader that did not answer is
// not sent again: the leader may have started the deploy.
func TestClientDoesNotResendWhatALeaderMayHaveReceived(t *testing.T) {
	e := newEnv(t, 2, "")
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // a loopback leader that refuses connections
	rep := NewReplica(e.srv, ReplicaConfig{})
	rep.el, rep.self = &fakeElector{leader: gone.URL}, "http://127.0.0.1:1"
	var answered atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answered.Add(1)
		rep.Handler().ServeHTTP(w, r)
		if h := w.Header().Get(HeaderNotForwarded); h != "" {
			t.Errorf("%s: %q on an answer from a leader that did not answer", HeaderNotForwarded, h)
		}
	}))
	defer ts.Close()
	c, _ := NewClient(ts.URL, e.tokens["dep"], nil)
	c.Notify = func(m string) { t.Errorf("retried: %s", m) }
	_, err := c.Rollback(context.Background(), "hello", RollbackRequest{})
	if err == nil || !strings.Contains(err.Error(), "the leader did not answer") {
		t.Fatalf("rollback through a replica whose leader is gone: %v", err)
	}
	if n := answered.Load(); n != 1 {
		t.Fatalf("the replica got %d requests, want 1", n)
	}
}
