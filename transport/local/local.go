// Package local is the transport for hosts that are directories on this
// machine: the demo fleet, tests, and single-machine setups.
//
// A host's Address is its directory, standing in for the host's whole
// filesystem; its deploy root (an absolute path such as /srv/hello) is
// placed inside it, at Address + DeployRoot. The host operations are those
// of package hostops, run in this process. Commands run with `sh -c` on
// this machine, in the host's deploy root, with DROVER_ROOT and DROVER_HOST
// in their environment.
//
// A host directory that does not exist is an unreachable host. Tests
// simulate a host going down in the middle of a deploy by removing it;
// every operation checks first, so the runner sees EUNREACHABLE and not a
// confusing file error.
package local

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"drover"
	"drover/hostops"
)

// Transport opens hosts that are directories on this machine.
type Transport struct {
	// Now is the clock for staging times; nil means time.Now.
	Now func() time.Time
	// RunCheck runs one check (package check's Run). exec runs a command
	// in the host's current release directory, for command checks. nil
	// makes Check fail with EINTERNAL.
	RunCheck func(ctx context.Context, c drover.CheckSpec, exec func(ctx context.Context, command string) (drover.ExecResult, error)) drover.CheckResult
	// Notify is told, per host, what a step waits for before it may
	// change the host (see hostops.Host.Lock); nil says nothing.
	Notice func(host, msg string)
}

var _ drover.Transport = (*Transport)(nil)

// DeployRoot is where host h keeps its releases on this machine: its
// deploy root inside its directory. package config resolves it that way for
// transport local; a root that is not inside the host directory yet (a Host
// built by hand) is placed inside it here.
func DeployRoot(h drover.Host) string {
	root := filepath.FromSlash(h.DeployRoot)
	if rel, err := filepath.Rel(h.Address, root); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return root
	}
	return filepath.Join(h.Address, root)
}

// Open checks that the host's directory exists (EUNREACHABLE otherwise).
// It creates nothing: the deploy root is made by the first operation that
// writes (ready), so `drover status` and `drover plan`, which only read,
// leave a host that was never deployed exactly as they found it.
func (t *Transport) Open(ctx context.Context, h drover.Host) (drover.HostConn, error) {
	where := "host " + h.Name
	if h.Address == "" || !filepath.IsAbs(h.Address) {
		return nil, drover.Errorf(drover.EINVALID, "address %q must be an absolute directory for transport local", h.Address).At(where)
	}
	if h.DeployRoot == "" {
		return nil, drover.Errorf(drover.EINVALID, "no deploy root").At(where)
	}
	c := &conn{name: h.Name, dir: h.Address, root: DeployRoot(h)}
	if err := c.alive(); err != nil {
		return nil, err
	}
	c.ops = &hostops.Host{Root: c.root, Now: t.Now}
	if t.Notice != nil {
		name := h.Name
		c.ops.Notify = func(msg string) { t.Notice(name, msg) }
	}
	c.runCheck = t.RunCheck
	return c, nil
}

type conn struct {
	name     string
	dir      string
	root     string
	ops      *hostops.Host
	runCheck func(ctx context.Context, c drover.CheckSpec, exec func(ctx context.Context, command string) (drover.ExecResult, error)) drover.CheckResult
}

var _ drover.HostConn = (*conn)(nil)

// alive reports EUNREACHABLE when the host's directory is gone.
func (c *conn) alive() error {
	fi, err := os.Stat(c.dir)
	if err == nil && fi.IsDir() {
		return nil
	}
	msg := "directory " + c.dir + " does not exist"
	if err == nil {
		msg = c.dir + " is not a directory"
	} else if !errors.Is(err, fs.ErrNotExist) {
		msg = err.Error()
	}
	return drover.Errorf(drover.EUNREACHABLE, "%s", msg).At("host " + c.name).
		WithHint("transport local reaches a host through its directory; check the host's address")
}

// ready is alive for an operation that writes under the deploy root:
// it creates the root when it is not there yet.
func (c *conn) ready() error {
	if err := c.alive(); err != nil {
		return err
	}
	if err := os.MkdirAll(c.root, 0o755); err != nil {
		return drover.Errorf(drover.EFAILED, "create deploy root %s: %v", c.root, err).At("host " + c.name)
	}
	return nil
}

// wrap names the host in err. An operation that failed because the host's
// directory vanished under it is reported as EUNREACHABLE, like a network
// host that went down mid-operation.
func (c *conn) wrap(err error) error {
	if err == nil {
		return nil
	}
	if aerr := c.alive(); aerr != nil {
		return aerr
	}
	var de *drover.Error
	if errors.As(err, &de) {
		if de.Where == "" {
			return de.At("host " + c.name)
		}
		return err
	}
	return &drover.Error{Code: drover.EINTERNAL, Where: "host " + c.name, Err: err}
}

func (c *conn) State(ctx context.Context) (drover.HostState, error) {
	if err := c.alive(); err != nil {
		return drover.HostState{}, err
	}
	st, err := c.ops.State(ctx)
	return st, c.wrap(err)
}

// Stage stages req.Release's bundle file; its sha256 is checked while it
// is read.
func (c *conn) Stage(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if err := c.ready(); err != nil {
		return drover.StageResult{}, err
	}
	if req.Release == nil {
		return drover.StageResult{}, c.wrap(drover.Errorf(drover.EINVALID, "stage: no release in the request"))
	}
	l, err := c.ops.Lock(ctx, hostops.Holder{DeployID: req.DeployID, Step: "stage"})
	if err != nil {
		return drover.StageResult{}, c.wrap(err)
	}
	defer l.Unlock()
	res, err := c.ops.StageFile(ctx, req.Release.BundlePath, req)
	return res, c.wrap(err)
}

var _ drover.Validator = (*conn)(nil)

// Validate tries req.Release in a scratch directory (hostops.Validate):
// no deploy root is made, no lock taken.
func (c *conn) Validate(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if err := c.alive(); err != nil {
		return drover.StageResult{}, err
	}
	if req.Release == nil {
		return drover.StageResult{}, c.wrap(drover.Errorf(drover.EINVALID, "validate: no release in the request"))
	}
	res, err := c.ops.ValidateFile(ctx, req.Release.BundlePath, req)
	return res, c.wrap(err)
}

func (c *conn) Promote(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error) {
	if err := c.ready(); err != nil {
		return drover.HostState{}, err
	}
	l, err := c.ops.Lock(ctx, hostops.Holder{DeployID: req.DeployID, Step: "promote"})
	if err != nil {
		return drover.HostState{}, c.wrap(err)
	}
	defer l.Unlock()
	st, err := c.ops.Promote(ctx, req)
	return st, c.wrap(err)
}

func (c *conn) Restore(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
	if err := c.ready(); err != nil {
		return drover.HostState{}, err
	}
	l, err := c.ops.Lock(ctx, hostops.Holder{DeployID: req.DeployID, Step: "restore"})
	if err != nil {
		return drover.HostState{}, c.wrap(err)
	}
	defer l.Unlock()
	st, err := c.ops.Restore(ctx, req)
	return st, c.wrap(err)
}

// Exec runs req.Command with `sh -c` in the deploy root + req.Dir (""
// is the current release), see hostops.RunShell, under the host lock
// (hostops/lock.go): a hook changes the host.
func (c *conn) Exec(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error) {
	return c.exec(ctx, req, true)
}

// exec runs req; locked is false for a check's command, which only looks
// (and so creates nothing on the host: no deploy root either).
func (c *conn) exec(ctx context.Context, req drover.ExecRequest, locked bool) (drover.ExecResult, error) {
	check := c.alive
	if locked {
		check = c.ready
	}
	if err := check(); err != nil {
		return drover.ExecResult{}, err
	}
	dir := filepath.Join(c.root, hostops.CurrentLink)
	if req.Dir != "" {
		if !filepath.IsLocal(req.Dir) {
			return drover.ExecResult{}, c.wrap(drover.Errorf(drover.EINVALID, "exec: dir %q must be relative to the deploy root", req.Dir))
		}
		dir = filepath.Join(c.root, req.Dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return drover.ExecResult{}, c.wrap(drover.Errorf(drover.EFAILED, "exec: directory %s does not exist", dir))
	}
	env := append(os.Environ(), req.Env...)
	env = append(env, "DROVER_ROOT="+c.root, "DROVER_HOST="+c.name)
	if !locked {
		res, err := hostops.RunShell(ctx, dir, req.Command, env, req.Timeout)
		return res, c.wrap(err)
	}
	l, err := c.ops.Lock(ctx, hostops.HookHolder(req.Env))
	if err != nil {
		return drover.ExecResult{}, c.wrap(err)
	}
	defer l.Unlock()
	res, err := l.RunShell(ctx, dir, req.Command, env, req.Timeout)
	return res, c.wrap(err)
}

// Check runs one rendered check through RunCheck; command checks run in
// the current release directory.
func (c *conn) Check(ctx context.Context, spec drover.CheckSpec) (drover.CheckResult, error) {
	if err := c.alive(); err != nil {
		return drover.CheckResult{}, err
	}
	if c.runCheck == nil {
		return drover.CheckResult{}, c.wrap(drover.Errorf(drover.EINTERNAL, "no checker: transport local was opened without RunCheck"))
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = drover.DefaultCheckTimeout
	}
	exec := func(ctx context.Context, command string) (drover.ExecResult, error) {
		return c.exec(ctx, drover.ExecRequest{Command: command, Timeout: timeout}, false)
	}
	res := c.runCheck(ctx, spec, exec)
	if err := c.alive(); err != nil {
		return res, err
	}
	return res, nil
}

func (c *conn) ReadFile(ctx context.Context, path string) ([]byte, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	b, err := c.ops.ReadFile(ctx, path)
	return b, c.wrap(err)
}

func (c *conn) Prune(ctx context.Context, keep int, protect ...string) ([]string, error) {
	return c.prune(ctx, keep, false, protect)
}

// PruneForeign is Prune that also removes foreign releases
// (drover.ForeignPruner).
func (c *conn) PruneForeign(ctx context.Context, keep int, protect ...string) ([]string, error) {
	return c.prune(ctx, keep, true, protect)
}

func (c *conn) prune(ctx context.Context, keep int, foreign bool, protect []string) ([]string, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	l, err := c.ops.Lock(ctx, hostops.Holder{Step: "prune"})
	if err != nil {
		return nil, c.wrap(err)
	}
	defer l.Unlock()
	prune := c.ops.Prune
	if foreign {
		prune = c.ops.PruneForeign
	}
	removed, err := prune(ctx, keep, protect...)
	return removed, c.wrap(err)
}

func (c *conn) Close() error { return nil }
