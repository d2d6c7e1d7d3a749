package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"drover/rollout"
	"drover/runner"
)

// TestWriteConvergeSummary: the end of a converge says which hosts are on
// the release, which are not with their last cause and rounds tried, and
// what replaced which host — in words and in the JSON result line.
func TestWriteConvergeSummary(t *testing.T) {
	t.Parallel()
	out := &runner.ConvergeOutcome{
		End: rollout.ConvergeExhausted, Rounds: 3, ExitCode: 3,
		On: []string{"h01", "h02"}, Behind: []string{"h03"},
		Left: []rollout.HostLeft{{Name: "h03", Cause: "stuck (failed on its restore path): restart: exit 1 (d-1)", Rounds: 3, Replaced: true}},
		Replaced: []runner.Replacement{
			{Host: "h03", Round: 3, Address: "10.0.0.9"},
			{Host: "h04", Round: 2, Joined: []string{"h09"}},
		},
		Summary: "did not converge in 3 rounds (1s): 1 of 3 hosts not on 1.0 (h03); replaced h03 h04",
	}
	var b bytes.Buffer
	writeConverge(&b, false, out)
	for _, want := range []string{
		"not on the release (last cause, rounds tried):\n  h03        stuck (failed on its restore path): restart: exit 1 (d-1) (3 rounds)\n",
		"  h03        round 3: replaced, at 10.0.0.9\n",
		"  h04        round 2: replaced by h09\n",
		"exit 3: did not converge: needs a person (h03)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	writeConverge(&b, true, out)
	var v map[string]any
	if err := json.Unmarshal(b.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	left, _ := v["not_on_release"].([]any)
	reps, _ := v["replaced"].([]any)
	if v["end"] != "exhausted" || len(left) != 1 || len(reps) != 2 || v["exit_code"] != 3.0 {
		t.Fatalf("json %s", b.String())
	}
	if l := left[0].(map[string]any); l["host"] != "h03" || l["rounds"] != 3.0 || !strings.Contains(l["cause"].(string), "stuck") {
		t.Fatalf("not_on_release %v", l)
	}
	if r := reps[1].(map[string]any); r["by"] != "replaced by h09" {
		t.Fatalf("replaced %v", r)
	}
}
