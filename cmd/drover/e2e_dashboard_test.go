package main

// The dashboard end to end: the real `drover server` serving a real local
// fleet, and Debian's headless Chromium driven with chromedp looking at
// the page a person would. A deploy waits at the canary's approval gate;
// the deployer approves it with the button and the tiles turn green; a
// release that fails its health check on one host is rolled back and the
// page shows the rolled back tiles, the failing check's output and the
// verdict; a viewer sees no approve button and the API refuses their
// approval.
//
// DROVER_SCREENSHOT=PATH saves a picture of the rolled back deploy (a
// relative PATH is from cmd/drover: ../../docs/dashboard.png refreshes the
// README's), so an ordinary run never rewrites the tracked file.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"drover/internal/localfleet"
)

// dashChromium is Debian's chromium package.
const dashChromium = "/usr/bin/chromium"

// dashboardGroups: the canary waits for a person, then the rest one at a
// time with no failure allowed, so one failing host rolls everything back.
const dashboardGroups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
    approve: manual
    approve_timeout: 2m
  - name: default
    hosts: ["h*"]
    batch: 1
    failure_limit: 0
`

// dashBrowser starts headless Chromium with a fresh profile and none of
// its background traffic (updates, sync, QUIC), and returns a tab's
// context; everything stops at cleanup. JavaScript exceptions and
// Content-Security-Policy refusals on the page fail the test.
func dashBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(dashChromium); err != nil {
		t.Fatalf("the dashboard test needs headless Chromium at %s: install Debian's package chromium (scripts/deps.sh does): %v", dashChromium, err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(dashChromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	// The first action starts the browser, bound to ctx (no timeout here:
	// each step below has its own).
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("starting %s: %v", dashChromium, err)
	}
	var (
		mu         sync.Mutex
		exceptions []string
		wg         sync.WaitGroup
	)
	msgs := chromedp.Console(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range msgs {
			if err != nil {
				return
			}
			// A refused inline style or script is a page that
			// looks fine in development and broken when served.
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				exceptions = append(exceptions, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		wg.Wait()
		for i, e := range exceptions {
			if i == 5 {
				t.Errorf("dashboard console: and %d more", len(exceptions)-i)
				break
			}
			t.Errorf("dashboard console: %s", e)
		}
	})
	return ctx
}

// dashDo runs actions in the tab, failing the test with what was awaited.
func dashDo(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("dashboard: %s: %v\n--- page text:\n%s", what, err, dashText(tab))
	}
}

// dashTrue evaluates a JavaScript expression on the page.
func dashTrue(t *testing.T, tab context.Context, expr string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		t.Fatalf("dashboard: evaluating %s: %v", expr, err)
	}
	return ok
}

// dashWait waits until a JavaScript expression is true on the page.
func dashWait(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	dashDo(t, tab, what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(50*time.Second)))
}

func dashText(tab context.Context) string {
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// dashTile is a page expression: host's tile shows state.
func dashTile(host, state string) string {
	return fmt.Sprintf(`!!document.querySelector('.tile[data-host=%q][data-state=%q]')`, host, state)
}

func dashSignIn(t *testing.T, tab context.Context, url, token, name, role string) {
	t.Helper()
	dashDo(t, tab, "the sign-in form",
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("whoami")))
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	who, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("whoami")))
	if err != nil || !strings.Contains(who, name) || !strings.Contains(who, role) {
		t.Fatalf("whoami shows %q (%v), want %s and %s", who, err, name, role)
	}
}

// dashAPI sends a JSON request with a bearer token and returns the status
// and the body.
func dashAPI(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func startDashDeploy(t *testing.T, url, token, src, version string) string {
	t.Helper()
	code, b := dashAPI(t, "POST", url+"/api/v1/services/hello/deploys", token, map[string]any{"release": src, "version": version})
	if code != http.StatusAccepted {
		t.Fatalf("starting the deploy of %s: HTTP %d: %s", version, code, b)
	}
	var st struct{ ID string }
	if err := json.Unmarshal(b, &st); err != nil || st.ID == "" {
		t.Fatalf("deploy answer %s: %v", b, err)
	}
	return st.ID
}

func TestE2EDashboard(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 3, Groups: dashboardGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	alice := createToken(t, tokens, "alice", "deployer")
	victor := createToken(t, tokens, "victor", "viewer")
	// h03 was deployed by another tool (Capistrano's layout): after the
	// first deploy its previous release is that foreign one, and the
	// matrix names it so.
	capRel := filepath.Join(f.DeployRoot("h03"), "releases", "20260101120000")
	if err := os.MkdirAll(capRel, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(capRel, filepath.Join(f.DeployRoot("h03"), "current")); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, f.Config, tokens)
	tab := dashBrowser(t)

	// A deploy waiting at the canary's gate: the deployer has the button;
	// the hosts after the canary are staged, not yet switched.
	dashSignIn(t, tab, url, alice, "alice", "deployer")
	id1 := startDashDeploy(t, url, alice, writeRelease(t, f, "1.0.0", true), "1.0.0")
	dashDo(t, tab, "the approve button for the canary", chromedp.WaitVisible(chromedp.CSS(`#approve[data-group="canary"]`)))
	for _, h := range []string{"h02", "h03"} {
		if !dashTrue(t, tab, dashTile(h, "staged")) {
			t.Errorf("%s is not shown staged while the canary waits:\n%s", h, dashText(tab))
		}
	}
	dashWait(t, tab, "the canary turning green", dashTile("h01", "ok"))

	// Approving in the page lets it go on; every tile turns green.
	dashDo(t, tab, "approving", chromedp.Click(chromedp.ID("approve")))
	dashWait(t, tab, "the verdict of "+id1, `document.querySelector('#verdict').dataset.outcome === 'succeeded'`)
	for _, h := range []string{"h01", "h02", "h03"} {
		dashWait(t, tab, h+" turning green", dashTile(h, "ok"))
	}
	wantServing(t, f, "1.0.0", nil)
	// The fleet matrix and the history follow.
	dashWait(t, tab, "the fleet matrix on 1.0.0", `[...document.querySelectorAll('#matrix tbody tr')].filter(r => r.dataset.release.startsWith('1.0.0-')).length === 3`)
	dashWait(t, tab, "the matrix naming h03's foreign previous release", `[...document.querySelectorAll('#matrix th.foreign')].some(th => th.textContent.startsWith('foreign releases/20260101120000'))`)
	dashWait(t, tab, "the history row of "+id1, fmt.Sprintf(`!!document.querySelector('#history-rows tr[data-deploy=%q] .outcome.succeeded')`, id1))

	// A viewer, while a deploy waits for approval, has no button to press,
	// and the API refuses the approval all the same.
	dashDo(t, tab, "signing out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	dashSignIn(t, tab, url, victor, "victor", "viewer")
	id2 := startDashDeploy(t, url, alice, releaseWithBadHosts(t, f, "2.0.0", "h03"), "2.0.0")
	dashWait(t, tab, "the page telling the deploy waits for approval", `document.querySelector('#verdict').textContent.includes('Waiting for approval')`)
	if dashTrue(t, tab, `!!document.querySelector('#approve, #abort')`) {
		t.Errorf("a viewer is shown approve or abort buttons:\n%s", dashText(tab))
	}
	code, b := dashAPI(t, "POST", url+"/api/v1/deploys/"+id2+"/approve", victor, map[string]string{"group": "canary"})
	if code != http.StatusForbidden {
		t.Fatalf("a viewer's approval: want HTTP 403, got %d: %s", code, b)
	}
	if !dashTrue(t, tab, `document.querySelector('#verdict').textContent.includes('Waiting for approval')`) {
		t.Errorf("the deploy went on after a viewer's refused approval:\n%s", dashText(tab))
	}

	// The deployer approves through the API; h03 fails its health check
	// and everything rolls back, which the viewer watches.
	if code, b := dashAPI(t, "POST", url+"/api/v1/deploys/"+id2+"/approve", alice, map[string]string{"group": "canary"}); code != http.StatusOK {
		t.Fatalf("the deployer's approval: HTTP %d: %s", code, b)
	}
	dashWait(t, tab, "the rolled back verdict of "+id2, `document.querySelector('#verdict').dataset.outcome === 'rolled_back'`)
	for h, state := range map[string]string{"h01": "rolled-back", "h02": "rolled-back", "h03": "restored"} {
		if !dashTrue(t, tab, dashTile(h, state)) {
			t.Errorf("%s's tile is not %s:\n%s", h, state, dashText(tab))
		}
	}
	// The group's progress bar shows the rolled back share.
	if !dashTrue(t, tab, `document.querySelector('.group[data-group="default"] .bar .seg-back').offsetWidth > 0`) {
		t.Errorf("the default group's progress bar shows no rolled back host:\n%s", dashText(tab))
	}
	if !dashTrue(t, tab, `(document.querySelector('#failures .failure[data-host="h03"]') || {}).textContent?.includes('health') === true`) {
		t.Errorf("the failing check's output of h03 is not shown:\n%s", dashText(tab))
	}
	wantServing(t, f, "1.0.0", nil)
	dashWait(t, tab, "the history row of "+id2, fmt.Sprintf(`!!document.querySelector('#history-rows tr[data-deploy=%q] .outcome.rolled_back')`, id2))

	// A past deploy picked in the history shows its own tiles, until
	// "Back to live".
	dashDo(t, tab, "opening "+id1+" from the history",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#history-rows tr[data-deploy=%q]`, id1))),
		chromedp.WaitVisible(chromedp.ID("back-live")))
	dashWait(t, tab, id1+"'s tiles from the history", dashTile("h03", "ok")+` && document.querySelector('#verdict').dataset.outcome === 'succeeded'`)
	dashDo(t, tab, "going back to live", chromedp.Click(chromedp.ID("back-live")))
	dashWait(t, tab, id2+"'s tiles again", dashTile("h03", "restored"))

	if path := os.Getenv("DROVER_SCREENSHOT"); path != "" {
		ctx, cancel := context.WithTimeout(tab, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// An emergency override through the API: the canary's approval is
	// skipped, with a reason, so the deploy goes through without anyone
	// pressing approve; the run shows an OVERRIDE banner with the reason
	// and its history row an override badge.
	code, b = dashAPI(t, "POST", url+"/api/v1/services/hello/deploys", alice, map[string]any{"release": writeRelease(t, f, "3.0.0", true), "version": "3.0.0",
		"skip_gates": []string{"canary:approve"}, "message": "INC-77: approver out, hotfix"})
	if code != http.StatusAccepted {
		t.Fatalf("the override deploy: HTTP %d: %s", code, b)
	}
	var st struct{ ID string }
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	dashWait(t, tab, "the verdict of the override deploy", `document.querySelector('#verdict').dataset.outcome === 'succeeded' && document.querySelector('#run-title').textContent.includes('3.0.0')`)
	if !dashTrue(t, tab, `(document.querySelector('#override-banner') || {}).textContent?.includes('skipped gate canary:approve — INC-77: approver out, hotfix') === true`) {
		t.Errorf("no OVERRIDE banner on the run:\n%s", dashText(tab))
	}
	dashWait(t, tab, "the override badge in history", fmt.Sprintf(`!!document.querySelector('#history-rows tr[data-deploy=%q] .override-badge')`, st.ID))
	if dashTrue(t, tab, fmt.Sprintf(`!!document.querySelector('#history-rows tr[data-deploy=%q] .override-badge')`, id1)) {
		t.Errorf("a deploy without overrides has the badge")
	}
	wantServing(t, f, "3.0.0", nil)
}
