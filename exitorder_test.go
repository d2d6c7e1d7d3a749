package drover

import "testing"

func TestWorstExit(t *testing.T) {
	for _, tt := range []struct {
		codes []int
		want  int
	}{
		{nil, ExitOK},
		{[]int{ExitOK, ExitOK}, ExitOK},
		{[]int{ExitUsage, ExitLocked}, ExitLocked},
		{[]int{ExitLocked, ExitPartial}, ExitPartial},
		{[]int{ExitPartial, ExitRolledBack, ExitOK}, ExitRolledBack},
		{[]int{ExitRolledBack, ExitNeedsPerson}, ExitNeedsPerson},
		{[]int{ExitNeedsPerson, 42}, ExitNeedsPerson},
		{[]int{ExitOK, 42, ExitNeedsPerson}, 42},
	} {
		if got := WorstExit(tt.codes); got != tt.want {
			t.Errorf("WorstExit(%v) = %d, want %d", tt.codes, got, tt.want)
		}
	}
}
