package distribute

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("h%03d", i+1)
	}
	return out
}

// TestPlan_Shape: seeds hang off the controller, every other host off
// the host breadth first before it, fanout at most per host.
func TestPlan_Shape(t *testing.T) {
	tr, err := Plan(names(11), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"h001": Controller, "h002": Controller,
		"h003": "h001", "h004": "h001", "h005": "h001",
		"h006": "h002", "h007": "h002", "h008": "h002",
		"h009": "h003", "h010": "h003", "h011": "h003",
	}
	for h, p := range want {
		if got := tr.Parent(h); got != p {
			t.Errorf("parent of %s = %q, want %q", h, got, p)
		}
	}
	if got := tr.Children("h001"); !slices.Equal(got, []string{"h003", "h004", "h005"}) {
		t.Errorf("children of h001 = %v", got)
	}
	if got := tr.Seeds(); !slices.Equal(got, []string{"h001", "h002"}) {
		t.Errorf("seeds = %v", got)
	}
	if d := tr.Depth(); d != 3 {
		t.Errorf("depth = %d, want 3", d)
	}
	if got := tr.Sources("h010"); !slices.Equal(got, []string{"h003", "h001", Controller}) {
		t.Errorf("sources of h010 = %q", got)
	}
	if got := tr.Sources("h002"); !slices.Equal(got, []string{Controller}) {
		t.Errorf("sources of a seed = %q", got)
	}
	if got := tr.Sources("stranger"); !slices.Equal(got, []string{Controller}) {
		t.Errorf("sources of a host not in the tree = %q", got)
	}
	if got := tr.Descendants("h001"); got != 6 {
		t.Errorf("descendants of h001 = %d, want 6 (3 children, 3 grandchildren)", got)
	}
	if got := tr.Descendants("h011"); got != 0 {
		t.Errorf("descendants of a leaf = %d", got)
	}
}

// TestPlan_Properties: for many sizes, every host has exactly one source,
// a source starts staging before the hosts it serves, nobody serves more
// than fanout hosts (the controller: seeds), the fallback chain climbs to
// the controller, and the depth is logarithmic.
func TestPlan_Properties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		n := rng.IntN(3000)
		seeds := 1 + rng.IntN(8)
		fanout := 1 + rng.IntN(8)
		hosts := names(n)
		tr, err := Plan(hosts, seeds, fanout)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[string]int{}
		for i, h := range hosts {
			pos[h] = i
		}
		served := map[string]int{}
		for i, h := range hosts {
			p := tr.Parent(h)
			served[p]++
			if p != Controller && pos[p] >= i {
				t.Fatalf("n=%d seeds=%d fanout=%d: %s fetches from %s, which stages after it", n, seeds, fanout, h, p)
			}
			if !slices.Contains(tr.Children(p), h) && p != Controller {
				t.Fatalf("%s is not among the children of its parent %s", h, p)
			}
			src := tr.Sources(h)
			if src[0] != p || src[len(src)-1] != Controller || len(src) != tr.HostDepth(h) {
				t.Fatalf("n=%d: sources of %s = %q (parent %q, depth %d)", n, h, src, p, tr.HostDepth(h))
			}
		}
		for src, k := range served {
			limit := fanout
			if src == Controller {
				limit = seeds
			}
			if k > limit {
				t.Fatalf("n=%d seeds=%d fanout=%d: %q serves %d hosts", n, seeds, fanout, src, k)
			}
		}
		// Every host but the seeds appears as exactly one host's child.
		count := 0
		for _, h := range hosts {
			count += len(tr.Children(h))
		}
		if want := max(n-seeds, 0); count != want {
			t.Fatalf("n=%d: %d child links, want %d", n, count, want)
		}
		if got, want := tr.Depth(), MaxDepth(n, seeds, fanout); got != want {
			t.Fatalf("n=%d seeds=%d fanout=%d: depth %d, MaxDepth says %d", n, seeds, fanout, got, want)
		}
		if fanout >= 2 && n > 0 {
			// log: seeds·(f^d - 1)/(f - 1) >= n holds from d = ceil(log_f(n/seeds·(f-1) + 1)).
			bound := 1
			for c, l := seeds, seeds; c < n; bound++ {
				l *= fanout
				c += l
			}
			if tr.Depth() > bound {
				t.Fatalf("n=%d seeds=%d fanout=%d: depth %d > %d", n, seeds, fanout, tr.Depth(), bound)
			}
		}
		total := 0
		for _, s := range tr.Seeds() {
			total += 1 + tr.Descendants(s)
		}
		if total != n {
			t.Fatalf("n=%d: the seeds' subtrees hold %d hosts", n, total)
		}
	}
}

// TestPlan_LogDepth: 50 hosts with 4 seeds and fanout 4 are three hops
// deep; 10,000 are seven — not 50 and 10,000.
func TestPlan_LogDepth(t *testing.T) {
	for _, c := range []struct{ n, seeds, fanout, depth int }{
		{1, 4, 4, 1}, {4, 4, 4, 1}, {5, 4, 4, 2}, {20, 4, 4, 2}, {21, 4, 4, 3}, {50, 4, 4, 3},
		{1000, 4, 4, 5}, {10000, 4, 4, 7}, {10, 1, 1, 10},
	} {
		tr, err := Plan(names(c.n), c.seeds, c.fanout)
		if err != nil {
			t.Fatal(err)
		}
		if d := tr.Depth(); d != c.depth {
			t.Errorf("%d hosts, seeds %d, fanout %d: depth %d, want %d", c.n, c.seeds, c.fanout, d, c.depth)
		}
	}
}

func TestPlan_Refuses(t *testing.T) {
	for _, c := range []struct {
		hosts         []string
		seeds, fanout int
		want          string
	}{
		{names(3), 0, 4, "seeds 0"},
		{names(3), 4, 0, "fanout 0"},
		{[]string{"a", "b", "a"}, 1, 2, "host a is listed twice"},
		{[]string{"a", ""}, 1, 2, "host 1 has no name"},
	} {
		_, err := Plan(c.hosts, c.seeds, c.fanout)
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("Plan(%q, %d, %d) = %v, want %q", c.hosts, c.seeds, c.fanout, err, c.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func BenchmarkPlan10000(b *testing.B) {
	hosts := names(10000)
	for b.Loop() {
		if _, err := Plan(hosts, 4, 4); err != nil {
			b.Fatal(err)
		}
	}
}
