package main

import (
	"bytes"
	"testing"

	"drover"
	"drover/rollout"
	"drover/runner"
)

// TestVerdictErrorsOnce: the verdict alone (nothing printed above, as
// for a multi-service deploy's summary) says each distinct error once:
// shared ones summed up with the whole text under them, a host's own on
// its line.
func TestVerdictErrorsOnce(t *testing.T) {
	nginx := func(h string) string {
		return "stage: host " + h + ": validate nginx.conf: nginx -t -c /srv/web/releases/.stage-" + map[string]string{"w1": "0a1b", "w2": "9f8e"}[h] +
			"/nginx.conf exited 1: nginx: [emerg] unknown directive \"sever_name\" in /srv/" + h + "/nginx.conf:12\nnginx: configuration file test failed"
	}
	out := &runner.Outcome{DeployID: "d1", ExitCode: 1, Summary: "deploy halted: 3 failed",
		Report: rollout.Report{Hosts: []rollout.HostReport{
			{Name: "w1", Status: rollout.HostFailed, Reason: nginx("w1")},
			{Name: "w2", Status: rollout.HostFailed, Reason: nginx("w2")},
			{Name: "w3", Status: rollout.HostFailed, Switched: true, From: "1.0-abc", Reason: "check: port: connection refused"},
			{Name: "w4", Status: rollout.HostDone},
		}}}
	var b bytes.Buffer
	writeVerdict(&b, false, style{}, out, nil)
	want := `
deploy halted: 3 failed
hosts:
  w1         failed, not switched (it has no release yet)
  w2         failed, not switched (it has no release yet)
  w3         failed, restored to 1.0-abc: check: port: connection refused
errors:
  2 hosts (w1 w2): stage: nginx: [emerg] unknown directive "sever_name" in /srv/w1/nginx.conf:12 …
    on w1:
    stage: host w1: validate nginx.conf: nginx -t -c /srv/web/releases/.stage-0a1b/nginx.conf exited 1: nginx: [emerg] unknown directive "sever_name" in /srv/w1/nginx.conf:12
    nginx: configuration file test failed
exit 1: ` + drover.OutcomeOf(out.Name()).ExitWords + `
`
	if b.String() != want {
		t.Errorf("verdict:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWrapLine(t *testing.T) {
	for _, c := range []struct {
		in    string
		width int
		want  []string
	}{
		{"short", 10, []string{"short"}},
		{"aaaa bbbb cccc", 10, []string{"aaaa bbbb", "  cccc"}},
		{"abcdefghijkl", 5, []string{"abcde", "  fgh", "  ijk", "  l"}},
	} {
		got := wrapLine(c.in, c.width, "  ")
		if len(got) != len(c.want) {
			t.Errorf("wrapLine(%q, %d) = %q, want %q", c.in, c.width, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("wrapLine(%q, %d) = %q, want %q", c.in, c.width, got, c.want)
				break
			}
		}
	}
}
