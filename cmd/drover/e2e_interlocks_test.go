package main

// End-to-end tests of the interlocks: --limit ranges, the refusal of a
// batch that takes a whole group out at once, and confirm: true on a
// group — refused without a terminal unless --yes, asked on a real
// terminal (tmux) otherwise.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/internal/localfleet"
)

const confirmGroups = `groups:
  - {name: canary, hosts: [h01], batch: 1, failure_limit: 0, confirm: true}
  - {name: default, hosts: ["h*"], batch: 1, failure_limit: 0}
`

func newConfirmFleet(t *testing.T) *localfleet.Fleet {
	t.Helper()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 3, Groups: confirmGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// TestE2EConfirmWithoutTerminal: a deploy that would ask, run without a
// terminal, is refused at the start (exit 2, nothing touched) unless --yes
// answers in advance.
func TestE2EConfirmWithoutTerminal(t *testing.T) {
	t.Parallel()
	f := newConfirmFleet(t)
	v1 := writeRelease(t, f, "1.0.0", true)
	hosts := hostsDigest(t, f)
	state := treeDigest(t, f.StateDir)

	r := deploy(t, f, v1)
	mustExit(t, r, drover.ExitUsage)
	for _, want := range []string{"group canary has confirm: true", "no terminal", "--yes", "nothing was changed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if d := diffDigests(hosts, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("a refused deploy changed hosts:\n%s", strings.Join(d, "\n"))
	}
	if d := diffDigests(state, treeDigest(t, f.StateDir)); len(d) > 0 {
		t.Fatalf("a refused deploy changed the state dir:\n%s", strings.Join(d, "\n"))
	}

	// A --limit that leaves the confirm group out needs no answer.
	mustExit(t, deploy(t, f, v1, "--limit", "h[02:03]"), 0)
	r = deploy(t, f, v1, "--yes", "--output", "json")
	mustExit(t, r, 0)
	if !regexp.MustCompile(`"kind":"gate_done","group":"canary".*confirm`).MatchString(r.stdout) {
		t.Errorf("no confirm gate passed for the canary:\n%s", r.stdout)
	}
	wantServing(t, f, "1.0.0", nil)
}

// TestE2EConfirmInTerminal: on a terminal drover asks after the canary;
// "n" halts the deploy and rolls the canary back, "y" finishes it.
func TestE2EConfirmInTerminal(t *testing.T) {
	t.Parallel()
	f := newConfirmFleet(t)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true), "--yes"), 0)
	v2 := writeRelease(t, f, "2.0.0", true)
	env := []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "LC_ALL=", "NO_COLOR=", "HOME=" + os.Getenv("HOME")}
	for _, tc := range []struct {
		answer string
		exit   int
		serve  string
	}{{"n", drover.ExitRolledBack, "1.0.0"}, {"y", drover.ExitOK, "2.0.0"}} {
		cmd := fmt.Sprintf("%s deploy -c %s --release %s -m confirm; echo \"[drover exited $?]\"; exec sleep 600", shq(droverBin), shq(f.Config), shq(v2))
		tm := newTmux(t, 120, 40, env, cmd)
		screens := tm.sample(2*time.Minute, func(sc string) bool { return strings.Contains(sc, "[y/N]") })
		asked := screens[len(screens)-1]
		if !strings.Contains(asked, "group canary is done. Go on with the next group?") {
			t.Fatalf("question:\n%s", asked)
		}
		// While it asks, only the canary is on the new release.
		wantServing(t, f, "1.0.0", map[string]string{"h01": "2.0.0"})
		tm.keys(tc.answer)
		screens = tm.sample(2*time.Minute, func(sc string) bool { return strings.Contains(sc, "[drover exited") })
		final := screens[len(screens)-1]
		if !strings.Contains(final, fmt.Sprintf("[drover exited %d]", tc.exit)) {
			t.Fatalf("answer %q: want exit %d:\n%s", tc.answer, tc.exit, final)
		}
		wantServing(t, f, tc.serve, nil)
	}
}

// TestE2ELimitRange: --limit h[02:03] deploys to those hosts only; a range
// that matches nothing is bad input.
func TestE2ELimitRange(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 4)
	v1 := writeRelease(t, f, "1.0.0", true)
	mustExit(t, deploy(t, f, v1, "--limit", "h[02:03]"), 0)
	for _, h := range f.Hosts {
		_, err := os.Stat(filepath.Join(f.DeployRoot(h.Name), "state.json"))
		if deployed := err == nil; deployed != (h.Name == "h02" || h.Name == "h03") {
			t.Errorf("%s deployed: %v", h.Name, deployed)
		}
	}
	r := deploy(t, f, v1, "--limit", "h[05:09]")
	mustExit(t, r, drover.ExitUsage)
	if !strings.Contains(r.stderr, `--limit "h[05:09]" matches no host`) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	mustExit(t, deploy(t, f, v1, "--limit", "h[01:04],!h[02:03]"), 0)
	wantServing(t, f, "1.0.0", nil)
}

// TestE2EAllAtOnceRefused: a batch that takes a whole group out is refused
// at load, naming the file and line, with nothing touched.
func TestE2EAllAtOnceRefused(t *testing.T) {
	t.Parallel()
	groups := "groups:\n  - name: all\n    hosts: [\"*\"]\n    batch: \"100%\"\n"
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 3, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	b, _ := os.ReadFile(f.Config)
	line := 0
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "batch:") {
			line = i + 1
		}
	}
	hosts := hostsDigest(t, f)
	r := deploy(t, f, writeRelease(t, f, "1.0.0", true))
	mustExit(t, r, drover.ExitUsage)
	for _, want := range []string{fmt.Sprintf("drover.yaml:%d", line), `takes all 3 hosts of group "all" out at once`, "allow_all_at_once: true"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if d := diffDigests(hosts, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("hosts changed:\n%s", strings.Join(d, "\n"))
	}
}
