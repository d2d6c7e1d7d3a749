package runner

import (
	"context"
	"strings"

	"drover"
	"drover/rollout"
)

// stepFunc runs one action and returns its result. It must honor ctx's
// deadline and never panic.
// a is a pointer, as on the whole path of a step, to keep the frames of a
// goroutine waiting on its host small (executor.retrying).
type stepFunc func(ctx context.Context, a *rollout.Action) rollout.Result

// report is m's outcome after drive returned err: a drive stopped by an
// internal error needs a person, whatever the machine had decided so far.
func report(m *rollout.Machine, err error) rollout.Report {
	rep := m.Outcome()
	if err != nil {
		rep.Verdict = rollout.NeedsPerson
		if rep.HaltReason != "" {
			rep.HaltReason += "; "
		}
		rep.HaltReason += err.Error()
	}
	return rep
}

// noteEvents maps the core's note kinds to event kinds. Event kinds are a
// versioned contract (drover.EventSchema); a note kind the runner does not
// know becomes a notice instead of leaking into the JSON as a kind no
// consumer was told about. The core's verdict note is not passed on:
// finish reports the run's verdict once, with its outcome and summary.
var noteEvents = map[rollout.NoteKind]string{
	rollout.NoteStageStart:     drover.EventStageStart,
	rollout.NoteStageDone:      drover.EventStageDone,
	rollout.NoteGroupStart:     drover.EventGroupStart,
	rollout.NoteGroupDone:      drover.EventGroupDone,
	rollout.NoteHostDone:       drover.EventHostDone,
	rollout.NoteHostFailed:     drover.EventHostFailed,
	rollout.NoteHostRestored:   drover.EventHostRestored,
	rollout.NoteHostStuck:      drover.EventHostStuck,
	rollout.NoteHalt:           drover.EventHalt,
	rollout.NoteAbort:          drover.EventAbort,
	rollout.NoteRollbackStart:  drover.EventRollback,
	rollout.NoteHostRolledBack: drover.EventHostRolledBack,
	rollout.NoteGateStart:      drover.EventGateStart,
	rollout.NoteGateDone:       drover.EventGateDone,
	rollout.NoteGateFailed:     drover.EventGateFailed,
	rollout.NoteGateSkipped:    drover.EventGateSkipped,
}

func (r *Runner) emitNote(deployID string, n rollout.Note) {
	if n.Kind != rollout.NoteVerdict {
		r.emit(r.noteEvent(deployID, n))
	}
}

// noteEvent is the event of a core's note.
func (r *Runner) noteEvent(deployID string, n rollout.Note) drover.Event {
	kind, ok := noteEvents[n.Kind]
	if !ok {
		kind = drover.EventNotice
	}
	return drover.Event{Time: n.Time, Deploy: deployID, Kind: kind, Group: n.Group, Host: n.Host, Gate: n.Gate, Message: n.Message}
}

// outcomeOf maps an error from a host operation to a step outcome: a lost
// host is "unreachable", which rollback skips and reports, not "failed".
func outcomeOf(err error) rollout.Outcome {
	if err == nil {
		return rollout.OK
	}
	if drover.ErrorCode(err) == drover.EUNREACHABLE {
		return rollout.Unreachable
	}
	return rollout.Failed
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// outputTail is what the journal keeps as a failed step's output: the
// reason carries the hook's or check's own words (rollout.Result has no
// separate output), cut to drover.MaxOutputTail at a UTF-8 boundary.
func outputTail(res rollout.Result) string {
	if res.Outcome == rollout.OK {
		return ""
	}
	s := res.Reason
	if len(s) <= drover.MaxOutputTail {
		return s
	}
	s = s[len(s)-drover.MaxOutputTail:]
	for i := 0; i < len(s) && i < 4; i++ {
		if s[i]&0xc0 != 0x80 {
			return s[i:]
		}
	}
	return s
}
