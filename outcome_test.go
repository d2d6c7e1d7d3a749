package drover

import (
	"net/http"
	"testing"
)

// TestOutcomeTable: each outcome once, with its exit code and words; a
// name the table does not know is a person's to look at, never success.
func TestOutcomeTable(t *testing.T) {
	exit := map[string]int{
		OutcomeSucceeded: ExitOK, OutcomeRolledBack: ExitRolledBack, OutcomeHalted: ExitRolledBack,
		OutcomePartial: ExitPartial, OutcomeNeedsPerson: ExitNeedsPerson, OutcomeInterrupted: ExitNeedsPerson, OutcomeNothing: ExitOK,
	}
	seen := map[string]bool{}
	for _, o := range Outcomes() {
		if seen[o.Outcome] {
			t.Errorf("outcome %s twice", o.Outcome)
		}
		seen[o.Outcome] = true
		if want, ok := exit[o.Outcome]; !ok || o.Exit != want || o.Verdict == "" || o.ExitWords == "" || o.Label == "" {
			t.Errorf("%+v: want exit %d and words", o, want)
		}
	}
	if len(seen) != len(exit) {
		t.Errorf("table has %d outcomes, want %d", len(seen), len(exit))
	}
	for _, name := range []string{"", "exploded"} {
		if o := OutcomeOf(name); o.Outcome != OutcomeNeedsPerson || o.Exit != ExitNeedsPerson {
			t.Errorf("OutcomeOf(%q) = %+v, want needs_person", name, o)
		}
	}
}

// TestErrorCodeTable: every code maps to an exit code, an HTTP status and
// a wire name that maps back; an unknown code is internal.
func TestErrorCodeTable(t *testing.T) {
	want := map[string][2]int{
		EINVALID: {ExitUsage, http.StatusBadRequest}, ENOTFOUND: {ExitUsage, http.StatusNotFound},
		ELOCKED: {ExitLocked, http.StatusConflict}, EUNREACHABLE: {ExitNeedsPerson, http.StatusBadGateway},
		EFAILED: {ExitNeedsPerson, http.StatusBadGateway}, ETIMEOUT: {ExitNeedsPerson, http.StatusGatewayTimeout},
		EINTERNAL: {ExitNeedsPerson, http.StatusInternalServerError}, EUNAUTHORIZED: {ExitUsage, http.StatusUnauthorized},
		EFORBIDDEN: {ExitUsage, http.StatusForbidden},
	}
	for code, w := range want {
		if got := ExitCode(Errorf(code, "x")); got != w[0] {
			t.Errorf("%s: exit %d, want %d", code, got, w[0])
		}
		if got := HTTPStatus(code); got != w[1] {
			t.Errorf("%s: HTTP %d, want %d", code, got, w[1])
		}
		if back := CodeOfWire(WireCode(code)); back != code {
			t.Errorf("%s: wire %s maps back to %s", code, WireCode(code), back)
		}
	}
	if len(errorCodes) != len(want) {
		t.Errorf("errorCodes has %d codes, the test knows %d", len(errorCodes), len(want))
	}
	if ExitCode(nil) != ExitOK || HTTPStatus("nope") != http.StatusInternalServerError || CodeOfWire("ENOPE") != EINTERNAL {
		t.Error("unknown codes must be internal")
	}
}
