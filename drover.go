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
// This package imports only the standard library, so every adapter
// (transport/local, store/file, check, config, release, hostops) can depend
// on it without depending on each other.
package drover

import "time"

// Defaults for values drover.yaml may leave out.
const (
	DefaultKeepReleases     = 5
	DefaultTransport        = "local"
	DefaultStageParallelism = 16
	DefaultStepTimeout      = 2 * time.Minute
	DefaultCheckTimeout     = 30 * time.Second
	DefaultCheckInterval    = 500 * time.Millisecond
	DefaultHookTimeout      = 2 * time.Minute
	DefaultStageRetries     = 2
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
	Transport    string // "local" or "ssh"
	SSH          SSHConfig
	// StateDir holds the lock, journal and history; "" means the default
	// under the user's state directory.
	StateDir string
	Hosts    []Host
	Groups   []Group
	// ConfigFiles are rendered per host into the release directory.
	ConfigFiles []ConfigFile
	Hooks       Hooks
	Checks      []CheckSpec
	// StageParallelism bounds how many hosts stage at once.
	StageParallelism int
	// StepTimeout bounds one host step (stage, switch, restore).
	StepTimeout time.Duration
	// StageRetries is how often a failed transfer is retried.
	StageRetries int
	// Seed makes jitter reproducible; 0 means seeded from the deploy id.
	Seed int64
}

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
	User       string
	Identity   string
	KnownHosts string
	Port       int
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
}

// Hooks are command templates run on the host, in the release directory.
type Hooks struct {
	// Restart (re)starts the service after a switch or restore.
	Restart string
	// Stop stops the service; run when a first-ever deploy is rolled back
	// and there is no previous release to go back to.
	Stop string
	// Depool and Repool take the host out of and back into rotation.
	Depool string
	Repool string
	// Timeout bounds each hook.
	Timeout time.Duration
}

// CheckSpec is one health check, still holding its templates; the runner
// renders it per host with RenderCheck before running it.
type CheckSpec struct {
	Name string
	Type string // tcp | http | command
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
	// Timeout is how long the check is retried before it fails.
	Timeout time.Duration
	// Interval is the pause between attempts.
	Interval time.Duration
}
