package drover

import "slices"

// exitSeverity orders the exit codes (error.go) from worst to best, for a
// run of several services whose exit code is the worst of theirs: a fleet
// that needs a person first, then one rolled back, one with failed hosts,
// one that did not run because of the lock, one with bad input.
var exitSeverity = []int{ExitNeedsPerson, ExitRolledBack, ExitPartial, ExitLocked, ExitUsage, ExitOK}

// WorstExit is the worst of codes by that order, the first of equals;
// ExitOK for none. A code not in the order counts as bad as
// ExitNeedsPerson: a run that ended in a way nobody foresaw must not read
// as a success.
func WorstExit(codes []int) int {
	worst := ExitOK
	rank := func(c int) int {
		if i := slices.Index(exitSeverity, c); i >= 0 {
			return i
		}
		return 0
	}
	for _, c := range codes {
		if rank(c) < rank(worst) {
			worst = c
		}
	}
	return worst
}
