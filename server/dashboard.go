package server

// This file serves the web dashboard: three static files (web/index.html,
// web/app.js, web/app.css) compiled into the binary, so `drover server`
// needs no separate build step, no CDN and nothing fetched at run time.
// The page asks for a token once and then uses the API (/api/v1) like any
// other client; this handler itself needs no auth, because the files hold
// no data.

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed web
var webFS embed.FS

// dashboardCSP lets the page load only its own files and talk only to its
// own server: a value from the API that slipped into the page as markup
// still could not run a script or send the token elsewhere.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// init mounts the dashboard on the server's "/" (server.go's dashboard).
func init() { dashboard = Dashboard() }

type webFile struct {
	body        []byte
	contentType string
	etag        string
}

// Dashboard returns the handler of the web dashboard, to mount at "/" and
// "/ui/": "/" (and "/ui/") is the page, "/ui/<file>" its script and style.
// Every answer is revalidated (Cache-Control: no-cache with an ETag of the
// content), so a new binary's dashboard is picked up at the next load and
// an unchanged one costs a 304.
func Dashboard() http.Handler {
	files := map[string]webFile{}
	for name, ct := range map[string]string{
		"index.html": "text/html; charset=utf-8",
		"app.js":     "text/javascript; charset=utf-8",
		"app.css":    "text/css; charset=utf-8",
	} {
		b, err := fs.ReadFile(webFS, "web/"+name)
		if err != nil {
			// The files are compiled in; a missing one is a broken build.
			panic("server: dashboard file missing from the binary: " + name)
		}
		sum := sha256.Sum256(b)
		files[name] = webFile{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := dashboardFile(r.URL.Path)
		f, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if name == "index.html" {
			h.Set("Content-Security-Policy", dashboardCSP)
			h.Set("X-Frame-Options", "DENY")
		}
		// ServeContent answers If-None-Match with 304 and HEAD without a body.
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}

// dashboardFile maps a request path to one of the dashboard's files, or ""
// for none.
func dashboardFile(p string) string {
	p = path.Clean("/" + p)
	switch {
	case p == "/", p == "/ui", p == "/index.html", p == "/ui/index.html":
		return "index.html"
	case strings.HasPrefix(p, "/ui/"):
		name := strings.TrimPrefix(p, "/ui/")
		if name == "app.js" || name == "app.css" {
			return name
		}
	}
	return ""
}
