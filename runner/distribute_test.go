package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"drover"
	"drover/distribute/relay"
	"drover/hostops"
	"drover/rollout"
	"drover/transport/local"
)

// relaySpec is n hosts that are directories (transport local, the real
// host operations and real HTTP relays on 127.0.0.1), relayed by a tree
// of one seed and fanout 2: h01 feeds h02 and h03, h02 feeds h04 and h05,
// h03 feeds h06 and h07.
func relaySpec(t *testing.T, n int) *drover.Spec {
	s := testSpec(n)
	s.Transport = "local"
	s.Hooks = drover.Hooks{}
	s.Checks = nil
	s.Distribution = drover.Distribution{Mode: drover.DistributionRelay, Seeds: 1, Fanout: 2}
	dir := t.TempDir()
	for i := range s.Hosts {
		s.Hosts[i].Address = filepath.Join(dir, s.Hosts[i].Name)
		if err := os.MkdirAll(s.Hosts[i].Address, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// faultyRelays wraps transport local: hosts in corrupt serve a damaged
// copy of the bundle (from a relay of the test's own over a damaged
// copy), hosts in damaged find their copy damaged when they are about to
// stage it (once), hosts in down cannot fetch at all. A host in
// fetchVia receives the bundle through that function instead.
type faultyRelays struct {
	drover.Transport
	corrupt, damaged, down map[string]bool
	fetchVia               map[string]func(ctx context.Context, root string, rel *drover.Release) error
	tt                     *testing.T
	mu                     sync.Mutex
	urls                   []string
}

func damage(t *testing.T, h drover.Host, rel *drover.Release) {
	p := relay.Path(local.DeployRoot(h), rel.BundleSHA256)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Error(err)
		return
	}
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o600)
}

type faultyConn struct {
	drover.HostConn
	f    drover.Fetcher
	t    *faultyRelays
	host drover.Host
	tt   *testing.T
}

func (t *faultyRelays) Open(ctx context.Context, h drover.Host) (drover.HostConn, error) {
	c, err := t.Transport.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	return &faultyConn{HostConn: c, f: c.(drover.Fetcher), t: t, host: h, tt: t.tt}, nil
}

func (c *faultyConn) Fetch(ctx context.Context, req drover.FetchRequest) error {
	if c.t.down[c.host.Name] {
		return drover.Errorf(drover.EFAILED, "disk full").At("host " + c.host.Name)
	}
	if via := c.t.fetchVia[c.host.Name]; via != nil {
		return via(ctx, local.DeployRoot(c.host), req.Release)
	}
	return c.f.Fetch(ctx, req)
}

func (c *faultyConn) StageFetched(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	c.t.mu.Lock()
	once := c.t.damaged[c.host.Name]
	delete(c.t.damaged, c.host.Name)
	c.t.mu.Unlock()
	if once {
		damage(c.tt, c.host, req.Release)
	}
	return c.f.StageFetched(ctx, req)
}

func (c *faultyConn) Relay(ctx context.Context, req drover.RelayRequest) (drover.RelayServer, error) {
	var srv drover.RelayServer
	var err error
	if c.t.corrupt[c.host.Name] {
		srv, err = corruptRelay(c.tt, ctx, req)
	} else {
		srv, err = c.f.Relay(ctx, req)
	}
	if err == nil {
		c.t.mu.Lock()
		c.t.urls = append(c.t.urls, srv.URL())
		c.t.mu.Unlock()
	}
	return srv, err
}

// corruptRelay is a real relay serving a damaged copy of req's bundle.
func corruptRelay(t *testing.T, ctx context.Context, req drover.RelayRequest) (drover.RelayServer, error) {
	b, err := os.ReadFile(req.Release.BundlePath)
	if err != nil {
		return nil, err
	}
	b[len(b)/2] ^= 0xff
	root := t.TempDir()
	p := relay.Path(root, req.Release.BundleSHA256)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, err
	}
	ln, err := relay.Listen("127.0.0.1", 0, 0)
	if err != nil {
		return nil, err
	}
	return relay.Serve(ctx, ln, root, req.Release.BundleSHA256, req.Release.BundleSize, req.Token, req.Timeout)
}

func relayEnv(t *testing.T, n int, corrupt, damaged, down []string) (*env, *faultyRelays) {
	e := newEnv(t, relaySpec(t, n))
	ft := &faultyRelays{Transport: &local.Transport{}, corrupt: map[string]bool{}, damaged: map[string]bool{}, down: map[string]bool{},
		fetchVia: map[string]func(context.Context, string, *drover.Release) error{}, tt: t}
	for _, h := range corrupt {
		ft.corrupt[h] = true
	}
	for _, h := range damaged {
		ft.damaged[h] = true
	}
	for _, h := range down {
		ft.down[h] = true
	}
	e.r.Transport = ft
	e.r.Sleep = nil
	return e, ft
}

func notices(e *env) []string {
	var out []string
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventNotice {
			out = append(out, ev.Host+": "+ev.Message)
		}
	}
	return out
}

// stagedOK asserts host staged rel from a bundle that verified: its slot
// holds rel's manifest and files, and no half-made staging directory or
// unverified download is left.
func stagedOK(t *testing.T, h drover.Host, rel *drover.Release) {
	t.Helper()
	root := local.DeployRoot(h)
	b, err := os.ReadFile(filepath.Join(root, hostops.ReleasesDir, rel.ID(), drover.ManifestName))
	if err != nil || !strings.Contains(string(b), rel.Manifest.ContentHash) {
		t.Errorf("%s: release %s not staged intact: %v", h.Name, rel.ID(), err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, hostops.ReleasesDir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("%s: leftover %s in releases/", h.Name, e.Name())
		}
	}
	ents, _ = os.ReadDir(filepath.Join(root, relay.Dir))
	for _, e := range ents {
		if e.Name() != rel.BundleSHA256+".tar.gz" {
			t.Errorf("%s: unexpected %s in the bundle cache", h.Name, e.Name())
		}
	}
}

func TestRelayDeploy_Tree(t *testing.T) {
	e, ft := relayEnv(t, 7, nil, nil, nil)
	rel := mkRelease(t, "1.0.0")
	e.mustDeploy(rel, "")
	for _, h := range e.spec.Hosts {
		stagedOK(t, h, rel)
	}
	joined := strings.Join(notices(e), "\n")
	for _, want := range []string{
		"relay distribution: 7 hosts in a tree 3 deep: 1 seeds from this machine, each host serving up to 2",
		"relay distribution: 6 hosts got the bundle from other hosts, 1 from this machine",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("notices lack %q:\n%s", want, joined)
		}
	}
	// h01, h02, h03 had hosts below them and relayed; leaves did not.
	if len(ft.urls) != 3 {
		t.Errorf("%d relays started, want 3: %v", len(ft.urls), ft.urls)
	}
	assertRelaysGone(t, ft)
	// A second deploy of the same release: every host is skipped, no relay.
	out := e.mustDeploy(rel, "")
	if out.Verdict != rollout.Succeeded || len(ft.urls) != 3 {
		t.Errorf("redeploy: %s, %d relays", out.Summary, len(ft.urls))
	}
}

// TestRelayDeploy_CorruptRelay: h02 serves a damaged bundle. h04 and h05,
// below it, find the checksum wrong (or, once h02 is known bad, its relay
// stopped), keep nothing, and fetch from h01, the next source up. Every
// host ends on the release, and nothing unverified is staged anywhere.
func TestRelayDeploy_CorruptRelay(t *testing.T) {
	e, ft := relayEnv(t, 7, []string{"h02"}, nil, nil)
	rel := mkRelease(t, "1.0.0")
	e.mustDeploy(rel, "")
	for _, h := range e.spec.Hosts {
		stagedOK(t, h, rel)
	}
	joined := strings.Join(notices(e), "\n")
	for _, h := range []string{"h04", "h05"} {
		a := h + ": fetching the bundle from h02 failed, fetching it from h01: "
		b := h + ": h02 has no bundle to relay, fetching it from h01"
		if !strings.Contains(joined, a) && !strings.Contains(joined, b) {
			t.Errorf("notices lack %q:\n%s", a, joined)
		}
	}
	for _, want := range []string{
		"bundle from relay 127.0.0.1:", "has sha256", "not kept",
		"6 hosts got the bundle from other hosts, 1 from this machine, 2 after their first source failed",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("notices lack %q:\n%s", want, joined)
		}
	}
	assertRelaysGone(t, ft)
}

// TestRelayDeploy_DamagedCopy: h02's copy is damaged between fetching and
// staging. It checks the copy before unpacking, removes it, fetches it
// again from h01 and stages; nothing damaged is unpacked.
func TestRelayDeploy_DamagedCopy(t *testing.T) {
	e, ft := relayEnv(t, 7, nil, []string{"h02"}, nil)
	rel := mkRelease(t, "1.0.0")
	e.mustDeploy(rel, "")
	for _, h := range e.spec.Hosts {
		stagedOK(t, h, rel)
	}
	joined := strings.Join(notices(e), "\n")
	for _, want := range []string{
		"h02: fetching the bundle again: host h02: cached bundle", "no longer matches its sha256; removed",
		// h04 and h05 may have been reading h02's copy as it was damaged
		// (its relay passes on what it holds): they then refuse it and
		// fetch from h01.
		"6 hosts got the bundle from other hosts, 1 from this machine",
	} {
		if !strings.Contains(joined+"\n", want) {
			t.Errorf("notices lack %q:\n%s", want, joined)
		}
	}
	assertRelaysGone(t, ft)
}

// TestRelayDeploy_SourceDown: h03 cannot get the bundle and fails; h06 and
// h07, below it, fetch from h01 instead and deploy.
func TestRelayDeploy_SourceDown(t *testing.T) {
	e, ft := relayEnv(t, 7, nil, nil, []string{"h03"})
	e.spec.StageRetries = 0
	rel := mkRelease(t, "1.0.0")
	out := e.deploy(context.Background(), DeployOptions{Release: rel})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	for _, h := range e.spec.Hosts {
		if h.Name != "h03" {
			stagedOK(t, h, rel)
		}
	}
	joined := strings.Join(notices(e), "\n")
	if !strings.Contains(joined, "5 hosts got the bundle from other hosts, 1 from this machine, 2 after their first source failed, 1 did not get it") {
		t.Errorf("summary:\n%s", joined)
	}
	for _, h := range []string{"h06", "h07"} {
		// h03's relay is up while it fetches; a child that started on it
		// is cut off when h03's fetch fails.
		a := h + ": h03 has no bundle to relay, fetching it from h01"
		b := h + ": fetching the bundle from h03 failed, fetching it from h01: "
		if !strings.Contains(joined, a) && !strings.Contains(joined, b) {
			t.Errorf("notices lack %q:\n%s", a, joined)
		}
	}
	assertRelaysGone(t, ft)
}

// halfThenWait feeds a host's receive the first half of rel's bundle,
// then waits (at most 10s) until the host below it, under childRoot, has
// received that half too — which it can only do if the relay passes the
// bundle on as it arrives — and then ends with end: nil for the rest of
// the bundle, or an error (the source died mid-stream). It reports
// whether the child got there.
func halfThenWait(t *testing.T, childRoot string, end error, reached *bool) func(context.Context, string, *drover.Release) error {
	return func(ctx context.Context, root string, rel *drover.Release) error {
		b, err := os.ReadFile(rel.BundlePath)
		if err != nil {
			return err
		}
		half := int64(len(b) / 2)
		pr, pw := io.Pipe()
		go func() {
			pw.Write(b[:half])
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if fi, err := os.Stat(relay.PartPath(childRoot, rel.BundleSHA256)); err == nil && fi.Size() >= half {
					*reached = true
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if end != nil {
				pw.CloseWithError(end)
				return
			}
			pw.Write(b[half:])
			pw.Close()
		}()
		_, err = relay.Receive(ctx, root, pr, rel.BundleSHA256, rel.BundleSize, "the controller")
		pr.Close()
		return err
	}
}

// TestRelayDeploy_CutThrough: h02 relays the bundle to h04 and h05 as it
// receives it: h04 holds the first half before h02 has the second (store
// and forward would make h04 wait for h02's whole stage step).
func TestRelayDeploy_CutThrough(t *testing.T) {
	e, ft := relayEnv(t, 7, nil, nil, nil)
	var reached bool
	ft.fetchVia["h02"] = halfThenWait(t, local.DeployRoot(e.spec.Hosts[3]), nil, &reached)
	rel := mkRelease(t, "1.0.0")
	e.mustDeploy(rel, "")
	if !reached {
		t.Error("h04 received nothing from h02 until h02 had the whole bundle")
	}
	for _, h := range e.spec.Hosts {
		stagedOK(t, h, rel)
	}
	joined := strings.Join(notices(e), "\n")
	if want := "6 hosts got the bundle from other hosts, 1 from this machine\n"; !strings.Contains(joined+"\n", want) {
		t.Errorf("notices lack %q:\n%s", want, joined)
	}
	assertRelaysGone(t, ft)
}

// TestRelayDeploy_SourceFailsMidStream: h02's own fetch dies half-way,
// while h04 is receiving the same bytes from h02's relay. h04 and h05
// refuse what they got (cut short), fetch from h01 and deploy; h02 fails.
func TestRelayDeploy_SourceFailsMidStream(t *testing.T) {
	e, ft := relayEnv(t, 7, nil, nil, nil)
	e.spec.StageRetries = 0
	var reached bool
	ft.fetchVia["h02"] = halfThenWait(t, local.DeployRoot(e.spec.Hosts[3]), errors.New("connection reset by peer"), &reached)
	rel := mkRelease(t, "1.0.0")
	out := e.deploy(context.Background(), DeployOptions{Release: rel})
	if out.ExitCode != drover.ExitPartial {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	if !reached {
		t.Error("h04 received nothing from h02 before h02's fetch failed")
	}
	for _, h := range e.spec.Hosts {
		if h.Name != "h02" {
			stagedOK(t, h, rel)
		}
	}
	joined := strings.Join(notices(e), "\n")
	if want := "h04: fetching the bundle from h02 failed, fetching it from h01: "; !strings.Contains(joined, want) {
		t.Errorf("notices lack %q:\n%s", want, joined)
	}
	if want := "5 hosts got the bundle from other hosts, 1 from this machine, 2 after their first source failed, 1 did not get it"; !strings.Contains(joined, want) {
		t.Errorf("summary:\n%s", joined)
	}
	assertRelaysGone(t, ft)
}

// assertRelaysGone: once the deploy returned, no relay listens.
func assertRelaysGone(t *testing.T, ft *faultyRelays) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, u := range ft.urls {
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("relay %s still answers after the deploy (%s)", u, resp.Status)
		}
	}
}

func failReasons(e *env) map[string]string {
	out := map[string]string{}
	for _, ev := range e.events.all() {
		if ev.Kind == drover.EventStepDone && ev.Outcome != "" && ev.Outcome != string(rollout.OK) {
			out[ev.Host] += ev.Message
		}
	}
	return out
}

var _ = fmt.Sprint
