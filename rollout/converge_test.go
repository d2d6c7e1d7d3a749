package rollout

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConvergeRounds drives a fleet where hosts recover after a number of
// deploys, and prints the rounds the way converge reports them.
func TestConvergeRounds(t *testing.T) {
	// recoverAfter: a host gets on target at its n-th deploy; 0 never.
	recoverAfter := map[string]int{"h01": 1, "h02": 2, "h03": 3, "h04": 0}
	deploys := map[string]int{}
	on := map[string]bool{}
	c := NewConverge(ConvergePolicy{MaxRounds: 4, Wait: time.Second, MaxWait: 3 * time.Second, ReplaceAfter: 2, Seed: 7})
	var trace []string
	for i := 0; i < 10; i++ {
		var behind []string
		for h := range recoverAfter {
			if !on[h] {
				behind = append(behind, h)
			}
		}
		st := c.Next(ConvergeSurvey{Behind: behind})
		if st.Done {
			trace = append(trace, fmt.Sprintf("done converged=%v behind=%v", st.Converged, st.Behind))
			break
		}
		trace = append(trace, fmt.Sprintf("round %d/%d deploy=%v replace=%v", st.Round, st.Rounds, st.Deploy, st.Replace))
		for _, h := range st.Deploy {
			deploys[h]++
			if n := recoverAfter[h]; n > 0 && deploys[h] >= n {
				on[h] = true
			}
		}
		if st.Round < st.Rounds && (st.Wait < time.Second<<(st.Round-1)/2 || st.Wait > min(time.Second<<(st.Round-1), 3*time.Second)) {
			t.Errorf("round %d: wait %v outside [w/2, w]", st.Round, st.Wait)
		}
		if st.Round == st.Rounds && st.Wait != 0 {
			t.Errorf("last round waits %v; nothing follows it but the final survey", st.Wait)
		}
	}
	want := []string{
		"round 1/4 deploy=[h01 h02 h03 h04] replace=[]",
		"round 2/4 deploy=[h02 h03 h04] replace=[]",
		"round 3/4 deploy=[h03 h04] replace=[h03 h04]",
		"round 4/4 deploy=[h04] replace=[]",
		"done converged=false behind=[h04]",
	}
	if got := strings.Join(trace, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("trace:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if got := c.Replaced(); !slices.Equal(got, []string{"h03", "h04"}) {
		t.Fatalf("replaced %v", got)
	}
	// Done sticks.
	if st := c.Next(ConvergeSurvey{}); !st.Done {
		t.Fatalf("after done: %+v", st)
	}
}

func TestConvergeAlreadyConverged(t *testing.T) {
	st := NewConverge(ConvergePolicy{}).Next(ConvergeSurvey{})
	if !st.Done || !st.Converged || st.Round != 0 || len(st.Deploy) != 0 {
		t.Fatalf("%+v", st)
	}
}

// TestConvergeWaitsGrowCappedSeeded: waits double up to the cap, and the
// same seed replays the same waits.
func TestConvergeWaitsGrowCappedSeeded(t *testing.T) {
	waits := func(seed int64) []time.Duration {
		c := NewConverge(ConvergePolicy{MaxRounds: 8, Wait: 100 * time.Millisecond, MaxWait: time.Second, Seed: seed})
		var out []time.Duration
		for {
			st := c.Next(ConvergeSurvey{Behind: []string{"h01"}})
			if st.Done {
				return out
			}
			out = append(out, st.Wait)
		}
	}
	a, b, other := waits(1), waits(1), waits(2)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different waits: %v %v", a, b)
	}
	if slices.Equal(a, other) {
		t.Fatalf("different seeds, same waits: %v", a)
	}
	if len(a) != 8 {
		t.Fatalf("%d rounds, want 8: %v", len(a), a)
	}
	caps := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, c := range caps {
		c *= time.Millisecond
		if a[i] < c/2 || a[i] > c {
			t.Errorf("wait after round %d: %v, want in [%v, %v]", i+1, a[i], c/2, c)
		}
	}
	if a[7] != 0 {
		t.Errorf("wait after the last round: %v, want 0", a[7])
	}
}

// TestConvergeReplacesOncePerHost: a host that stays behind is replaced
// once, after ReplaceAfter failed rounds, never again.
func TestConvergeReplacesOncePerHost(t *testing.T) {
	c := NewConverge(ConvergePolicy{MaxRounds: 6, ReplaceAfter: 2})
	n := 0
	var at []int
	for {
		st := c.Next(ConvergeSurvey{Behind: []string{"h09"}})
		if st.Done {
			break
		}
		if len(st.Replace) > 0 {
			n++
			at = append(at, st.Round)
		}
	}
	if n != 1 || at[0] != 3 {
		t.Fatalf("replaced %d times at rounds %v, want once at round 3", n, at)
	}
	if c.Failures("h09") != 6 {
		t.Fatalf("failures %d, want 6", c.Failures("h09"))
	}
}

// TestConvergeProperties checks, over random fleets and rounds, what
// every converge must hold: it deploys only to hosts behind, never to one
// that did not answer unless it replaces it, replaces a host at most
// once, never runs a round after a halted one, never runs more than
// MaxRounds, and stays done.
func TestConvergeProperties(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		n := 1 + rng.IntN(8)
		p := ConvergePolicy{MaxRounds: 1 + rng.IntN(6), ReplaceAfter: rng.IntN(3), Seed: int64(seed)}
		c := NewConverge(p)
		on := map[string]bool{}
		replacedAt := map[string]int{}
		halted := false
		rounds := 0
		for i := 0; i < 20; i++ {
			sv := ConvergeSurvey{Unreachable: map[string]string{}}
			for h := 0; h < n; h++ {
				name := fmt.Sprintf("h%02d", h)
				switch {
				case on[name]:
				case rng.IntN(4) == 0:
					sv.Unreachable[name] = "down"
				default:
					sv.Behind = append(sv.Behind, name)
				}
			}
			st := c.Next(sv)
			if st.Done {
				if halted && st.End != ConvergeHalted {
					t.Fatalf("seed %d: halted round, then end %q", seed, st.End)
				}
				if again := c.Next(sv); !again.Done {
					t.Fatalf("seed %d: done did not stick", seed)
				}
				break
			}
			if halted {
				t.Fatalf("seed %d: round %d after a halted round", seed, st.Round)
			}
			rounds++
			if rounds > p.MaxRounds || st.Round != rounds {
				t.Fatalf("seed %d: round %d (%d run) of %d", seed, st.Round, rounds, p.MaxRounds)
			}
			for _, h := range st.Deploy {
				_, down := sv.Unreachable[h]
				if !slices.Contains(sv.Behind, h) && !(down && slices.Contains(st.Replace, h)) {
					t.Fatalf("seed %d round %d: deploys to %s, neither behind nor a replaced host", seed, st.Round, h)
				}
			}
			for _, h := range st.Replace {
				if _, again := replacedAt[h]; again {
					t.Fatalf("seed %d: %s replaced twice", seed, h)
				}
				replacedAt[h] = st.Round
				if !slices.Contains(st.Deploy, h) {
					t.Fatalf("seed %d: replaced %s not deployed to", seed, h)
				}
			}
			if len(st.Deploy)+len(st.Skipped) != len(st.Behind) {
				t.Fatalf("seed %d: deploy %v + skipped %v != behind %v", seed, st.Deploy, st.Skipped, st.Behind)
			}
			r := ConvergeRound{Causes: map[string]string{}}
			for _, h := range st.Deploy {
				if rng.IntN(2) == 0 {
					on[h] = true
				} else {
					r.Causes[h] = "failed"
				}
			}
			if rng.IntN(6) == 0 {
				r.Halted, halted = "limit", true
			}
			c.Ended(r)
		}
	}
}

// TestConvergeStuckHostOnTheReleaseIsDeployedAgain: a host whose restore
// failed after its switch reads as on the release; the round left it off
// (its checks failed), so it stays behind and the next round deploys to
// it without skipping, until a round ends with it done.
func TestConvergeStuckHostOnTheReleaseIsDeployedAgain(t *testing.T) {
	c := NewConverge(ConvergePolicy{MaxRounds: 4})
	all := []string{"h01", "h02"}
	st := c.Next(ConvergeSurvey{Behind: all, Targets: all})
	c.Ended(ConvergeRound{Causes: map[string]string{"h02": "stuck: restore failed"}})
	// The survey finds both on the release.
	st = c.Next(ConvergeSurvey{Targets: all})
	if st.Done || !slices.Equal(st.Deploy, []string{"h02"}) || !slices.Equal(st.Force, []string{"h02"}) {
		t.Fatalf("round 2: %+v", st)
	}
	c.Ended(ConvergeRound{})
	if st = c.Next(ConvergeSurvey{Targets: all}); !st.Done || !st.Converged {
		t.Fatalf("after h02 came right: %+v", st)
	}
	// A host that left the targets is not behind any more.
	c = NewConverge(ConvergePolicy{MaxRounds: 4})
	c.Next(ConvergeSurvey{Behind: all, Targets: all})
	c.Ended(ConvergeRound{Causes: map[string]string{"h02": "stuck"}})
	if st = c.Next(ConvergeSurvey{Targets: []string{"h01"}}); !st.Converged {
		t.Fatalf("h02 left the inventory: %+v", st)
	}
}
