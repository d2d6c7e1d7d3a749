package rollout

import (
	"fmt"
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
		st := c.Next(behind)
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
	if st := c.Next(nil); !st.Done {
		t.Fatalf("after done: %+v", st)
	}
}

func TestConvergeAlreadyConverged(t *testing.T) {
	st := NewConverge(ConvergePolicy{}).Next(nil)
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
			st := c.Next([]string{"h01"})
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
		st := c.Next([]string{"h09"})
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
