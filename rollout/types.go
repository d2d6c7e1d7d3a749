package rollout

import (
	"time"

	"drover"
)

// Step is one thing done to one host.
type Step string

// Steps, in the order a host goes through them.
//
// Deploy path:   stage → (every host staged) → depool → switch → restart → check → repool
// Restore path:  depool → restore → restart → check → repool
const (
	StepStage   Step = "stage"   // receive, unpack, render, validate
	StepDepool  Step = "depool"  // out of rotation and idle
	StepSwitch  Step = "switch"  // current -> the new release
	StepRestart Step = "restart" // restart hook
	StepCheck   Step = "check"   // every check, retried until its timeout
	StepRepool  Step = "repool"  // back into rotation
	StepRestore Step = "restore" // current -> the pre-deploy snapshot
	// StepGate is a group-level step, no host's: a gate of kind GateRun
	// (a smoke test, an invariant comparison, an approval) that must pass
	// before the deploy moves past the group.
	StepGate Step = "gate"
)

// GateKind says how a gate is passed.
type GateKind string

// Gate kinds.
const (
	// GateRun is run by the runner (Action.Step StepGate, Action.Gate its
	// name); a failed result halts the deploy and rolls it back.
	GateRun GateKind = "run"
	// GateWait passes once Wait has elapsed (a bake time), measured with
	// the now passed to Ready; Ready.Wake says when to call again.
	GateWait GateKind = "wait"
)

// Gate is something that must pass after every host of a group is done and
// before the next group starts (or the deploy ends).
type Gate struct {
	Name string
	Kind GateKind
	Wait time.Duration // GateWait
	// Skip, when not "", is the reason an operator gave for skipping this
	// gate in an emergency (drover deploy --skip-gate -m). The Machine
	// records the gate as skipped with the reason and moves past it: a
	// skipped gate is never reported as passed, so the journal and the
	// events say the gate did not run, and why.
	Skip string
}

// Outcome is how a step ended.
type Outcome string

// Outcomes.
const (
	OK          Outcome = "ok"
	Failed      Outcome = "failed"
	Unreachable Outcome = "unreachable"
	// NotRun: the runner handed the step out but never started it,
	// because the Machine was frozen before it could (the journal write
	// the step waited for was refused: the deploy lock was lost). Only
	// accepted after Freeze; the host is as it was before the step.
	NotRun Outcome = "not_run"
)

// Mode says what a Machine is for.
type Mode string

// Modes.
const (
	// ModeDeploy stages then promotes, rolling back past a failure limit.
	ModeDeploy Mode = "deploy"
	// ModeRollback takes every host of the plan through the restore path:
	// used by `drover rollback` and by crash recovery.
	ModeRollback Mode = "rollback"
)

// Plan is the input of a Machine: the groups in deploy order and, per
// host, what the runner found before starting.
type Plan struct {
	Mode   Mode
	Groups []GroupPlan
	// StageParallelism bounds hosts staging at once (>= 1).
	StageParallelism int
	// Strategy is StrategyRolling ("") or StrategyBlueGreen (bluegreen.go).
	Strategy Strategy
}

// GroupPlan is one group.
type GroupPlan struct {
	Name         string
	Hosts        []HostPlan // in deploy order
	Batch        int        // >= 1
	FailureLimit int        // >= 0; exceeded means failures > FailureLimit
	// Gates run in order once the group's hosts are done (ModeDeploy).
	Gates []Gate
}

// HostPlan is one host.
type HostPlan struct {
	Name string
	// From is the release the host was on before ("" = none). For traces.
	From string
	// Skip: already on the target release; counted done, never touched.
	Skip bool
}

// Action is a step the runner must run now.
type Action struct {
	Host  string // "" for a gate
	Group string
	Step  Step
	// Gate names the gate for StepGate.
	Gate string
	// Restoring is true for steps of the restore path.
	Restoring bool
}

// Result is a finished step, fed back with Machine.Report.
type Result struct {
	Host    string // "" for a gate
	Step    Step
	Gate    string // for StepGate
	Outcome Outcome
	Reason  string
	// Unchanged, on a failed switch, says the step failed before it
	// changed anything on the host (a before_promote hook refused): the
	// host was never switched, so it only goes back into rotation. Without
	// it a failed switch counts as switched, because a switch that failed
	// half-way may have swapped the link.
	Unchanged bool
}

// Note is something that happened, for people and the trace.
type Note struct {
	Time  time.Time
	Kind  NoteKind
	Group string
	Host  string
	// Gate names the gate of a gate note (NoteGateStart, ...), so that no
	// consumer has to find it in Message.
	Gate string
	// Verdict is the verdict of NoteVerdict.
	Verdict Verdict
	Message string
}

// NoteKind says what a Note reports.
type NoteKind string

// Note kinds. The runner maps the ones it knows to drover.Event kinds and
// passes the rest on as notices.
const (
	NoteStageStart     NoteKind = "stage_start"      // staging begins: how many hosts, how many at once
	NoteStageDone      NoteKind = "stage_done"       // every host staged (or failed within the limits)
	NoteGroupStart     NoteKind = "group_start"      // a group's promotion begins
	NoteGroupDone      NoteKind = "group_done"       // every host of the group finished its path
	NoteHostDone       NoteKind = "host_done"        // a host is on the new release, checked and repooled
	NoteHostFailed     NoteKind = "host_failed"      // a counted failure: reason and "n/limit failures in group"
	NoteHostRestored   NoteKind = "host_restored"    // a failed host is back on its snapshot (or repooled, never switched)
	NoteHostStuck      NoteKind = "host_stuck"       // a restore-path step failed or the host was lost: needs a person
	NoteHalt           NoteKind = "halt"             // failure limit exceeded or operator interrupt
	NoteAbort          NoteKind = "abort"            // a second interrupt: the rollback starts no more hosts
	NoteFreeze         NoteKind = "freeze"           // the deploy lock was lost: no step starts, nothing is rolled back
	NoteRollbackStart  NoteKind = "rollback_start"   // rollback of every switched host begins
	NoteHostRolledBack NoteKind = "host_rolled_back" // a host is back on its snapshot after a rollback
	NoteVerdict        NoteKind = "verdict"          // the end
	NoteGateStart      NoteKind = "gate_start"       // a group's gate begins (a bake: until when)
	NoteGateDone       NoteKind = "gate_done"        // a gate passed
	NoteGateFailed     NoteKind = "gate_failed"      // a gate failed: the deploy halts
	NoteGateSkipped    NoteKind = "gate_skipped"     // an operator skipped the gate (Gate.Skip): the reason
)

// NoteKinds lists every note kind the Machine reports.
var NoteKinds = []NoteKind{
	NoteStageStart, NoteStageDone, NoteGroupStart, NoteGroupDone, NoteHostDone, NoteHostFailed,
	NoteHostRestored, NoteHostStuck, NoteHalt, NoteAbort, NoteFreeze, NoteRollbackStart,
	NoteHostRolledBack, NoteVerdict, NoteGateStart, NoteGateDone, NoteGateFailed, NoteGateSkipped,
}

// Ready is what a Machine hands out from one call to Ready: actions to
// start now and notes produced since the previous call.
type Ready struct {
	Actions []Action
	Notes   []Note
	// Wake, when not zero, is when the Machine wants Ready called again
	// even if no result arrives: the end of a bake time.
	Wake time.Time
}

// Verdict is how a deploy ended.
type Verdict string

// Verdicts. Each is the drover outcome of the same name, which maps it to
// an exit code and words (outcome.go at the root).
const (
	Running     Verdict = ""
	Succeeded   Verdict = drover.OutcomeSucceeded   // exit 0
	RolledBack  Verdict = drover.OutcomeRolledBack  // exit 1: switched hosts went back
	Halted      Verdict = drover.OutcomeHalted      // exit 1: halted before any host switched
	NeedsPerson Verdict = drover.OutcomeNeedsPerson // exit 3
	Partial     Verdict = drover.OutcomePartial     // exit 4
)

// Verdicts lists every verdict a finished Machine reaches.
var Verdicts = []Verdict{Succeeded, RolledBack, Halted, NeedsPerson, Partial}

// HostStatus is a host's final standing.
type HostStatus string

// Host statuses.
const (
	HostPending     HostStatus = "pending"
	HostSkipped     HostStatus = "skipped"     // already on target
	HostDone        HostStatus = "done"        // on the new release, checked
	HostFailed      HostStatus = "failed"      // failed, restored (or never switched)
	HostRolledBack  HostStatus = "rolled_back" // switched, then back on its snapshot
	HostUnreachable HostStatus = "unreachable" // lost; needs a person if switched
	HostStuck       HostStatus = "stuck"       // restore failed; needs a person
)

// HostReport is one host's final standing and why.
type HostReport struct {
	Name     string
	Group    string
	Status   HostStatus
	Switched bool   // still on the new release (Status done) or was, before restore
	Reason   string // why it failed, if it did
	// From is the release the host was on before (HostPlan.From; "" =
	// none): where a failed or rolled-back host went back to, so the
	// summary names the same release as the host's own line.
	From string
}

// Report is the end of a Machine.
type Report struct {
	Verdict Verdict
	// HaltReason is why the deploy halted ("" if it did not).
	HaltReason string
	Hosts      []HostReport // in plan order
}
