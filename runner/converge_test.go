package runner

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"drover"
)

// convergeSpec is n hosts in one group that tolerates every failure, so
// a round restores failed hosts instead of rolling back the rest.
func convergeSpec(n int) *drover.Spec {
	s := testSpec(n)
	var all []string
	for i := range s.Hosts {
		s.Hosts[i].Group = "all"
		all = append(all, s.Hosts[i].Name)
	}
	s.Groups = []drover.Group{{Name: "all", Hosts: all, Batch: 2, FailureLimit: n}}
	s.Converge = drover.ConvergeSpec{MaxAttempts: 4, Wait: time.Second, MaxWait: 4 * time.Second}
	return s
}

// TestConvergeRetriesHostsUntilOnRelease: hosts whose check fails for
// their first deploys are deployed to again, only they, until the fleet
// converges; the waits between rounds grow.
func TestConvergeRetriesHostsUntilOnRelease(t *testing.T) {
	e := newEnv(t, convergeSpec(5))
	e.fleet.Fail("h02", opCheck, 1, checkFails("h02"))
	e.fleet.Fail("h04", opCheck, 2, checkFails("h04"))
	rel := mkRelease(t, "1.0.0")
	out, err := e.r.Converge(context.Background(), ConvergeOptions{Release: rel})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Converged || out.ExitCode != 0 || out.Rounds != 3 {
		t.Fatalf("converged %v exit %d rounds %d: %s", out.Converged, out.ExitCode, out.Rounds, out.Summary)
	}
	for name, st := range e.states() {
		if st.Current != rel.ID() {
			t.Errorf("%s on %q", name, st.Current)
		}
	}
	// Round 2 deployed to h02 and h04 only, round 3 to h04 only.
	if n := len(e.log.ops("h01", opPromote)); n != 1 {
		t.Errorf("h01 switched %d times, want 1", n)
	}
	if n := len(e.log.ops("h04", opPromote)); n != 3 {
		t.Errorf("h04 switched %d times, want 3", n)
	}
	var lines []string
	for _, ev := range e.events.all() {
		if strings.HasPrefix(ev.Message, "round ") && strings.HasSuffix(ev.Message, "deploying") {
			lines = append(lines, ev.Message)
		}
	}
	want := []string{
		"round 1/4: 5 of 5 hosts not on 1.0.0 (h01 h02 h03 h04 h05); deploying",
		"round 2/4: 2 of 5 hosts not on 1.0.0 (h02 h04); deploying",
		"round 3/4: 1 of 5 hosts not on 1.0.0 (h04); deploying",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("round lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	sl := e.sleeps.all()
	if len(sl) != 3 || sl[0] > time.Second || sl[1] < time.Second || sl[1] > 2*time.Second || sl[2] < 2*time.Second {
		t.Fatalf("waits %v, want growing from 1s", sl)
	}
}

// TestConvergeReplacesAHostOnceAndGivesUp: a host that never passes runs
// the replace hook on this machine once, is reloaded, and is reported;
// converge ends needing a person.
func TestConvergeReplacesAHostOnceAndGivesUp(t *testing.T) {
	spec := convergeSpec(3)
	dir := t.TempDir()
	spec.Source = filepath.Join(dir, "drover.yaml")
	spec.Hooks.Replace = "echo {{.Host.Name}} >> replaced.log"
	spec.Converge.ReplaceAfter = 2
	e := newEnv(t, spec)
	e.fleet.Fail("h03", opCheck, -1, checkFails("h03"))
	reloads := 0
	out, err := e.r.Converge(context.Background(), ConvergeOptions{Release: mkRelease(t, "1.0.0"), Reload: func(ctx context.Context) (*drover.Spec, error) {
		reloads++
		return spec, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Converged || out.ExitCode != drover.ExitNeedsPerson || out.Rounds != 4 || !slices.Equal(out.Behind, []string{"h03"}) {
		t.Fatalf("converged %v exit %d rounds %d behind %v: %s", out.Converged, out.ExitCode, out.Rounds, out.Behind, out.Summary)
	}
	b, err := os.ReadFile(filepath.Join(dir, "replaced.log"))
	if err != nil || string(b) != "h03\n" {
		t.Fatalf("replace hook log %q (%v), want h03 once", b, err)
	}
	if reloads != 1 || len(out.Replaced) != 1 || out.Replaced[0].Host != "h03" || out.Replaced[0].Error != "" {
		t.Fatalf("reloads %d, replaced %+v", reloads, out.Replaced)
	}
	if !strings.Contains(out.Summary, "replaced h03") || !strings.Contains(out.Summary, "1 of 3 hosts not on 1.0.0 (h03)") {
		t.Fatalf("summary %q", out.Summary)
	}
}

// TestConvergeNothingToDo: a fleet already on the release converges in
// zero rounds without deploying.
func TestConvergeNothingToDo(t *testing.T) {
	e := newEnv(t, convergeSpec(2))
	rel := mkRelease(t, "1.0.0")
	e.mustDeploy(rel, "")
	mark := e.log.mark()
	out, err := e.r.Converge(context.Background(), ConvergeOptions{Release: rel})
	if err != nil || !out.Converged || out.Rounds != 0 {
		t.Fatalf("%+v %v", out, err)
	}
	for _, c := range e.log.since(mark) {
		if changesHost(c.Op) || c.Op == opBegin {
			t.Fatalf("converged fleet touched: %+v", c)
		}
	}
}
