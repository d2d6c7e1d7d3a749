package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover"
)

// The tokens file holds hashes only, is created private, and a file
// others may read or write is refused.
func TestTokensFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	tok, err := CreateToken(path, "alice", RoleDeployer, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "drover_") || len(tok) != len("drover_")+64 {
		t.Errorf("token %q", tok)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), tok) || strings.Contains(string(b), strings.TrimPrefix(tok, "drover_")) {
		t.Error("the tokens file holds the token itself")
	}
	if !strings.Contains(string(b), HashToken(tok)) {
		t.Error("the tokens file lacks the token's hash")
	}
	if _, err := CreateToken(path, "alice", RoleViewer, nil); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := CreateToken(path, "bob", "root", nil); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("bad role: %v", err)
	}
	ts, err := newTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ts.authenticate(tok)
	if err != nil || p.Name != "alice" || p.Role != RoleDeployer || p.User() != "token:alice" {
		t.Fatalf("authenticate: %+v, %v", p, err)
	}
	if !p.can(RoleDeployer, "hello/staging") || p.can(RoleDeployer, "other") || p.can(RoleAdmin, "hello") {
		t.Error("scope or role checks wrong")
	}
	if _, err := ts.authenticate(tok[:len(tok)-1]); drover.ErrorCode(err) != drover.EUNAUTHORIZED {
		t.Errorf("wrong token: %v", err)
	}
	// A token created while the server runs works at once.
	tok2, err := CreateToken(path, "carol", RoleAdmin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ts.authenticate(tok2); err != nil || p.Name != "carol" || !p.can(RoleAdmin, "anything") {
		t.Errorf("new token: %+v, %v", p, err)
	}

	for _, mode := range []os.FileMode{0o644, 0o604, 0o620} {
		os.Chmod(path, mode)
		if _, err := ReadTokens(path); drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(drover.ErrorHint(err), "chmod 600") {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	os.Chmod(path, 0o600)

	// YAML, a bare list, strict.
	y := filepath.Join(t.TempDir(), "tokens.yaml")
	os.WriteFile(y, []byte("- name: ci\n  role: viewer\n  sha256: "+HashToken("x")+"\n"), 0o600)
	if list, err := ReadTokens(y); err != nil || len(list) != 1 || list[0].Name != "ci" {
		t.Errorf("yaml list: %+v, %v", list, err)
	}
	os.WriteFile(y, []byte("tokens:\n  - name: ci\n    role: viewer\n    sha: "+HashToken("x")+"\n"), 0o600)
	if _, err := ReadTokens(y); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := ReadTokens(filepath.Join(t.TempDir(), "none")); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("missing file: %v", err)
	}
	if _, err := New(Config{TokensFile: ""}); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("no tokens file: %v", err)
	}
}

// A subscriber that does not read is dropped once its buffer is full;
// publishing never waits for it, and others still get every event.
func TestBrokerDropsSlowSubscriber(t *testing.T) {
	b := newBroker()
	rn := &run{id: "d-1"}
	slow := b.subscribe(filter{})
	other := b.subscribe(filter{service: "other"})
	fast := b.subscribe(filter{service: "hello"})
	// The fast subscriber reads each round before the next is
	// published: on a loaded machine a reader left to race the publisher
	// falls a buffer behind and is rightly dropped (then nothing ends
	// the test).
	for round := 0; round < 3; round++ {
		for i := 0; i < subscriberBuffer; i++ {
			b.publish(&streamEvent{r: rn, service: "hello", data: eventData("hello", drover.Event{Kind: "notice"})})
		}
		for i := 0; i < subscriberBuffer; i++ {
			select {
			case <-fast.ch:
			case <-fast.dropped:
				t.Fatal("a subscriber that kept up was dropped")
			}
		}
	}
	select {
	case <-slow.dropped:
	default:
		t.Error("the slow subscriber was not dropped")
	}
	if len(other.ch) != 0 {
		t.Error("a filtered subscriber got another service's events")
	}
	if b.count() != 2 {
		t.Errorf("%d subscribers left, want 2", b.count())
	}
}

// The stream's data is the event's JSON with the service added.
func TestEventData(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal(eventData("hello/staging", drover.Event{Kind: "verdict", Outcome: "succeeded", Deploy: "d-1"}), &m); err != nil {
		t.Fatal(err)
	}
	if m["service"] != "hello/staging" || m["kind"] != "verdict" || m["outcome"] != "succeeded" || m["deploy"] != "d-1" {
		t.Errorf("data = %v", m)
	}
}

// Error codes map once to HTTP statuses and back.
func TestErrorMapping(t *testing.T) {
	for code, status := range map[string]int{drover.EINVALID: 400, drover.EUNAUTHORIZED: 401, drover.EFORBIDDEN: 403, drover.ENOTFOUND: 404,
		drover.ELOCKED: 409, drover.EINTERNAL: 500, drover.EFAILED: 502, drover.EUNREACHABLE: 502, drover.ETIMEOUT: 504} {
		if drover.HTTPStatus(code) != status {
			t.Errorf("%s -> %d, want %d", code, drover.HTTPStatus(code), status)
		}
		e := FromErrorJSON(toError(drover.Errorf(code, "x").At("f:1").WithHint("h")))
		if e.Code != code || e.Where != "f:1" || e.Hint != "h" || e.Message != "x" {
			t.Errorf("round trip of %s: %+v", code, e)
		}
	}
}
