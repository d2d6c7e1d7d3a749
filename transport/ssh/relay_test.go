package ssh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/distribute/relay"
)

// TestRelayOverSSH: two hosts on the in-process server. h01 receives the
// bundle from this machine (fetch with the bundle on stdin), serves it
// with relay-serve; h02 fetches it from h01's relay and stages it. A
// wrong token and a damaged copy are refused with nothing kept; closing
// the relay ends relay-serve on the host.
func TestRelayOverSSH(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t)
	tr := f.transport(f.config())
	h1, h2 := f.host("h01", f.srv), f.host("h02", f.srv)
	c1, c2 := open(t, tr, h1).(drover.Fetcher), open(t, tr, h2).(drover.Fetcher)
	r := buildRelease(t, "1.0.0")

	if err := c1.Fetch(ctx, drover.FetchRequest{Release: r}); err != nil {
		t.Fatalf("fetch from the controller: %v", err)
	}
	cached := relay.Path(h1.DeployRoot, r.BundleSHA256)
	if _, err := os.Stat(cached); err != nil {
		t.Fatal(err)
	}
	token := relay.NewToken()
	srv, err := c1.Relay(ctx, drover.RelayRequest{Release: r, Token: token, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("relay URL %s: not on the host's address", srv.URL())
	}

	err = c2.Fetch(ctx, drover.FetchRequest{Release: r, From: srv.URL(), Token: relay.NewToken()})
	if de := wantCode(t, err, drover.EFAILED); !strings.Contains(de.Error(), "401") || strings.Contains(de.Error(), token) {
		t.Fatalf("wrong token: %v", de)
	}
	if err := c2.Fetch(ctx, drover.FetchRequest{Release: r, From: srv.URL(), Token: relay.ChildToken(token, "h02")}); err != nil {
		t.Fatalf("fetch from h01: %v", err)
	}
	data := drover.NewTemplateData(&drover.Spec{Service: "hello"}, h2, r.ID(), r.Version())
	h2data := data
	h2data.Host.Vars = map[string]any{"port": uint64(1), "big": uint64(2), "neg": int64(-3)}
	res, err := c2.StageFetched(ctx, drover.StageRequest{Release: r, Data: h2data})
	if err != nil || res.Slot != r.ID() {
		t.Fatalf("stage-fetched: %+v %v", res, err)
	}

	// h01's copy damaged: h03 refuses it and keeps nothing.
	b, _ := os.ReadFile(cached)
	b[len(b)/2] ^= 1
	os.WriteFile(cached, b, 0o600)
	h3 := f.host("h03", f.srv)
	c3 := open(t, tr, h3).(drover.Fetcher)
	err = c3.Fetch(ctx, drover.FetchRequest{Release: r, From: srv.URL(), Token: relay.ChildToken(token, "h03")})
	if de := wantCode(t, err, drover.EINVALID); !strings.Contains(de.Error(), "has sha256") {
		t.Fatalf("damaged relay: %v", de)
	}
	if ents, _ := os.ReadDir(filepath.Join(h3.DeployRoot, relay.Dir)); len(ents) != 0 {
		t.Fatalf("h03 kept %v", ents)
	}
	// And h01 does not stage its damaged copy: it is removed, ENOTFOUND.
	_, err = c1.StageFetched(ctx, drover.StageRequest{Release: r, Data: h2data})
	wantCode(t, err, drover.ENOTFOUND)

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c3.Fetch(ctx, drover.FetchRequest{Release: r, From: srv.URL(), Token: relay.ChildToken(token, "h04")}); drover.ErrorCode(err) != drover.EUNREACHABLE {
		t.Fatalf("after Close the relay still answers: %v", err)
	}
	for _, cmd := range f.srv.Commands() {
		if strings.Contains(cmd, token) {
			t.Fatalf("the token is on a command line: %s", cmd)
		}
	}
}
