package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"drover"
	"drover/notify"
)

// verify is the receiver's side of the signature, exactly as the README
// shows it: five lines a receiver copies.
func verify(secret, body []byte, header string) bool {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(header), []byte(want))
}

// With secret: every body carries X-Hub-Signature-256, which the README's
// verification accepts, and which fails for a changed body or another
// secret; the secret never appears in the request otherwise. A header
// named like the signature cannot be configured (config tests).
func TestWebhookSignsBodies(t *testing.T) {
	var got, bad atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get("X-Hub-Signature-256")
		switch {
		case !verify([]byte("hook-secret-1"), body, sig):
			bad.Add(1)
		case verify([]byte("hook-secret-2"), body, sig), verify([]byte("hook-secret-1"), append(body, ' '), sig):
			bad.Add(1)
		case strings.Contains(string(body), "hook-secret-1"):
			bad.Add(1)
		default:
			got.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	w, err := notify.New([]notify.Webhook{{URL: srv.URL, Secret: "${HOOK_SECRET}"}}, notify.Options{Sleep: noSleep,
		LookupEnv: func(k string) (string, bool) { return "hook-secret-1", k == "HOOK_SECRET" }})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events() {
		w.Emit(e)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got.Load() != 4 || bad.Load() != 0 {
		t.Errorf("%d bodies verified, %d did not; want 4 and 0", got.Load(), bad.Load())
	}
	if s := notify.Sign([]byte("k"), []byte("body")); !verify([]byte("k"), []byte("body"), s) {
		t.Errorf("Sign = %s does not verify", s)
	}

	// A secret naming an unset variable, or expanding to nothing, is an
	// error at start, not an unsigned stream of posts.
	for _, env := range []map[string]string{{}, {"HOOK_SECRET": ""}} {
		_, err := notify.New([]notify.Webhook{{URL: srv.URL, Secret: "${HOOK_SECRET}"}}, notify.Options{
			LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
		if drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), "webhooks[0].secret") {
			t.Errorf("secret from %v: %v", env, err)
		}
	}
}

// A hook that answers with a redirect is not followed: the Authorization
// header would go to wherever it points. The delivery fails at once (no
// retry), is reported, and the redirect's target receives nothing.
func TestWebhookRefusesRedirects(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer thief.Close()
	var asked atomic.Int32
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Redirect(w, r, thief.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	defer hookSrv.Close()
	var reported []string
	w, err := notify.New([]notify.Webhook{{URL: hookSrv.URL, Events: []string{"start"}, Headers: map[string]string{"Authorization": "Bearer tok"}}},
		notify.Options{Sleep: noSleep, Client: &http.Client{}, OnError: func(_ string, err error) { reported = append(reported, err.Error()) }})
	if err != nil {
		t.Fatal(err)
	}
	w.Emit(events()[0])
	if err := w.Close(context.Background()); err == nil {
		t.Error("a redirected delivery counted as delivered")
	}
	if stolen.Load() != 0 {
		t.Errorf("the redirect target received %d requests", stolen.Load())
	}
	if asked.Load() != 1 {
		t.Errorf("the hook was asked %d times, want once (a redirect is not retried)", asked.Load())
	}
	if len(reported) != 1 || !strings.Contains(reported[0], "redirect") {
		t.Errorf("reported %q, want the redirect named", reported)
	}
}
