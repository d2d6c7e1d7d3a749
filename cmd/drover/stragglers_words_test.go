package main

import "testing"

func TestStragglerCountWords(t *testing.T) {
	for _, c := range []struct {
		n, total int
		want     string
	}{
		{3, 6, "3 of 6 hosts are stragglers"},
		{1, 3, "1 of 3 hosts is a straggler"},
		{1, 1, "1 of 1 host is a straggler"},
		{2, 2, "2 of 2 hosts are stragglers"},
	} {
		if got := stragglerCount(c.n, c.total); got != c.want {
			t.Errorf("stragglerCount(%d, %d) = %q, want %q", c.n, c.total, got, c.want)
		}
	}
}
