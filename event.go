package drover

import "time"

// Event is one thing that happened during a deploy, for people (text
// output) and programs (--output json). The JSON form is versioned by
// EventSchema.
type Event struct {
	Schema  int       `json:"schema"`
	Time    time.Time `json:"time"`
	Deploy  string    `json:"deploy"`
	Kind    string    `json:"kind"`
	Group   string    `json:"group,omitempty"`
	Host    string    `json:"host,omitempty"`
	Step    string    `json:"step,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	Message string    `json:"message,omitempty"`
	// Elapsed is the step's duration, for step_done.
	Elapsed time.Duration `json:"elapsed_ns,omitempty"`
}

// EventSchema is the version of the Event JSON form.
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
)

// EventSink receives events. Implementations must not block for long.
type EventSink interface {
	Emit(Event)
}

// EventFunc adapts a function to EventSink.
type EventFunc func(Event)

// Emit calls f(e).
func (f EventFunc) Emit(e Event) { f(e) }
