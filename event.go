package drover

import "time"

// Event is one thing that happened during a deploy, for people (text
// output) and programs (--output json). The JSON form is versioned by
// EventSchema.
type Event struct {
	Schema int       `json:"schema"`
	Time   time.Time `json:"time"`
	Deploy string    `json:"deploy"`
	Kind   string    `json:"kind"`
	Group  string    `json:"group,omitempty"`
	Host   string    `json:"host,omitempty"`
	Step   string    `json:"step,omitempty"`
	// Restoring marks a step of the restore path (undoing a failed host,
	// a rollback, a recovery) rather than of the path to the new release.
	Restoring bool `json:"restoring,omitempty"`
	// Outcome is a step's outcome on step_done (ok, failed, unreachable)
	// and how the run ended on verdict (an Outcome* of outcome.go).
	// Consumers switch on it and never parse Message, which is for people.
	Outcome string `json:"outcome,omitempty"`
	// Gate names the gate of gate_start, gate_done, gate_failed and
	// gate_skipped: GateApprove while a group waits for a person, "bake",
	// "smoke NAME", ...
	Gate    string `json:"gate,omitempty"`
	Message string `json:"message,omitempty"`
	// Elapsed is the step's duration, for step_done.
	Elapsed time.Duration `json:"elapsed_ns,omitempty"`
	// Timeout, on step_start, bounds the step (every attempt of it): it
	// ends by Time + Timeout. After Ctrl-C the running steps are let
	// finish, and the operator is shown how long each may still take.
	Timeout time.Duration `json:"timeout_ns,omitempty"`
	// Operation, Release, Version and Groups are set on deploy_start only.
	// Operation is what the run does: deploy, rollback or recover.
	Operation string `json:"operation,omitempty"`
	Release   string `json:"release,omitempty"`
	Version   string `json:"version,omitempty"`
	// Groups is the plan, in deploy order, so that a consumer (the
	// terminal progress view, a CI dashboard) knows every host and batch
	// before the first step reports.
	Groups []EventGroup `json:"groups,omitempty"`
	// Analysis, on analysis events only, is one evaluation of a canary
	// analysis.
	Analysis *AnalysisEval `json:"analysis,omitempty"`
	// Overrides, on deploy_start only, are the checks, analyses and gates
	// an operator skipped for this deploy, with the reason (override.go).
	Overrides []Override `json:"overrides,omitempty"`
}

// EventGroup is one group of a run's plan, carried by deploy_start.
type EventGroup struct {
	Name string `json:"name"`
	// Hosts are the targeted hosts of the group in deploy order, skipped
	// ones included.
	Hosts []string `json:"hosts"`
	// Skipped are the hosts already on the target, never touched.
	Skipped      []string `json:"skipped,omitempty"`
	Batch        int      `json:"batch"`
	FailureLimit int      `json:"failure_limit"`
}

// EventSchema is the version of the Event JSON form (docs/events.md). Adding
// a field or an event kind keeps the version; renaming or removing one, or
// changing what a field means, bumps it.
const EventSchema = 1

// Event kinds.
const (
	EventDeployStart = "deploy_start"
	EventStepStart   = "step_start"
	EventStepDone    = "step_done"
	EventGroupStart  = "group_start"
	EventGroupDone   = "group_done"
	EventHostFailed  = "host_failed"
	EventHalt        = "halt"
	EventRollback    = "rollback_start"
	EventNotice      = "notice"
	EventVerdict     = "verdict"
	// Kinds the decision core reports and the runner passes on as they are.
	EventStageStart     = "stage_start"
	EventStageDone      = "stage_done"
	EventHostDone       = "host_done"
	EventHostRestored   = "host_restored"
	EventHostStuck      = "host_stuck"
	EventHostRolledBack = "host_rolled_back"
	EventAbort          = "abort"
	// A group's gate (bake time, smoke test, approval) began, passed or
	// failed; Group names the group and Gate the gate.
	EventGateStart  = "gate_start"
	EventGateDone   = "gate_done"
	EventGateFailed = "gate_failed"
	// An operator skipped a gate (--skip-gate -m): Message names the gate
	// and the reason.
	EventGateSkipped = "gate_skipped"
	// One evaluation of a canary analysis (Analysis holds it): every one,
	// passed or not, so that a chart can mark each verdict.
	EventAnalysis = "analysis"
)

// EventKinds lists every event kind, for consumers and the test that
// keeps docs/events.md complete.
var EventKinds = []string{
	EventDeployStart, EventStepStart, EventStepDone, EventGroupStart, EventGroupDone,
	EventHostFailed, EventHalt, EventRollback, EventNotice, EventVerdict,
	EventStageStart, EventStageDone, EventHostDone, EventHostRestored, EventHostStuck,
	EventHostRolledBack, EventAbort, EventGateStart, EventGateDone, EventGateFailed, EventGateSkipped,
	EventAnalysis,
}

// GateApprove is the gate at which a group waits for a person (approve:
// manual): a gate_start with this Gate means "waiting for approval".
const GateApprove = "approve"

// EventSink receives events. Implementations must not block for long.
type EventSink interface {
	Emit(Event)
}

// EventFunc adapts a function to EventSink.
type EventFunc func(Event)

// Emit calls f(e).
func (f EventFunc) Emit(e Event) { f(e) }
