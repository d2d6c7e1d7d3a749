package hello

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStatsCountsOnlyUserRequests: /stats counts requests to / and not the
// checks' /version and /health.
func TestStatsCountsOnlyUserRequests(t *testing.T) {
	h := Handler(Config{Version: "1.2.3", Message: "hi", Health: HealthOK})
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	var st Stats
	if err := json.Unmarshal(get("/stats").Body.Bytes(), &st); err != nil || st.Requests != 0 || !st.First.IsZero() || st.Version != "1.2.3" {
		t.Fatalf("fresh stats %+v, %v", st, err)
	}
	for range 3 {
		get("/")
	}
	get("/version")
	get("/health")
	rec := get("/stats")
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Requests != 3 || st.First.IsZero() || st.Last.Before(st.First) || st.PID == 0 {
		t.Errorf("stats %+v, want 3 requests with times", st)
	}
	c := &requestCounter{}
	if s := c.summary(); s != "served 0 requests to /" {
		t.Errorf("summary %q", s)
	}
}
