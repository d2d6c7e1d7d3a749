package main

// How a run ended, said truthfully everywhere (issue 17 point 4): a deploy
// stopped before any host switched is "halted", not "rolled back", in the
// terminal, the event stream and history.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"drover"
	"drover/examples/hello"
	"drover/internal/localfleet"
)

// TestE2EHaltedBeforeAnySwitch: a first deploy whose config fails
// validate on every host switches nothing. The verdict says so — "halted
// before any host switched; nothing changed", each host "not switched"
// with no release yet — never "rolled back" or "restored to none"; the
// verdict event and history carry the outcome halted; exit 1.
func TestE2EHaltedBeforeAnySwitch(t *testing.T) {
	t.Parallel()
	// A failure limit of 1 over 2 hosts halts only once both failed:
	// the verdict does not depend on which host fails first.
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2,
		Groups:    "  - {name: web, hosts: [\"h*\"], batch: 1, failure_limit: 1}\n",
		ExtraYAML: "stage_parallelism: 1\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	bad := writeRelease(t, f, "1.0.0", true)
	tmpl := filepath.Join(bad, hello.ConfigTemplate)
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl, append(b, "listen_backlog = 5\n"...), 0o644); err != nil {
		t.Fatal(err)
	}

	r := runDrover(t, "deploy", "-c", f.Config, "--release", bad, "--no-progress")
	mustExit(t, r, drover.ExitRolledBack)
	for _, lie := range []string{"rolled back", "restored", "rolled_back"} {
		if strings.Contains(r.stdout, lie) {
			t.Errorf("a deploy that switched nothing says %q:\n%s", lie, r.stdout)
		}
	}
	verdict := r.stdout[strings.LastIndex(r.stdout, "\n\n")+2:]
	verdict = regexp.MustCompile(`in \d+(\.\d+)?m?s:`).ReplaceAllString(verdict, "in DURATION:")
	verdict = regexp.MustCompile(`\.stage-[0-9a-f]+`).ReplaceAllString(strings.ReplaceAll(verdict, f.Dir, "FLEET"), ".stage-DIR")
	golden(t, "verdict_halted_first_deploy", normalize(verdict))

	// Through drover server: the verdict event it streams carries the
	// outcome, once, and the exit code is the outcome's.
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	ci := createToken(t, tokens, "ci", "deployer")
	url := startServer(t, f.Config, tokens)
	r = deploy(t, f, bad, "--server", url, "--token", ci, "--yes", "--output", "json")
	mustExit(t, r, drover.ExitRolledBack)
	var verdicts []drover.Event
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e drover.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if e.Kind == drover.EventVerdict {
			verdicts = append(verdicts, e)
		}
	}
	if len(verdicts) != 1 || verdicts[0].Outcome != drover.OutcomeHalted || verdicts[0].Operation != drover.KindDeploy ||
		!strings.HasPrefix(verdicts[0].Message, "deploy halted before any host switched") {
		t.Errorf("verdict events %+v, want one with outcome halted", verdicts)
	}
	if !strings.Contains(r.stdout, `"kind":"result"`) || !strings.Contains(r.stdout, `"verdict":"halted"`) {
		t.Errorf("result line lacks verdict halted:\n%s", r.stdout)
	}

	r = runDrover(t, "history", "-c", f.Config, "--json")
	mustExit(t, r, 0)
	var hist []struct {
		Outcome, Status, Summary string
		ExitCode                 int `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &hist); err != nil || len(hist) != 2 {
		t.Fatalf("history %v: %s", err, r.stdout)
	}
	for _, h := range hist {
		if h.Outcome != drover.OutcomeHalted || h.Status != drover.OutcomeHalted || h.ExitCode != 1 ||
			!strings.HasPrefix(h.Summary, "deploy halted before any host switched in ") || !strings.Contains(h.Summary, "\n") {
			t.Errorf("history records %+v, want outcome halted and the validate error's lines", h)
		}
	}
	// Tables stay tables (issue 17 point 5): the summaries hold the
	// validate error's lines, the server's history table one line a deploy.
	r = runDrover(t, "history", "-c", f.Config, "--server", url, "--token", ci)
	mustExit(t, r, 0)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.Contains(lines[1], "halted") {
		t.Errorf("history through the server: want a header and 2 rows, got:\n%s", r.stdout)
	}
	wantNoRelease(t, f)
}

// wantNoRelease asserts no host has a current release: nothing switched.
func wantNoRelease(t *testing.T, f *localfleet.Fleet) {
	t.Helper()
	for _, h := range f.Hosts {
		if _, err := os.Lstat(filepath.Join(f.DeployRoot(h.Name), "current")); !os.IsNotExist(err) {
			t.Errorf("%s has a current release (%v): the halted deploy switched it", h.Name, err)
		}
	}
}
