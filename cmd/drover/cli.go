package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"drover"
	"drover/config"
	"drover/release"
	"drover/rotation"
	"drover/runner"
	"drover/transport/local"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// app is one invocation of drover: its streams and the exit code the
// command chose.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	code           int
	out            outputFlags
	// logFile is --log-file: the structured event log.
	logFile string
	// remote is --server and --token: act through a drover server.
	remote remoteFlags
	// fileSoft and fileHard are the open-file limits after raising the
	// soft one at start (raiseFileLimit).
	fileSoft, fileHard uint64
}

// exit records an exit code for a command that finished without an error
// (a deploy that ran and was rolled back is a verdict, not an error).
func (a *app) exit(code int) { a.code = code }

// run executes drover with args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	a.fileSoft, a.fileHard = raiseFileLimit()
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		a.printError(err)
		var ue *usageError
		if errors.As(err, &ue) {
			return drover.ExitUsage
		}
		return drover.ExitCode(err)
	}
	return a.code
}

// usageError is a mistake in the command line itself.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func (a *app) printError(err error) {
	st, _ := a.style(a.stderr)
	writeError(a.stderr, err, st)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "drover",
		Short: "Roll releases across a fleet safely: canary, batches, checks, automatic rollback",
		Long: `drover rolls a new release of a service across a fleet of hosts — canary
first, then in batches — takes each host out of rotation, switches it
atomically, checks it and puts it back. When the new release misbehaves past
a group's failure limit, every host it switched goes back to exactly the
release and config it had before.

Exit codes: 0 every targeted host is on the new release; 1 halted and the
fleet is back where it started; 2 bad input or usage, nothing touched; 3 needs
a person (rollback incomplete or hosts unreachable); 4 finished within the
failure limit, listed hosts failed and were restored; 5 another deploy holds
the lock.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath())}
	})
	root.AddCommand(
		a.deployCmd(), a.planCmd(), a.rollbackCmd(), a.resumeCmd(), a.statusCmd(),
		a.historyCmd(), a.releaseCmd(), a.demoCmd(), a.versionCmd(), a.sampleServiceCmd(),
		a.initCmd(), a.completionCmd(),
		a.showCmd(), a.logCmd(), a.diffCmd(),
		a.convergeCmd(),
		a.finalizeCmd(),
		a.adoptCmd(),
		a.promoteCmd(),
	)
	root.PersistentFlags().StringVar(&a.logFile, "log-file", "", `append every event as a JSON line to this file ("-": standard output), for log shippers; overrides log.file`)
	a.addOutputFlags(root)
	root.AddCommand(a.hostCmd())
	root.AddCommand(a.approveCmd(), a.abortCmd())
	root.AddCommand(a.serverCmd())
	a.addRemoteFlags(root)
	// Last: it completes the flags and arguments of every command.
	a.addFlagCompletions(root)
	return root
}

// noArgs rejects positional arguments as a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Errorf("%s takes no arguments, got %q", c.CommandPath(), strings.Join(args, " "))}
	}
	return nil
}

// specFlags are the flags every command reading drover.yaml takes.
type specFlags struct {
	config string
	env    string
	// transport ssh: a drover for hosts of another OS/arch, and trust on
	// first use of unknown host keys.
	hostBinary string
	acceptNew  bool
}

func (f *specFlags) add(c *cobra.Command) {
	c.Flags().StringVarP(&f.config, "config", "c", "drover.yaml", "the config file")
	c.Flags().StringVar(&f.env, "env", "", "the environment overlay to apply (environments: in drover.yaml)")
	c.Flags().StringVar(&f.hostBinary, "host-binary", "", "transport ssh: a drover binary built for hosts whose OS/arch differ from this machine's")
	c.Flags().BoolVar(&f.acceptNew, "ssh-accept-new", false, "transport ssh: record the key of a host missing from known_hosts instead of refusing it (a changed key is still refused)")
}

// env holds what a command needs to act on a fleet.
type env struct {
	spec   *drover.Spec
	store  drover.Store
	runner *runner.Runner
	// closeTransport closes the transport's connections; nil for none.
	closeTransport func() error
	// closeObserve flushes the event log and the webhooks.
	closeObserve func()
}

func (a *app) open(f specFlags, sink drover.EventSink) (*env, error) {
	spec, err := config.Load(f.config, f.env)
	if err != nil {
		return nil, err
	}
	return a.openSpec(spec, f, sink)
}

// openSpec is open for a spec already loaded (drover server opens one per
// run of a service it loaded at start).
func (a *app) openSpec(spec *drover.Spec, f specFlags, sink drover.EventSink) (*env, error) {
	if p, ok := sink.(*printer); ok {
		p.quietRotation = !spec.HasRotation()
	}
	dir, err := stateDir(spec)
	if err != nil {
		return nil, err
	}
	st, err := openStore(spec, dir)
	if err != nil {
		return nil, err
	}
	st = withCrashPoint(st)
	var tr drover.Transport
	var closeTransport func() error
	switch spec.Transport {
	case "local":
		tr = newLocalTransport(a.stderr)
	case "ssh":
		ssht := newSSHTransport(spec, f, a.stderr)
		tr, closeTransport = ssht, ssht.Close
		if w := fileLimitWarning(len(spec.Hosts), a.fileSoft, a.fileHard); w != "" {
			fmt.Fprintln(a.stderr, w)
		}
	default:
		st.Close()
		return nil, drover.Errorf(drover.EINVALID, "transport %q is not available in this build", spec.Transport).At(spec.Source).WithHint("use transport: local")
	}
	sink, closeObserve, err := a.observe(spec, sink)
	if err != nil {
		if closeTransport != nil {
			closeTransport()
		}
		st.Close()
		return nil, err
	}
	rn := &runner.Runner{Spec: spec, Transport: tr, Store: st, Events: sink, Rotation: rotation.New(spec),
		Bundles: release.Dir{Root: filepath.Join(dir, "bundles")}}
	a.wireCanary(rn, st)
	return &env{spec: spec, store: st, runner: rn, closeTransport: closeTransport, closeObserve: closeObserve}, nil
}

func (e *env) close() {
	if e.closeObserve != nil {
		e.closeObserve()
	}
	if e.closeTransport != nil {
		e.closeTransport()
	}
	e.store.Close()
}

// stateDir is where the lock, journal and history live: the spec's
// state_dir, else $DROVER_STATE_DIR, else the user's state directory.
func stateDir(s *drover.Spec) (string, error) {
	if s.StateDir != "" {
		return s.StateDir, nil
	}
	if d := os.Getenv("DROVER_STATE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "drover"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", drover.Errorf(drover.EINVALID, "no state directory: %v", err).WithHint("set state_dir in drover.yaml or DROVER_STATE_DIR")
	}
	return filepath.Join(home, ".local", "state", "drover"), nil
}

func newLocalTransport(stderr io.Writer) drover.Transport {
	return &local.Transport{RunCheck: checkRun,
		Notice: func(host, msg string) { fmt.Fprintf(stderr, "drover: host %s: %s\n", host, msg) }}
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print drover's version",
		Example: `  drover version`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			fmt.Fprintf(a.stdout, "drover %s\n", Version)
			return nil
		},
	}
}
