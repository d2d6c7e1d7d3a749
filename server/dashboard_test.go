package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The dashboard's files: the right type, revalidated with an ETag, the
// page locked to its own origin; anything else is not there. The page in a
// browser is tested end to end in cmd/drover (TestE2EDashboard).
func TestDashboardServesFiles(t *testing.T) {
	h := Dashboard()
	for _, tc := range []struct {
		path, ctype, body string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/ui/app.js">`},
		{"/ui/", "text/html; charset=utf-8", `<link rel="stylesheet" href="/ui/app.css">`},
		{"/index.html", "text/html; charset=utf-8", "<title>drover</title>"},
		{"/ui/app.js", "text/javascript; charset=utf-8", "new EventSource("},
		{"/ui/app.css", "text/css; charset=utf-8", ".tile"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		res := rec.Result()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", tc.path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", tc.path, got)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", tc.path)
		}
		if !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.body)
		}
		if tc.ctype == "text/html; charset=utf-8" {
			csp := res.Header.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("GET %s: Content-Security-Policy %q lacks %q", tc.path, csp, want)
				}
			}
		}

		// The same file again, revalidated: 304 and no body.
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.path)
			continue
		}
		req := httptest.NewRequest("GET", tc.path, nil)
		req.Header.Set("If-None-Match", etag)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("GET %s If-None-Match %s: %d with %d bytes, want 304 and none", tc.path, etag, rec.Code, rec.Body.Len())
		}
	}
}

func TestDashboardRefusesTheRest(t *testing.T) {
	h := Dashboard()
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/ui/missing.js", http.StatusNotFound},
		{"GET", "/web/app.js", http.StatusNotFound},
		{"GET", "/ui/../web/index.html", http.StatusNotFound},
		{"GET", "/favicon.ico", http.StatusNotFound},
		{"POST", "/", http.StatusMethodNotAllowed},
		{"DELETE", "/ui/app.js", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.code)
		}
	}
}

// The server's "/" serves the dashboard (server.go's dashboard, set by
// dashboard.go's init).
func TestDashboardMounted(t *testing.T) {
	if dashboard == nil {
		t.Fatal("the server has no dashboard: dashboard.go's init did not set it")
	}
}
