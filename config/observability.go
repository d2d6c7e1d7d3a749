package config

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"drover"
	"drover/notify"
)

// checkObservability validates the keys that say where a deploy's record
// goes — store, log, ask_message, webhooks — and sets them, with defaults
// applied, on s or on the file's adapters.
func (f *File) checkObservability(ps *problems, s *drover.Spec) {
	f.checkStore(ps, s) // store.go

	f.adapters.Log = notify.LogConfig{Format: "json"}
	switch f.Log.Format {
	case "":
	case "json", "text":
		f.adapters.Log.Format = f.Log.Format
	default:
		ps.add(p("log", "format"), `use "json" (one object per line, for log shippers) or "text"`, "log.format: %q is not a log format", f.Log.Format)
	}
	switch f.Log.File {
	case "", "-":
		f.adapters.Log.File = f.Log.File
	default:
		f.adapters.Log.File = f.fromConfigDir(f.homePath(ps, p("log", "file"), f.Log.File))
	}

	s.AskMessage = true
	if f.AskMessage != nil {
		s.AskMessage = *f.AskMessage
	}

	names := make([]string, 0, len(notify.Events))
	for n := range notify.Events {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, w := range f.Webhooks {
		at := p("webhooks", i)
		hook := notify.Webhook{URL: w.URL, Headers: w.Headers, Secret: w.Secret}
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "":
			ps.add(at, "add url: https://hooks.example.com/drover", "webhooks[%d].url: required", i)
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			// The URL is not echoed: it may carry a token.
			ps.add(at.with("url"), "write an absolute http:// or https:// URL", "webhooks[%d].url is not an absolute http(s) URL", i)
		case u.User != nil:
			ps.add(at.with("url"), "put credentials in headers (e.g. Authorization: \"Bearer ${HOOK_TOKEN}\"), not in the URL, so they never appear in logs",
				"webhooks[%d].url holds a user name or password", i)
		}
		seen := map[string]bool{}
		for j, e := range w.Events {
			if _, ok := notify.Events[e]; !ok {
				ps.add(at.with("events", j), "use "+strings.Join(names, ", ")+"; leave events out for all of them",
					"webhooks[%d].events[%d]: %q is not a webhook event", i, j, e)
				continue
			}
			if !seen[e] {
				hook.Events = append(hook.Events, e)
			}
			seen[e] = true
		}
		hook.Timeout = f.duration(ps, at.with("timeout"), w.Timeout, notify.DefaultTimeout)
		for k := range w.Headers {
			if !validHeaderName(k) {
				ps.add(at.with("headers"), "use a header name of letters, digits and '-'", "webhooks[%d].headers: %q is not an HTTP header name", i, k)
			}
			if ck := http.CanonicalHeaderKey(k); ck == "Content-Type" || ck == "Idempotency-Key" || ck == "Content-Length" || ck == notifySignatureHeader {
				ps.add(at.with("headers"), "leave "+ck+" to drover", "webhooks[%d].headers: %s is set by drover", i, ck)
			}
		}
		f.adapters.Webhooks = append(f.adapters.Webhooks, hook)
	}
}

// notifySignatureHeader is the header notify signs bodies in (secret:);
// a configured header of that name would forge or clobber the signature.
const notifySignatureHeader = "X-Hub-Signature-256"

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
