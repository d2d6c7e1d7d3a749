// Package drover holds the domain of drover: what a fleet, a release and a
// deploy are, and the small interfaces through which the rest of the program
// reaches hosts, stores journals and runs checks.
//
// The model: a Spec (the validated drover.yaml) names hosts and orders them
// into groups. A deploy stages a Release on every targeted host first, then
// promotes group by group in batches, checking each host. The decisions —
// what runs next, when a failure limit is exceeded, what to roll back — are
// made by the pure state machine in package rollout. Package runner executes
// those decisions through a Transport, journals every step in a Store, and
// turns results back into inputs for the state machine.
//
// This package imports only the standard library and mvdan.cc/sh's shell
// parser (command templates are checked with it), so every adapter
// (transport/local, store/file, check, config, release, hostops) can depend
// on it without depending on each other.
package drover

import (
	"io/fs"
	"time"
)

// Defaults for values drover.yaml may leave out.
const (
	DefaultKeepReleases     = 5
	DefaultTransport        = "local"
	DefaultStageParallelism = 16
	DefaultStepTimeout      = 2 * time.Minute
	DefaultCheckTimeout     = 30 * time.Second
	DefaultCheckInterval    = 500 * time.Millisecond
	// DefaultLogWindow is how long a log check with absent: true watches
	// its file for a matching line before it passes.
	DefaultLogWindow    = 5 * time.Second
	DefaultHookTimeout  = 2 * time.Minute
	DefaultStageRetries = 2

	DefaultSSHPort           = 22
	DefaultSSHConnectTimeout = 10 * time.Second
	// A host that stops answering is found within
	// DefaultSSHKeepaliveInterval × (DefaultSSHKeepaliveCount + 1) = 20 s
	// (transport/ssh keepalive).
	DefaultSSHKeepaliveInterval  = 5 * time.Second
	DefaultSSHKeepaliveCount     = 3
	DefaultSSHConnectParallelism = 32
)

// Spec is a validated, fully resolved drover.yaml for one environment: the
// overlay for --env is already applied, group patterns are expanded to host
// names and batch and failure limits are whole numbers of hosts.
type Spec struct {
	// Source is the path of the file the spec was read from.
	Source       string
	Service      string
	Env          string // "" when no --env was given
	DeployRoot   string
	KeepReleases int
	// PruneForeign lets pruning remove foreign releases (another tool's
	// directories under releases/) that are neither current nor previous.
	PruneForeign bool
	Transport    string // "local" or "ssh"
	SSH          SSHConfig
	// StateDir holds the lock, journal and history; "" means the default
	// under the user's state directory.
	StateDir string
	Hosts    []Host
	Groups   []Group
	// ConfigFiles are rendered per host into the release directory.
	ConfigFiles []ConfigFile
	// SharedDirs are paths inside every release linked to
	// <deploy_root>/shared/<path> (see shareddirs.go).
	SharedDirs []string
	Hooks      Hooks
	// Rotation holds native load balancer integrations (HAProxy).
	Rotation RotationSpec
	// Strategy is StrategyRolling (the default) or StrategyBlueGreen;
	// BlueGreen configures the latter (see bluegreen.go).
	Strategy  string
	BlueGreen BlueGreenSpec

	Checks []CheckSpec
	// StageParallelism bounds how many hosts stage at once.
	StageParallelism int
	// StepTimeout bounds one host step (stage, switch, restore).
	StepTimeout time.Duration
	// StageRetries is how often a failed transfer is retried.
	StageRetries int
	// Seed makes jitter reproducible; 0 means seeded from the deploy id.
	Seed int64
	// Store is the state store: StoreSQLite (the default,
	// StateDir/drover.db), StoreFile (under StateDir) or StoreEtcd (Etcd).
	Store string
	// Etcd is the etcd store's connection when Store is StoreEtcd.
	Etcd EtcdSpec
	// Log configures the structured event log for log shippers.
	Log LogConfig
	// AskMessage asks for a deploy message on a terminal when -m is not
	// given. Never asked without a terminal.
	AskMessage bool
	// Webhooks are told about deploys starting, finishing, halting and
	// rolling back.
	Webhooks []Webhook
	// Smoke are checks run from this machine once, after the last group
	// (the deploy-level smoke test); see Group.Smoke and gate.go.
	Smoke []CheckSpec
	// Invariants are JSON documents captured before the deploy and
	// compared after groups; see gate.go.
	Invariants []Invariant
	// Analysis are metric analyses run after every group (see
	// analysis.go); groups add their own.
	Analysis []AnalysisSpec
	// Retry is the per-step retry policy; the zero value runs every step
	// once (stage transfers still retry StageRetries times).
	Retry RetryPolicy
	// Converge bounds `drover converge`.
	Converge ConvergeSpec
	// Inventory is where hosts come from besides hosts: (dynamic
	// inventory); the zero value is none.
	Inventory InventorySpec
	// Distribution is how release bundles reach the hosts: pushed from
	// this machine (the zero value) or relayed host to host (distribution.go).
	Distribution Distribution
	// Requires is this environment's requires: (promotion.go); nil when
	// any release may be deployed here.
	Requires *Requirement
	// RequiredBy names the environments whose requires: name this one: a
	// deploy here keeps its bundle (BundleStore) for `drover promote`.
	RequiredBy []string
}

// State stores.
const (
	StoreSQLite  = "sqlite"
	StoreFile    = "file"
	StoreEtcd    = "etcd"
	DefaultStore = StoreSQLite
)

// EtcdSpec is store: {etcd: {...}}: where the shared store is (store/etcd).
type EtcdSpec struct {
	Endpoints []string
	// Prefix is where drover's keys live ("/drover").
	Prefix string
	// CA, Cert and Key are PEM files for TLS; "" when unused. Cert and
	// Key authenticate drover to etcd (client-certificate auth).
	CA, Cert, Key string
	// Username and Password authenticate drover to etcd (etcd's RBAC);
	// the password comes from the environment variable the config names
	// and is never printed.
	Username string
	Password string `json:"-"`
	// AllowInsecure accepts plain-http endpoints off loopback, where
	// anyone on the path reads and rewrites the locks and the journal.
	AllowInsecure bool
	// LeaseTTL is how long a dead holder keeps a lock or leadership.
	LeaseTTL time.Duration
	// DialTimeout bounds connecting to etcd.
	DialTimeout time.Duration
}

// LogConfig is the structured event log: every Event as one line.
type LogConfig struct {
	// File is the path to append to; "-" is standard output; "" is none.
	File string
	// Format is "json" (the default) or "text".
	Format string
}

// Webhook is an HTTP endpoint told about deploy events with a JSON POST.
type Webhook struct {
	URL string
	// Events are the webhook event names to send (WebhookEvents); empty
	// means all of them.
	Events []string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// Headers are sent with every request (e.g. Authorization). Values
	// may hold secrets: they are never logged.
	Headers map[string]string
	// Secret, when set, signs every body: X-Hub-Signature-256 is
	// "sha256=" and the hex HMAC-SHA256 of the body under it (GitHub's
	// scheme). It may name environment variables (${VAR}) and is never
	// logged.
	Secret string
}

// Webhook event names and the Event kinds they stand for.
var WebhookEvents = map[string]string{
	"start":    EventDeployStart,
	"finish":   EventVerdict,
	"halt":     EventHalt,
	"rollback": EventRollback,
}

// DefaultWebhookTimeout bounds one webhook delivery attempt.
const DefaultWebhookTimeout = 5 * time.Second

// Host returns the host with the given name.
func (s *Spec) Host(name string) (Host, bool) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// SSHConfig configures transport/ssh.
type SSHConfig struct {
	// User logs in; "" means the user running drover.
	User string
	// Identity is a private key file; "" means only the ssh-agent at
	// $SSH_AUTH_SOCK (which is also tried when Identity is set).
	Identity string
	// KnownHosts is the known_hosts file host keys are verified against;
	// "" means ~/.ssh/known_hosts.
	KnownHosts string
	// Port is used for addresses without one.
	Port int
	// ProxyJump is host[:port] of a jump host every connection goes
	// through (OpenSSH's ProxyJump); "" connects directly.
	ProxyJump string
	// TrustOnFirstUse records the key of a host missing from KnownHosts
	// instead of refusing it. A key that differs from a recorded one is
	// refused either way.
	TrustOnFirstUse bool
	// ConnectTimeout bounds the TCP connect and the SSH handshake.
	ConnectTimeout time.Duration
	// KeepaliveInterval is how often a connection is probed, busy or
	// idle; KeepaliveCount is how many intervals in a row a probe may go
	// unanswered before the connection is closed and its host (and the
	// step running on it) is unreachable. A host that stops answering is
	// so found within KeepaliveInterval × (KeepaliveCount + 1).
	KeepaliveInterval time.Duration
	KeepaliveCount    int
	// ConnectParallelism bounds how many hosts are connecting at once.
	ConnectParallelism int
	// HostBinary is a drover binary built for hosts whose OS or
	// architecture differ from this machine's; "" uploads this binary.
	HostBinary string
}

// Host is one target machine (or, with transport local, a directory).
type Host struct {
	Name string
	// Address is a directory for transport local and host[:port] for ssh.
	Address string
	// DeployRoot is where this host keeps releases; the spec's deploy_root
	// when the host does not set its own. With transport local it is the
	// real path: the deploy root inside the host's directory.
	DeployRoot string
	// Vars are the host's vars as YAML decoded them: integers arrive as
	// uint64 (or int64 when negative), not int.
	Vars map[string]any
	// Group is the name of the group the host belongs to.
	Group string
}

// Group is a set of hosts deployed together, in batches.
type Group struct {
	Name string
	// Hosts are host names in deploy order.
	Hosts []string
	// Batch is how many hosts of the group are promoted at once (>= 1).
	Batch int
	// FailureLimit is how many hosts of the group may fail before the
	// deploy halts and rolls back (exceeded means failures > FailureLimit).
	FailureLimit int
	// AllowAllAtOnce accepts a batch that takes every host of the group
	// (of more than one host) out at once.
	AllowAllAtOnce bool
	// Confirm asks a person before the deploy moves past the group.
	Confirm bool
	// Smoke are checks run from this machine once every host of the
	// group is done; one failing halts the deploy and rolls it back.
	Smoke []CheckSpec
	// Wait is a bake time after the group's hosts are done (0: none);
	// the group's analyses run during it (see analysis.go).
	Wait time.Duration
	// Approve is ApproveManual to wait for `drover approve` (or a
	// prompt) before the deploy moves past the group; ApproveTimeout
	// bounds the wait, after which the deploy aborts.
	Approve        string
	ApproveTimeout time.Duration
	// Analysis are the group's own metric analyses; Spec.Analysis apply
	// to every group as well.
	Analysis []AnalysisSpec
}

// ConfigFile is a template inside the release rendered per host.
type ConfigFile struct {
	// Template is a path inside the release.
	Template string
	// Dest is a path inside the host's release directory.
	Dest string
	// Validate is a command template run on the host after rendering;
	// .Path is the rendered file. "" means no validation.
	Validate string
	// Mode is the rendered file's permission bits; 0 means
	// DefaultConfigFileMode. Owner and Group (names or numeric ids) are
	// applied only by a host running as root; "" leaves them to whoever
	// runs drover host.
	Mode  fs.FileMode `json:",omitempty"`
	Owner string      `json:",omitempty"`
	Group string      `json:",omitempty"`
}

// DefaultConfigFileMode is the mode of a rendered config file: readable by
// its owner and group, not by every local user, since config files hold
// secrets (the release tree itself is 0755/0644).
const DefaultConfigFileMode fs.FileMode = 0o640

// Hooks are command templates run on the host, in the release directory.
type Hooks struct {
	// Restart (re)starts the service after a switch or restore.
	Restart string
	// Stop stops the service; run when a first-ever deploy is rolled back
	// and there is no previous release to go back to.
	Stop string
	// Depool and Repool take the host out of and back into rotation;
	// WaitIdle, run after Depool, returns once the host serves nothing
	// (it runs under the drain timeout).
	Depool   string
	WaitIdle string
	Repool   string
	// Lifecycle hooks around the steps of a host. A failing before-hook
	// fails the host before its step changes anything; on the restore
	// path (undoing a host) a failing hook is reported and the undo goes
	// on. See README, "Lifecycle hooks", for where each runs.
	BeforeStage    string
	AfterStage     string
	BeforePromote  string
	AfterPromote   string
	BeforeRestart  string
	AfterRestart   string
	BeforeRollback string
	AfterRollback  string
	// Replace runs on the controller, not the host, for a host that
	// failed converge.replace_after rounds of `drover converge`: it
	// re-provisions the machine, after which the inventory is read again.
	Replace string
	// Timeout bounds each hook.
	Timeout time.Duration
}

// CheckSpec is one health check, still holding its templates; the runner
// renders it per host with RenderCheck before running it.
type CheckSpec struct {
	Name string
	Type string // tcp | http | command | log
	// Address is host:port for tcp.
	Address string
	// URL, ExpectStatus, ExpectBody and ExpectHeaders are for http.
	URL           string
	ExpectStatus  int
	ExpectBody    string
	ExpectHeaders map[string]string
	// Command is a command template for type command, run on the host in
	// the release directory; exit 0 passes.
	Command string
	// Path, Pattern, Absent and Window are for type log, which reads on
	// the host the lines written to the file at Path since the restart:
	// Absent false passes once a line matches the regexp Pattern; Absent
	// true fails as soon as one does and passes when Window went by
	// without one (package check).
	Path    string
	Pattern string
	Absent  bool
	Window  time.Duration
	// Since is where the log file stood just before the restart (the
	// runner asks for it with Mark); nil counts the lines written from
	// the moment the check starts.
	Since *LogPosition `json:",omitempty"`
	// Mark asks a log check only for its file's position now, returned
	// in CheckResult.Position; nothing is judged.
	Mark bool `json:",omitempty"`
	// Timeout is how long the check is retried before it fails.
	Timeout time.Duration
	// Interval is the pause between attempts.
	Interval time.Duration
}

// LogPosition is where a log file stood: its inode and size. A later
// read of the same inode that is not shorter continues at Size; any other
// file (rotated away, or truncated) is read from its start.
type LogPosition struct {
	Exists bool   `json:"exists"`
	Inode  uint64 `json:"inode"`
	Size   int64  `json:"size"`
}

// Retryable outcomes of a step attempt (RetryRule.On).
const (
	RetryUnreachable = "unreachable" // the host could not be reached
	RetryTimeout     = "timeout"     // the attempt did not finish in time
	RetryExit        = "exit"        // a command or check ran and failed
)

// RetryRule says how often a step is tried and after which outcomes it
// is tried again. Attempts 1 (or 0) tries once.
type RetryRule struct {
	Attempts int
	// Backoff is the wait before the second attempt; it doubles for each
	// attempt after, up to MaxBackoff, with jitter from the spec's seed.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// On lists the retryable outcomes (RetryUnreachable, ...).
	On []string
}

// Retries reports whether an attempt that ended with outcome is retried.
func (r RetryRule) Retries(outcome string) bool {
	for _, o := range r.On {
		if o == outcome {
			return true
		}
	}
	return false
}

// RetryPolicy is the retry: block: a rule for every step, and per-step
// rules (keys are step names: stage, depool, switch, restart, check,
// repool, restore) that replace it for their step.
type RetryPolicy struct {
	Default RetryRule
	Steps   map[string]RetryRule
}

// Rule returns the rule of step.
func (p RetryPolicy) Rule(step string) RetryRule {
	if r, ok := p.Steps[step]; ok {
		return r
	}
	return p.Default
}

// Defaults of the retry: and converge: blocks.
const (
	DefaultRetryAttempts    = 1
	DefaultRetryBackoff     = time.Second
	DefaultRetryMaxBackoff  = 30 * time.Second
	DefaultConvergeAttempts = 10
	DefaultConvergeWait     = 5 * time.Second
	DefaultConvergeMaxWait  = 2 * time.Minute
	// DefaultConvergeBootTimeout bounds the wait for a replaced host to
	// answer: a VM re-provisioned by hooks.replace boots in a few minutes.
	DefaultConvergeBootTimeout = 5 * time.Minute
	DefaultInventoryTimeout    = 30 * time.Second
	DefaultReplaceAfterRounds  = 2
)

// DefaultRetryOn are the outcomes retried when retry.on is left out: a
// lost connection or a slow host is worth another try; a command that
// ran and failed usually fails again.
var DefaultRetryOn = []string{RetryUnreachable, RetryTimeout}

// ConvergeSpec is the converge: block.
type ConvergeSpec struct {
	// MaxAttempts is how many deploy rounds converge runs at most.
	MaxAttempts int
	// Wait is the pause after the first round; it doubles each round up
	// to MaxWait, with jitter.
	Wait    time.Duration
	MaxWait time.Duration
	// ReplaceAfter is how many rounds a host fails before its replace
	// hook runs (once per host per run).
	ReplaceAfter int
	// BootTimeout is how long a host that was just replaced (or joined
	// the inventory after a replace) may not answer before the round
	// counts it failed.
	BootTimeout time.Duration
}

// InventorySpec is the inventory: block: a command printing JSON hosts,
// or a URL serving them. Exactly one of Command and URL is set when the
// block is.
type InventorySpec struct {
	Command string
	URL     string
	// Ansible is an Ansible inventory file (INI or YAML), absolute.
	Ansible string
	Timeout time.Duration
}
