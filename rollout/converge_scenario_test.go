package rollout

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Golden scenario tests of Converge, in the format of scenario_test.go
// (blocks of a command, "----", the expected output; -update rewrites),
// one file per fleet under testdata/converge/.
//
// Commands:
//
//	converge [rounds=N] [replace_after=N] hosts=H1,H2,...
//	    A new Converge over those hosts, none on the release. Prints ok.
//	down HOST... / up HOST...
//	    The hosts stop (start) answering surveys. Prints nothing.
//	round [HOST=failed|stuck|down|on]... [halt="REASON"]
//	    Surveys (a host is behind until a round put it on; one that is
//	    down is unreachable; a host a round left stuck reads as on the
//	    release, as one whose restore failed after its switch does),
//	    calls Next and prints the step or, once done, how it ended and
//	    Left. Then the round's deploy: each host deployed to ends on the
//	    release unless named failed, stuck or down (a replaced host that
//	    never answered); Ended gets their causes and halt.
func TestConvergeScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/converge/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no converge scenarios in testdata/converge/ (%v)", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			s := &convergeScenario{}
			runGolden(t, file, func(b block) []string {
				got, err := s.exec(b.cmd[0])
				if err != nil {
					got = []string{"error: " + err.Error()}
				}
				return got
			})
		})
	}
}

type convergeScenario struct {
	c     *Converge
	hosts []string
	on    map[string]bool // on the release per the host's state
	stuck map[string]bool
	down  map[string]bool
}

func (s *convergeScenario) exec(line string) ([]string, error) {
	f, err := fields(line)
	if err != nil {
		return nil, err
	}
	opts := map[string]string{}
	var args []string
	for _, a := range f[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			opts[k] = unquote(v)
		} else {
			args = append(args, a)
		}
	}
	switch f[0] {
	case "converge":
		p := ConvergePolicy{}
		p.MaxRounds, _ = strconv.Atoi(opts["rounds"])
		p.ReplaceAfter, _ = strconv.Atoi(opts["replace_after"])
		s.c = NewConverge(p)
		s.hosts = strings.Split(opts["hosts"], ",")
		s.on, s.stuck, s.down = map[string]bool{}, map[string]bool{}, map[string]bool{}
		return []string{"ok"}, nil
	case "down", "up":
		for _, h := range args {
			s.down[h] = f[0] == "down"
		}
		return nil, nil
	case "round":
		return s.round(opts), nil
	}
	return nil, fmt.Errorf("unknown command %q", f[0])
}

func (s *convergeScenario) round(outcome map[string]string) []string {
	sv := ConvergeSurvey{Unreachable: map[string]string{}, Targets: s.hosts}
	for _, h := range s.hosts {
		switch {
		case s.down[h]:
			sv.Unreachable[h] = "connection refused"
		case !s.on[h]:
			sv.Behind = append(sv.Behind, h)
		}
	}
	st := s.c.Next(sv)
	if st.Done {
		out := []string{fmt.Sprintf("done %s after round %d", st.End, st.Round)}
		for _, l := range s.c.Left(st.Behind) {
			out = append(out, fmt.Sprintf("  left %s: %s (%d rounds, replaced=%v)", l.Name, l.Cause, l.Rounds, l.Replaced))
		}
		return out
	}
	out := []string{fmt.Sprintf("round %d/%d behind=%v deploy=%v", st.Round, st.Rounds, st.Behind, st.Deploy)}
	for _, x := range []struct {
		name string
		list []string
	}{{"replace", st.Replace}, {"skipped", st.Skipped}, {"force", st.Force}} {
		if len(x.list) > 0 {
			out = append(out, fmt.Sprintf("  %s %v", x.name, x.list))
		}
	}
	if st.Wait != 0 && st.Round == st.Rounds {
		out = append(out, "  waits after the last round")
	}
	r := ConvergeRound{Halted: outcome["halt"], Causes: map[string]string{}}
	for _, h := range st.Deploy {
		if slices.Contains(st.Replace, h) {
			s.down[h] = false // a replacement boots
		}
		switch what := outcome[h]; what {
		case "failed":
			s.on[h] = false
			r.Causes[h] = "failed: check in round " + strconv.Itoa(st.Round)
		case "stuck":
			// Switched, then its restore failed: its state names the
			// release, its checks never passed.
			s.on[h] = true
			r.Causes[h] = "stuck: restore failed in round " + strconv.Itoa(st.Round)
		case "down":
			s.down[h] = true
			r.Causes[h] = "unreachable: did not answer within boot_timeout"
		default:
			s.on[h] = true
		}
	}
	s.c.Ended(r)
	return out
}
