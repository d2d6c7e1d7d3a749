package main

// The canary chart end to end: a real Prometheus scraping a loaded local
// fleet, a release serving 20% errors halted at the canary by its
// analyses (run by the CLI, as most deploys are), then `drover server` and
// headless Chromium: the idle dashboard shows that last deploy with its
// real batch sizes, and for each analysis a chart of the metric per host —
// the canary against the baseline hosts — with the threshold and every
// evaluation marked, the halting one ringed. `drover show` prints the same
// evaluations as a table.
//
// DROVER_CHART_SCREENSHOT=PATH saves a picture of the chart (a relative
// PATH is from cmd/drover: ../../docs/canary-chart.png refreshes the
// README's).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"drover"
	"drover/runview"
)

func TestE2ECanaryChart(t *testing.T) {
	t.Parallel()
	f := newPromFleet(t)
	r := deploy(t, f.Fleet, releaseWithErrors(t, f.Fleet, "3.0.0", 0.2), "--output", "json")
	mustExit(t, r, 1)
	var id string
	for _, e := range events(t, r.stdout) {
		if e.Kind == drover.EventDeployStart {
			id = e.Deploy
		}
	}
	if id == "" {
		t.Fatalf("no deploy_start in the deploy's events:\n%s", r.stdout)
	}

	// drover show: the evaluations as a table, the halting one marked.
	show := runDrover(t, "show", "-c", f.Config, id)
	mustExit(t, show, 0)
	if !strings.Contains(show.stdout, "canary analysis: ") || !strings.Contains(show.stdout, "HALTED the deploy") {
		t.Errorf("drover show prints no evaluations table with the halting result:\n%s", show.stdout)
	}

	tokens := filepath.Join(t.TempDir(), "tokens.json")
	victor := createToken(t, tokens, "victor", "viewer")
	url := startServer(t, f.Config, tokens)

	// What the page must draw: the server's view of the deploy, from its
	// record and journal (this server never ran it).
	code, b := dashAPI(t, "GET", url+"/api/v1/deploys/"+id+"/view", victor, nil)
	if code != http.StatusOK {
		t.Fatalf("view of %s: HTTP %d: %s", id, code, b)
	}
	var v runview.View
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var halting *runview.Analysis
	var haltAt string
	for _, a := range v.Analyses {
		for i, e := range a.Evals {
			if e.Halted {
				if halting != nil {
					t.Errorf("two halting evaluations: %s and %s", halting.Name, a.Name)
				}
				halting, haltAt = a, e.At.Format(time.RFC3339Nano)
				if e.Status == drover.AnalysisPass || i != len(a.Evals)-1 {
					t.Errorf("halting evaluation %+v is a pass or not the analysis's last", e)
				}
			}
		}
	}
	if halting == nil || halting.Group != "canary" {
		t.Fatalf("no halting evaluation in the canary's analyses: %s", b)
	}
	if !strings.Contains(show.stdout, halting.Name) {
		t.Errorf("drover show does not name the halting analysis %s:\n%s", halting.Name, show.stdout)
	}
	// --json has the same evaluations, for scripts.
	showJSON := runDrover(t, "show", "-c", f.Config, id, "--json")
	mustExit(t, showJSON, 0)
	var sv struct{ Analyses []drover.AnalysisEval }
	if err := json.Unmarshal([]byte(showJSON.stdout), &sv); err != nil {
		t.Fatal(err)
	}
	n, halts := 0, 0
	for _, a := range v.Analyses {
		n += len(a.Evals)
	}
	for _, e := range sv.Analyses {
		if e.Halted {
			halts++
		}
	}
	if len(sv.Analyses) != n || halts != 1 {
		t.Errorf("show --json: %d evaluations (%d halting), the view has %d (1 halting)", len(sv.Analyses), halts, n)
	}

	tab := dashBrowser(t)
	dashSignIn(t, tab, url, victor, "victor", "viewer")
	dashWait(t, tab, "the last deploy, idle", fmt.Sprintf(`document.querySelector('#run-title').textContent.includes(%q) && document.querySelector('#verdict').dataset.outcome === 'rolled_back'`, id))
	// Issue 17: the idle panel shows the batch the deploy really ran
	// (3), not the group's size.
	if !dashTrue(t, tab, `document.querySelector('.group[data-group="default"] .group-head').textContent.includes('3 hosts at a time')`) {
		t.Errorf("the default group's batch is not shown as 3:\n%s", dashText(tab))
	}

	chart := fmt.Sprintf(`.analysis[data-analysis=%q][data-group="canary"] svg.chart`, halting.Name)
	dashWait(t, tab, "the chart of "+halting.Name+" with its series", fmt.Sprintf(`document.querySelectorAll('%s polyline.series').length > 0`, chart))
	type seriesMark struct {
		Host, Role string
		Points     int
	}
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	series, err := chromedp.Run(ctx, chromedp.Evaluate[[]seriesMark](fmt.Sprintf(`[...document.querySelectorAll('%s polyline.series')].map(p => ({host: p.dataset.host, role: p.dataset.role, points: +p.dataset.points}))`, chart)))
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, s := range series {
		roles[s.Host] = s.Role
		if s.Points < 2 {
			t.Errorf("series of %s has %d points", s.Host, s.Points)
		}
	}
	// The canary is h01; every other host is the baseline it was judged
	// against, drawn too (a per-host query never asked about them).
	if roles["h01"] != "canary" {
		t.Errorf("h01 is not the canary series: %v", roles)
	}
	for i := 2; i <= analysisHosts; i++ {
		if h := fmt.Sprintf("h%02d", i); roles[h] != "baseline" {
			t.Errorf("%s is not a baseline series: %v", h, roles)
		}
	}
	// Each evaluation is marked; the halting one ringed at its time.
	type evalMarks struct {
		N        int
		Halted   []string
		Statuses []string
	}
	marks, err := chromedp.Run(ctx, chromedp.Evaluate[evalMarks](fmt.Sprintf(`(() => { const m = [...document.querySelectorAll('%s circle.eval')];
		return {n: m.length, halted: m.filter(c => c.classList.contains('halted')).map(c => c.dataset.at), statuses: m.map(c => c.dataset.status)}; })()`, chart)))
	if err != nil {
		t.Fatal(err)
	}
	if marks.N != len(halting.Evals) {
		t.Errorf("%d evaluation marks, the deploy made %d", marks.N, len(halting.Evals))
	}
	if len(marks.Halted) != 1 || !sameInstant(marks.Halted[0], haltAt) {
		t.Errorf("halting marks %v, want one at %s", marks.Halted, haltAt)
	}
	if halting.Max != nil && !dashTrue(t, tab, fmt.Sprintf(`+(document.querySelector('%s line.threshold[data-bound="max"]') || {dataset: {}}).dataset.value === %v`, chart, *halting.Max)) {
		t.Errorf("no threshold line at max %v", *halting.Max)
	}

	if path := os.Getenv("DROVER_CHART_SCREENSHOT"); path != "" {
		sctx, scancel := context.WithTimeout(tab, 30*time.Second)
		defer scancel()
		png, err := chromedp.Run(sctx, chromedp.Screenshot(chromedp.CSS(`#analyses`)))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sameInstant compares two RFC 3339 times as instants.
func sameInstant(a, b string) bool {
	x, err1 := time.Parse(time.RFC3339Nano, a)
	y, err2 := time.Parse(time.RFC3339Nano, b)
	return err1 == nil && err2 == nil && x.Equal(y)
}
