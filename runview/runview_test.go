package runview_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/runview"
)

var update = flag.Bool("update", false, "rewrite testdata/*.view.json")

// Fixtures are shared: cmd/drover's progress tests draw the same event
// files on a terminal, and server's view tests serve them to a browser.
func fixtures(t *testing.T) map[string][]drover.Event {
	t.Helper()
	files, err := filepath.Glob("testdata/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata/: %v", err)
	}
	out := map[string][]drover.Event{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := runview.DecodeEvents(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".jsonl")] = evs
	}
	return out
}

// TestFixtures folds every fixture and compares the view with its golden
// JSON: what the dashboard receives.
func TestFixtures(t *testing.T) {
	for name, evs := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(runview.Fold(evs), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".view.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./runview -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("view of %s differs from %s (go test ./runview -update rewrites it):\n%s", name, path, got)
			}
		})
	}
}

func TestHaltFixtureStates(t *testing.T) {
	v := runview.Fold(fixtures(t)["halt"])
	if v.Verdict == nil || v.Verdict.Outcome != drover.OutcomeRolledBack || v.Running {
		t.Fatalf("verdict %+v running %v, want rolled_back and over", v.Verdict, v.Running)
	}
	for host, want := range map[string]string{"h01": runview.RolledBack, "h02": runview.Restored} {
		if h := v.Host(host); h == nil || h.State != want {
			t.Errorf("%s: %+v, want state %s", host, h, want)
		}
	}
	h02 := v.Host("h02")
	if !h02.Failed || !strings.Contains(h02.FailedMessage, "restart refused") {
		t.Errorf("h02 failed %v %q, want failed with its reason", h02.Failed, h02.FailedMessage)
	}
	if v.Halt == "" || !v.RollingBack {
		t.Errorf("halt %q rolling back %v", v.Halt, v.RollingBack)
	}
}

func TestApprovalFixture(t *testing.T) {
	v := runview.Fold(fixtures(t)["approval"])
	g := v.Group("canary")
	if !g.AwaitingApproval || g.GateName != "approve" || !v.Running {
		t.Fatalf("canary %+v running %v, want waiting for approval", g, v.Running)
	}
	rest := v.Group("rest")
	if rest.Batch != 2 || rest.Batches != 2 || rest.FailureLimit != 1 {
		t.Errorf("rest batch %d batches %d limit %d, want 2, 2 (3 hosts to change), 1", rest.Batch, rest.Batches, rest.FailureLimit)
	}
	if h := v.Host("h05"); h.State != runview.Skipped || h.Batch != -1 {
		t.Errorf("h05 %+v, want skipped", h)
	}
	if h := v.Host("h02"); h.State != runview.Staged {
		t.Errorf("h02 %s, want staged", h.State)
	}
	if len(v.Overrides) != 1 {
		t.Errorf("overrides %v", v.Overrides)
	}
	// A halt ends the wait: no approve button for a deploy rolling back.
	v.Apply(drover.Event{Kind: drover.EventHalt, Deploy: v.Deploy, Message: "aborted"})
	if g.AwaitingApproval {
		t.Error("still awaiting approval after a halt")
	}
}

// The gate field decides an approval wait, never the message's words.
func TestApprovalByGateField(t *testing.T) {
	v := runview.Fold(fixtures(t)["approval"])
	v.Apply(drover.Event{Kind: drover.EventGateDone, Group: "canary", Gate: drover.GateApprove})
	v.Apply(drover.Event{Kind: drover.EventGateStart, Group: "canary", Gate: "bake", Message: "approve: looks like one"})
	if v.Group("canary").AwaitingApproval {
		t.Error("the gate field says bake; the message must not decide")
	}
}

func TestRecoverFixtureAddsUnplannedHost(t *testing.T) {
	v := runview.Fold(fixtures(t)["recover"])
	h := v.Host("h02")
	if h == nil || h.State != runview.Stuck || !h.Unreachable {
		t.Fatalf("h02 %+v, want stuck and unreachable", h)
	}
	if v.Verdict.Outcome != drover.OutcomeNeedsPerson {
		t.Errorf("verdict %+v", v.Verdict)
	}
}

func TestNotesBounded(t *testing.T) {
	v := runview.Fold(fixtures(t)["approval"])
	for i := 0; i < 3*runview.MaxNotes; i++ {
		v.Apply(drover.Event{Kind: drover.EventNotice, Message: "n", Time: time.Unix(int64(i), 0)})
	}
	if len(v.Notes) != runview.MaxNotes {
		t.Errorf("%d notes, want %d", len(v.Notes), runview.MaxNotes)
	}
}
