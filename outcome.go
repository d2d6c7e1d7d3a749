package drover

import "strings"

// This file is the one vocabulary of how a run ends. Events are data and
// words are a view: the verdict event carries Outcome, history records it,
// and every printer — the CLI's verdict and progress view, `drover
// history`, the dashboard (GET /outcomes) — takes the exit code and the
// words from the table below and never parses a human message. The
// decision core's verdicts (rollout.Verdict) are these names.

// Outcomes of a run, as the verdict event carries them and history records
// them.
const (
	OutcomeSucceeded  = "succeeded"   // exit 0
	OutcomeRolledBack = "rolled_back" // exit 1: halted, every switched host went back
	// OutcomeHalted: halted before any host switched (every host failed
	// staging, an interrupt while staging). Exit 1 like a rollback, but
	// nothing was rolled back because nothing changed: calling it
	// "rolled back" sent an operator looking for a rollback on a first
	// deploy that had no previous release at all.
	OutcomeHalted      = "halted"
	OutcomeNeedsPerson = "needs_person" // exit 3
	OutcomePartial     = "partial"      // exit 4
	OutcomeInterrupted = "interrupted"  // the process died; recovered later
	OutcomeNothing     = "nothing_to_do"
)

// OutcomeWords is one outcome with its exit code and its words.
type OutcomeWords struct {
	Outcome string `json:"outcome"`
	// Exit is the command's exit code (a client of drover server exits
	// with it too).
	Exit int `json:"exit_code"`
	// Verdict completes "deploy ... in 3s": the summary's verb.
	Verdict string `json:"verdict"`
	// ExitWords explains the exit code after "exit N: ".
	ExitWords string `json:"exit_words"`
	// Label is the dashboard's badge, a word or two: the summary beside
	// it says the rest.
	Label string `json:"label"`
}

// outcomes is the table: every outcome once.
var outcomes = []OutcomeWords{
	{OutcomeSucceeded, ExitOK, "succeeded",
		"every targeted host is on the target release", "Succeeded"},
	{OutcomeRolledBack, ExitRolledBack, "halted and rolled back",
		"halted; the fleet is back where it started", "Rolled back"},
	{OutcomeHalted, ExitRolledBack, "halted before any host switched",
		"halted before any host switched; nothing changed", "Halted"},
	{OutcomePartial, ExitPartial, "finished with failed hosts restored",
		"finished within the failure limit; the hosts above failed and were restored", "Partial"},
	{OutcomeNeedsPerson, ExitNeedsPerson, "needs a person",
		"needs a person: see the hosts above", "Needs a person"},
	{OutcomeInterrupted, ExitNeedsPerson, "was interrupted",
		"interrupted; the next deploy or `drover resume` recovers it", "Interrupted"},
	{OutcomeNothing, ExitOK, "had nothing to do",
		"every targeted host was already on the target release", "Nothing to do"},
}

// Outcomes returns the table, in a stable order.
func Outcomes() []OutcomeWords { return append([]OutcomeWords(nil), outcomes...) }

// OutcomeOf returns outcome's row. An unknown outcome, or "" (a run that
// stopped without a verdict), is a person's to look at: the needs_person
// row, so that no caller reports success for a name it does not know.
func OutcomeOf(outcome string) OutcomeWords {
	for _, o := range outcomes {
		if o.Outcome == outcome {
			return o
		}
	}
	for _, o := range outcomes {
		if o.Outcome == OutcomeNeedsPerson {
			return o
		}
	}
	panic("drover: no needs_person outcome")
}

// Records written before OutcomeHalted existed call a deploy that halted
// before any host switched rolled_back, "deploy halted and rolled back".
// store/sqlite relabelled its rows once (migration 0006_halted.sql);
// store/file and store/etcd, which have no migrations, relabel each record
// as they read it with the same rule: a rolled_back deploy whose journal
// has no switch step switched nothing.

// MayBeLegacyHalted reports whether rec may be such a record: only then is
// its journal worth reading for RelabelHalted.
func MayBeLegacyHalted(rec DeployRecord) bool {
	return rec.Kind == KindDeploy && rec.Outcome == OutcomeRolledBack && !rec.Finished.IsZero()
}

// RelabelHalted returns rec recorded as halted when it is a legacy record of
// a deploy that switched no host (journal is its journal), else rec.
func RelabelHalted(rec DeployRecord, journal []JournalEntry) DeployRecord {
	if !MayBeLegacyHalted(rec) {
		return rec
	}
	for _, e := range journal {
		if e.Step == journalStepSwitch {
			return rec
		}
	}
	rec.Outcome = OutcomeHalted
	if rest, ok := strings.CutPrefix(rec.Summary, "deploy "+legacyRolledBackWords); ok {
		rec.Summary = "deploy " + OutcomeOf(OutcomeHalted).Verdict + rest
	}
	return rec
}

// journalStepSwitch is the journal's name of the step that moves a host's
// current release (rollout.StepSwitch).
const journalStepSwitch = "switch"

// legacyRolledBackWords are the rolled_back verdict's words as summaries
// have always said them.
const legacyRolledBackWords = "halted and rolled back"
