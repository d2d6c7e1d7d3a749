package drover

import (
	"context"
	"time"
)

// Store keeps the deploy lock, the journal of running deploys and the
// history of finished ones. Implementations: store/file (default) and,
// later, store/sqlite and store/etcd. One contract test covers them all.
type Store interface {
	// Lock takes the exclusive deploy lock for key (service and
	// environment). When a live holder has it, Lock returns an *Error with
	// code ELOCKED naming the holder and since when. When the previous
	// holder died without releasing, the lock is taken and Lock.TakenOver
	// reports the dead holder so the caller can warn and recover.
	Lock(ctx context.Context, key string, owner LockOwner) (Lock, error)
	// Begin records a deploy before it touches any host, including every
	// host's pre-deploy snapshot.
	Begin(ctx context.Context, d DeployRecord) error
	// Append journals one step event of a running deploy. It returns only
	// after the entry is durable: the journal is what crash recovery reads.
	Append(ctx context.Context, deployID string, e JournalEntry) error
	// Finish records a deploy's outcome; the deploy leaves Unfinished.
	Finish(ctx context.Context, deployID string, r FinishRecord) error
	// Unfinished lists deploys of key that began and never finished.
	Unfinished(ctx context.Context, key string) ([]DeployRecord, error)
	// Journal returns a deploy's journal entries in order. ENOTFOUND when
	// there is no such deploy.
	Journal(ctx context.Context, deployID string) ([]JournalEntry, error)
	// Deploy returns one deploy record. ENOTFOUND when there is none.
	Deploy(ctx context.Context, deployID string) (DeployRecord, error)
	// History lists deploys of key, newest first; limit <= 0 means all.
	History(ctx context.Context, key string, limit int) ([]DeployRecord, error)
	Close() error
}

// Lock is a held deploy lock.
type Lock interface {
	Owner() LockOwner
	// TakenOver is the dead holder this lock was taken from, or nil.
	TakenOver() *LockOwner
	// Release frees the lock. Safe to call more than once.
	Release() error
}

// LosableLock is a Lock that can be lost while its holder still runs.
// store/etcd's lock is a lease: a holder cut off from etcd, or paused
// (SIGSTOP, a frozen VM, a long GC) for longer than the lease TTL, loses it,
// and another process may take the lock over and recover the deploy while
// the first still believes it deploys. Its Store then fences: every write
// of a deploy under that lock is a transaction conditional on the lease
// still owning the lock key, and fails with an error wrapping ErrLockLost
// once it does not. The runner watches Lost and Held and stops starting
// steps (rollout.Machine.Freeze).
//
// The flock(2) of store/file and store/sqlite cannot be lost: the kernel
// holds it for as long as the process lives, paused or not, and drops it
// only when the process dies. They do not implement LosableLock; the
// runner needs no fence with them.
type LosableLock interface {
	Lock
	// Lost is closed once the lock may be another process's (and by
	// Release).
	Lost() <-chan struct{}
	// Held reports, by this process's own monotonic clock, whether the
	// lock is certainly still held. It turns false the moment the lease
	// may have expired, even before Lost is closed: a process that wakes
	// from a pause checks it before it touches a host.
	Held() bool
	// TakenBy returns who took the lock from this process: its holder
	// now, or, when that one has finished and released it since, the
	// process that took it over; nil when nobody did (yet) or the store
	// cannot tell. Bounded by ctx.
	TakenBy(ctx context.Context) *LockOwner
}

// LockOwner says who holds a lock.
type LockOwner struct {
	PID      int       `json:"pid"`
	Machine  string    `json:"machine"`
	User     string    `json:"user"`
	DeployID string    `json:"deploy_id"`
	Since    time.Time `json:"since"`
}

// Deploy kinds.
const (
	KindDeploy   = "deploy"
	KindRollback = "rollback"
	KindRecover  = "recover"
)

// DeployRecord is one deploy, rollback or recovery.
type DeployRecord struct {
	ID       string       `json:"id"`
	Key      string       `json:"key"` // service or service/env
	Kind     string       `json:"kind"`
	Service  string       `json:"service"`
	Env      string       `json:"env,omitempty"`
	Release  string       `json:"release"`
	Version  string       `json:"version"`
	Revision string       `json:"revision,omitempty"`
	User     string       `json:"user"`
	Machine  string       `json:"machine"`
	Message  string       `json:"message,omitempty"`
	Started  time.Time    `json:"started"`
	Hosts    []DeployHost `json:"hosts"`
	// Overrides are the checks, analyses and gates skipped for this deploy
	// only, each with its reason (override.go).
	Overrides []Override `json:"overrides,omitempty"`
	// Groups are the run's groups in order with their batch size and
	// failure limit as planned, so that a view of a finished deploy shows
	// the batches it really ran (not today's drover.yaml).
	Groups []PlanGroup `json:"groups,omitempty"`
	// Set by Finish.
	Finished time.Time `json:"finished,omitempty"`
	Outcome  string    `json:"outcome,omitempty"`
	ExitCode int       `json:"exit_code"`
	Summary  string    `json:"summary,omitempty"`
}

// DeployHost is one host of a deploy and what it was on before.
type DeployHost struct {
	Name   string   `json:"name"`
	Group  string   `json:"group"`
	Before Snapshot `json:"before"`
	// Skipped is true when the host was already on the target.
	Skipped bool `json:"skipped,omitempty"`
}

// PlanGroup is one group of a deploy's plan, as DeployRecord keeps it.
type PlanGroup struct {
	Name         string `json:"name"`
	Batch        int    `json:"batch"`
	FailureLimit int    `json:"failure_limit"`
}

// FinishRecord is what Finish stores.
type FinishRecord struct {
	Finished time.Time
	Outcome  string
	ExitCode int
	Summary  string
}

// JournalEntry is one step of one host, journaled before it runs
// (PhaseStart) and after (PhaseDone).
type JournalEntry struct {
	At      time.Time    `json:"at"`
	Host    string       `json:"host"`
	Step    string       `json:"step"`
	Phase   JournalPhase `json:"phase"`
	Outcome string       `json:"outcome,omitempty"`
	Reason  string       `json:"reason,omitempty"`
	Slot    string       `json:"slot,omitempty"`
	// Output is the tail (at most MaxOutputTail bytes) of what the step
	// printed or reported, on PhaseDone entries: enough to see why a hook or a
	// check failed without keeping whole logs in the journal.
	Output string `json:"output,omitempty"`
	// Elapsed is how long the step took, on PhaseDone entries.
	Elapsed time.Duration `json:"elapsed_ns,omitempty"`
	// Restoring marks a step of the restore path (as Event.Restoring): a
	// view of the journal tells the way back from the way forward without
	// guessing.
	Restoring bool `json:"restoring,omitempty"`
	// Analysis is set on the entries of canary analysis evaluations
	// (Step StepAnalysis, Host ""), which `drover show` and the dashboard's
	// canary chart read back.
	Analysis *AnalysisEval `json:"analysis,omitempty"`
}

// StepAnalysis is the Step of a journal entry that records one evaluation
// of a canary analysis.
const StepAnalysis = "analysis"

// JournalPhase says whether a journal entry was written before its step
// ran or after.
type JournalPhase string

// Journal phases. A step with a PhaseStart entry and no PhaseDone one was
// running when its process died: recovery treats its host as touched.
const (
	PhaseStart JournalPhase = "start"
	PhaseDone  JournalPhase = "done"
)

// MaxOutputTail bounds JournalEntry.Output.
const MaxOutputTail = 4096

// BatchAppender is a Store that can journal several entries of one deploy
// at the cost of one: one transaction, one fsync. The runner journals the
// steps that finished and started together as one batch when its Store
// has it, and entry by entry otherwise. AppendBatch returns only after
// every entry is durable, in order; after a crash during the call at most
// a prefix of the batch survives. Store/sqlite and store/file implement it.
type BatchAppender interface {
	AppendBatch(ctx context.Context, deployID string, es []JournalEntry) error
}

// HistoryReader answers questions about past deploys that Store's
// per-deploy methods cannot answer cheaply: which deploys touched a host,
// every step of a host across deploys, who holds a lock. It is separate
// from Store so that a backend without indexes (store/file) need not grow
// queries it would answer by reading every file; store/sqlite implements
// it. Callers type-assert a Store to HistoryReader.
type HistoryReader interface {
	// Deploys lists deploys matching q, newest first by start time.
	// EINVALID for a bad key.
	Deploys(ctx context.Context, q DeployQuery) ([]DeployRecord, error)
	// Steps lists journal entries matching q in the order they were
	// appended (oldest first), each with its deploy ID. With q.Limit > 0,
	// the newest q.Limit entries, still oldest first.
	Steps(ctx context.Context, q StepQuery) ([]StepRecord, error)
	// LockHolder returns who holds, or last held without releasing, the
	// lock of key; nil when it was released cleanly or never taken. A
	// holder that died is still returned: callers compare it with the
	// process table to tell a running deploy from an interrupted one.
	LockHolder(ctx context.Context, key string) (*LockOwner, error)
}

// DeployQuery selects deploys. Zero fields select everything.
type DeployQuery struct {
	// Key is the lock key (service or service/env); required.
	Key string
	// Host keeps deploys that listed this host (skipped or not).
	Host string
	// Since keeps deploys started at or after it.
	Since time.Time
	// Limit caps the result; <= 0 means all.
	Limit int
}

// StepQuery selects journal entries. Zero fields select everything.
type StepQuery struct {
	// Key is the lock key; required.
	Key      string
	DeployID string
	Host     string
	Step     string
	// Since keeps entries at or after it.
	Since time.Time
	// Failed keeps only PhaseDone entries whose outcome is not "ok".
	Failed bool
	Limit  int
}

// StepRecord is a journal entry with the deploy it belongs to.
type StepRecord struct {
	DeployID string `json:"deploy"`
	JournalEntry
}
