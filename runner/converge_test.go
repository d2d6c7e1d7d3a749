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
	"drover/rollout"
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

// TestConvergeStuckHostDoesNotStopTheLoop is issue 19's fleet: h03 fails
// once, h04 never passes until replaced, h05 fails and then fails its
// restore (stuck). Host trouble is not release trouble: converge goes on,
// retries the stuck host through the full deploy path and converges with
// exit 0; the replaced host is named with what replaced it.
func TestConvergeStuckHostDoesNotStopTheLoop(t *testing.T) {
	spec := convergeSpec(5)
	spec.Groups[0].FailureLimit = 3
	spec.Source = filepath.Join(t.TempDir(), "drover.yaml")
	spec.Hooks.Replace = "true"
	spec.Converge = drover.ConvergeSpec{MaxAttempts: 6, Wait: time.Second, MaxWait: 4 * time.Second, ReplaceAfter: 2, BootTimeout: time.Minute}
	e := newEnv(t, spec)
	rel := mkRelease(t, "2.0.0")
	e.fleet.Fail("h03", opCheck, 1, checkFails("h03"))
	e.fleet.Fail("h04", opCheck, 2, checkFails("h04"))
	e.fleet.Fail("h05", opCheck, 1, checkFails("h05"))
	e.fleet.Fail("h05", opRestore, 1, checkFails("h05 restore"))
	out, err := e.r.Converge(context.Background(), ConvergeOptions{Release: rel, Reload: func(ctx context.Context) (*drover.Spec, error) { return spec, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != drover.ExitOK || !out.Converged || out.Rounds != 3 || len(out.On) != 5 || len(out.Behind) != 0 {
		t.Fatalf("exit %d converged %v rounds %d on %v behind %v: %s", out.ExitCode, out.Converged, out.Rounds, out.On, out.Behind, out.Summary)
	}
	if out.Deploys[0].ExitCode != drover.ExitNeedsPerson {
		t.Fatalf("round 1 should have needed a person (h05 stuck): %s", out.Deploys[0].Summary)
	}
	if len(out.Replaced) != 1 || out.Replaced[0].Host != "h04" || out.Replaced[0].Round != 3 || out.Replaced[0].Address == "" {
		t.Fatalf("replaced %+v", out.Replaced)
	}
	for name, st := range e.states() {
		if st.Current != rel.ID() {
			t.Errorf("%s on %q", name, st.Current)
		}
	}
	// h05 went through the full deploy path again in round 2.
	if n := len(e.log.ops("h05", opPromote)); n != 2 {
		t.Errorf("h05 switched %d times, want 2", n)
	}
}

// TestConvergeHaltedReleaseStopsInRoundOne: a release that fails on most
// hosts halts round 1 past the failure limit; converge stops there with
// the deploy's exit 1, no second round, and names the hosts not on it.
func TestConvergeHaltedReleaseStopsInRoundOne(t *testing.T) {
	spec := convergeSpec(5)
	spec.Groups[0].FailureLimit = 1
	spec.Groups[0].Batch = 5
	e := newEnv(t, spec)
	for _, h := range []string{"h01", "h02", "h03", "h04"} {
		e.fleet.Fail(h, opCheck, -1, checkFails(h))
	}
	out, err := e.r.Converge(context.Background(), ConvergeOptions{Release: mkRelease(t, "1.0.0")})
	if err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != drover.ExitRolledBack || out.End != rollout.ConvergeHalted || out.Rounds != 1 || len(out.Deploys) != 1 {
		t.Fatalf("exit %d end %s rounds %d deploys %d: %s", out.ExitCode, out.End, out.Rounds, len(out.Deploys), out.Summary)
	}
	if !strings.Contains(out.Summary, "converge stopped in round 1") || !strings.Contains(out.Summary, "failure limit") {
		t.Fatalf("summary %q", out.Summary)
	}
	if len(e.sleeps.all()) != 0 {
		t.Fatalf("waited %v after a halted round", e.sleeps.all())
	}
	if len(out.Behind) != 5 || len(out.Left) != 5 || out.Left[0].Cause == "" || out.Left[0].Rounds != 1 {
		t.Fatalf("behind %v left %+v", out.Behind, out.Left)
	}
}

// TestConvergeSkipsUnreachableHostUntilItAnswers: a host that does not
// answer the survey is not deployed to (the deploy would count it against
// the failure limit), is named with its cause, and is deployed to in the
// first round it answers.
func TestConvergeSkipsUnreachableHostUntilItAnswers(t *testing.T) {
	e := newEnv(t, convergeSpec(3))
	e.fleet.SetDown("h02", true)
	rounds := 0
	e.r.Sleep = func(ctx context.Context, d time.Duration) error {
		rounds++
		if rounds == 2 {
			e.fleet.SetDown("h02", false)
		}
		return nil
	}
	rel := mkRelease(t, "1.0.0")
	out, err := e.r.Converge(context.Background(), ConvergeOptions{Release: rel})
	if err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != 0 || out.Rounds != 3 {
		t.Fatalf("exit %d rounds %d: %s", out.ExitCode, out.Rounds, out.Summary)
	}
	if n := len(e.log.ops("h02", opStage)); n != 1 {
		t.Fatalf("h02 staged %d times, want once (round 3)", n)
	}
	// Round 2 had nothing that answered to deploy to.
	if len(out.Deploys) != 2 || len(out.Deploys[1].Report.Hosts) != 1 || out.Deploys[1].Report.Hosts[0].Name != "h02" {
		t.Fatalf("deploys %d, want round 1 and round 3 (h02 only)", len(out.Deploys))
	}
}

// TestConvergeWaitsForAReplacedHostToBoot: a replaced host that does not
// answer yet is waited for with growing pauses, then deployed to; one
// that never answers within boot_timeout counts the round failed, and
// the summary names only it, with that cause, exit 3.
func TestConvergeWaitsForAReplacedHostToBoot(t *testing.T) {
	for _, boots := range []bool{true, false} {
		t.Run(map[bool]string{true: "boots", false: "never"}[boots], func(t *testing.T) {
			spec := convergeSpec(2)
			spec.Source = filepath.Join(t.TempDir(), "drover.yaml")
			spec.Hooks.Replace = "true"
			spec.Converge = drover.ConvergeSpec{MaxAttempts: 3, Wait: time.Second, MaxWait: time.Second, ReplaceAfter: 1, BootTimeout: 10 * time.Second}
			e := newEnv(t, spec)
			e.fleet.Fail("h02", opCheck, 1, checkFails("h02"))
			var sleeps []time.Duration
			e.r.Sleep = func(ctx context.Context, d time.Duration) error {
				sleeps = append(sleeps, d)
				if len(sleeps) == 1 {
					e.fleet.SetDown("h02", true) // the replace takes it down
				}
				if boots && len(sleeps) == 4 {
					e.fleet.SetDown("h02", false)
				}
				return nil
			}
			out, err := e.r.Converge(context.Background(), ConvergeOptions{Release: mkRelease(t, "1.0.0")})
			if err != nil {
				t.Fatal(err)
			}
			// The round waits come first and last; the boot pauses between.
			var boot time.Duration
			for _, d := range sleeps[1 : len(sleeps)-1] {
				boot += d
			}
			if boots {
				if out.ExitCode != 0 || out.Rounds != 2 {
					t.Fatalf("exit %d rounds %d sleeps %v: %s", out.ExitCode, out.Rounds, sleeps, out.Summary)

				}
				if sleeps[1] >= sleeps[2] {
					t.Fatalf("boot pauses do not grow: %v", sleeps)
				}
				return
			}
			if out.ExitCode != drover.ExitNeedsPerson || len(out.Left) != 1 || out.Left[0].Name != "h02" || !out.Left[0].Replaced ||
				!strings.Contains(out.Left[0].Cause, "unreachable") {
				t.Fatalf("exit %d left %+v: %s", out.ExitCode, out.Left, out.Summary)
			}
			if boot != 10*time.Second {
				t.Fatalf("waited %v for the boot (sleeps %v), want boot_timeout 10s", boot, sleeps)
			}
		})
	}
}
