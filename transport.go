package drover

import (
	"context"
	"time"
)

// Transport opens connections to hosts. Implementations: transport/local (a
// directory on this machine) and transport/ssh.
type Transport interface {
	// Open connects to h. It returns an *Error with code EUNREACHABLE when
	// the host cannot be reached (and the host's name in Where).
	Open(ctx context.Context, h Host) (HostConn, error)
}

// HostConn performs the host operations of package hostops on one host.
// Every method returns an *Error: EUNREACHABLE when the host was lost,
// EFAILED when the operation ran and failed, ETIMEOUT when ctx ran out,
// EINVALID for a request the host refuses (unsafe bundle, bad template).
type HostConn interface {
	// State reads state.json; a host never deployed to returns the zero
	// HostState and no error.
	State(ctx context.Context) (HostState, error)
	// Stage receives the release bundle, verifies it, unpacks it into
	// releases/<slot>/, renders config files and runs their validation.
	// Staging is idempotent: a slot already staged with the same content
	// and config is reused.
	Stage(ctx context.Context, req StageRequest) (StageResult, error)
	// Promote atomically points current at the staged slot and records it
	// in state.json (previous = the old current).
	Promote(ctx context.Context, req PromoteRequest) (HostState, error)
	// Restore points current back at a snapshot and writes state.json so
	// that current and previous are exactly the snapshot's. An empty
	// snapshot Current removes the current link.
	Restore(ctx context.Context, req RestoreRequest) (HostState, error)
	// Exec runs a command with `sh -c` on the host. Dir is relative to the
	// deploy root ("" = the current release directory).
	Exec(ctx context.Context, req ExecRequest) (ExecResult, error)
	// Check runs one rendered check on the host, retried until its
	// timeout; a failing check is a CheckResult with OK false, not an error.
	Check(ctx context.Context, c CheckSpec) (CheckResult, error)
	// ReadFile reads a file relative to the deploy root (for plan diffs).
	// A missing file returns ENOTFOUND.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Prune removes release directories beyond keep, never current or
	// previous or the slot in protect, and returns the removed slots.
	Prune(ctx context.Context, keep int, protect ...string) ([]string, error)
	Close() error
}

// ForeignPruner is a HostConn that can also prune foreign releases
// (another tool's directories under releases/), for prune_foreign: true.
// Like Prune it never removes current, previous or a slot in protect: a
// foreign release a failed deploy or a rollback would go back to stays.
// A HostConn without it leaves foreign releases alone.
type ForeignPruner interface {
	PruneForeign(ctx context.Context, keep int, protect ...string) ([]string, error)
}

// StageRequest asks a host to stage a release.
type StageRequest struct {
	DeployID string
	Release  *Release
	// ConfigFiles are rendered with Data (Data.Path set per file).
	ConfigFiles []ConfigFile
	Data        TemplateData
	// SharedDirs are linked into the release to <root>/shared/<name>
	// before validate runs (see shareddirs.go).
	SharedDirs []string `json:",omitempty"`
}

// Validator is a HostConn that can try a release on its host without
// staging it: unpack the bundle, render the config files and run their
// validate commands in a scratch directory outside the deploy root, then
// remove it. Nothing under the deploy root is created or changed and no
// host lock is taken, so `drover plan` leaves no trace. The result has no
// Slot. Errors are Stage's: EFAILED when a validate command fails,
// EINVALID for a bad request or bundle, EUNREACHABLE.
type Validator interface {
	Validate(ctx context.Context, req StageRequest) (StageResult, error)
}

// StageResult says where the release was staged.
type StageResult struct {
	Slot       string `json:"slot"`
	ConfigHash string `json:"config_hash"`
	// Reused is true when the slot was already staged and was kept.
	Reused bool `json:"reused"`
}

// PromoteRequest switches a host to a staged slot.
type PromoteRequest struct {
	DeployID   string
	Slot       string
	Release    string
	Version    string
	ConfigHash string
	At         time.Time
	// Color, on a blue/green host, is the colour now serving the slot:
	// its link points at the slot, state.json records it live and the
	// old colour idle and running until KeepUntil.
	Color     string    `json:",omitempty"`
	KeepUntil time.Time `json:",omitzero"`
}

// RestoreRequest puts a host back on a snapshot.
type RestoreRequest struct {
	DeployID string
	To       Snapshot
	// Action is ActionRestore (undoing this deploy) or ActionRollback
	// (an operator's `drover rollback`).
	Action string
	Reason string
	At     time.Time
	// Color, on a blue/green host, is the colour serving To.Current
	// again; the colour it leaves stays running until KeepUntil (zero:
	// recorded as stopping). With Action ActionFinalize, Color is the
	// idle colour whose process was stopped, and nothing else changes.
	Color     string    `json:",omitempty"`
	KeepUntil time.Time `json:",omitzero"`
}

// ExecRequest runs a command on a host.
type ExecRequest struct {
	Command string
	// Dir is relative to the deploy root; "" is the current release.
	Dir     string
	Env     []string
	Timeout time.Duration
}

// ExecResult is the outcome of an ExecRequest that ran.
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output"` // the tail of stdout+stderr
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	Name     string        `json:"name"`
	OK       bool          `json:"ok"`
	Attempts int           `json:"attempts"`
	Elapsed  time.Duration `json:"elapsed"`
	// Reason is the last failure's reason.
	Reason string `json:"reason,omitempty"`
	// Position answers a log check's Mark.
	Position *LogPosition `json:"position,omitempty"`
}
