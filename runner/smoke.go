package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"drover"
	"drover/check"
	"drover/rollout"
)

// This file turns drover.yaml's smoke checks into gates, and runs commands
// on the controller — the machine running drover — for smoke checks and
// invariant sources.
//
// Why on the controller: a host's own checks already passed before its
// group's gates run; a smoke test is there to see the service the way its
// users do, through the load balancer, after the whole group changed. A
// canary whose every check passes while the public endpoint returns 500s
// must stop the deploy before the next group follows it.

// gateGrace is added to a gate's own timeout for its bound as a step: the
// last attempt of a check may start just before the timeout runs out.
const gateGrace = 10 * time.Second

// specGates returns the gates drover.yaml asks for after group g: the
// group's smoke checks, then after the last group of the deploy the
// deploy-level smoke checks, then the invariants compared at that point.
// They come from the spec, so every caller of Deploy gets them without
// registering anything; Runner.GateSources add gates of other kinds.
func (x *executor) specGates(g drover.Group, last bool) []groupGate {
	var out []groupGate
	for _, c := range g.Smoke {
		out = append(out, x.smokeGate("smoke "+c.Name, g.Name, c))
	}
	if last {
		for _, c := range x.spec.Smoke {
			out = append(out, x.smokeGate("deploy smoke "+c.Name, "", c))
		}
	}
	for _, inv := range x.spec.Invariants {
		if last || inv.After == drover.InvariantAfterGroup {
			out = append(out, x.invariantGate(g.Name, inv))
		}
	}
	return out
}

// smokeGate is one smoke check as a run gate. group is "" for the
// deploy-level checks.
func (x *executor) smokeGate(name, group string, c drover.CheckSpec) groupGate {
	return groupGate{
		plan: rollout.Gate{Name: name, Kind: rollout.GateRun}, kind: "smoke",
		run:     func(ctx context.Context) error { return x.runSmoke(ctx, group, c) },
		timeout: c.Timeout + gateGrace,
	}
}

// runSmoke runs one smoke check from the controller, retried until it
// passes or its timeout runs out. The error carries the check's last
// failure; the core puts the gate's name before it in the halt reason
// ("gate smoke lb failed: http GET ...: status 503, want 200").
func (x *executor) runSmoke(ctx context.Context, group string, c drover.CheckSpec) error {
	rc, err := drover.RenderGateCheck(c, x.gateData())
	if err != nil {
		return err
	}
	env := x.gateEnv(group)
	res, err := check.RunErr(ctx, rc, func(ctx context.Context, command string) (drover.ExecResult, error) {
		r, err := runController(ctx, command, x.controllerDir(), env)
		return drover.ExecResult{ExitCode: r.exitCode, Output: r.stdout + r.stderr}, err
	})
	switch {
	case err != nil:
		return &drover.Error{Code: drover.ErrorCode(err), Message: res.Reason}
	case !res.OK:
		return &drover.Error{Code: drover.EFAILED, Message: fmt.Sprintf("%s (%d attempts in %s)", res.Reason, res.Attempts, res.Elapsed.Round(100*time.Millisecond))}
	}
	return nil
}

// gateData is what smoke and invariant templates see during this deploy.
func (x *executor) gateData() drover.GateData {
	return drover.NewGateData(x.spec, x.release.ID(), x.release.Version())
}

// gateEnv is the environment of commands run on the controller: drover's
// own, plus the deploy in DROVER_* variables, so a script needs no
// templates (and no quoting) to know what it is testing.
func (x *executor) gateEnv(group string) []string {
	return append(os.Environ(),
		"DROVER_SERVICE="+x.spec.Service,
		"DROVER_ENV="+x.spec.Env,
		"DROVER_RELEASE="+x.release.ID(),
		"DROVER_VERSION="+x.release.Version(),
		"DROVER_DEPLOY="+x.deployID,
		"DROVER_GROUP="+group,
	)
}

// controllerDir is where commands run on the controller start: the config
// file's directory, so a relative script path in drover.yaml means the
// same file wherever drover is run from.
func (x *executor) controllerDir() string {
	dir, err := filepath.Abs(filepath.Dir(x.spec.Source))
	if err != nil {
		return "."
	}
	return dir
}

// controllerOutput bounds what is kept of a controller command's stdout
// (an invariant's document) and stderr (why it failed).
const (
	controllerStdout = 4 << 20
	controllerStderr = 4 << 10
)

type controllerResult struct {
	exitCode       int
	stdout, stderr string
	// truncated: stdout was longer than controllerStdout.
	truncated bool
}

// runController runs command with `sh -c` on this machine, in dir, until
// ctx ends. Like a hook on a host it gets its own process group, killed
// whole when ctx ends, and stdin is empty so it never waits for a person.
// A command that ran and exited non-zero is a result, not an error.
func runController(ctx context.Context, command, dir string, env []string) (controllerResult, error) {
	stdout := &capBuffer{max: controllerStdout}
	stderr := &capBuffer{max: controllerStderr, tail: true}
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A background child holding the pipes must not hold the gate.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	res := controllerResult{stdout: stdout.String(), stderr: stderr.String(), truncated: stdout.cut}
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return res, nil
	}
	if ctx.Err() != nil {
		return res, &drover.Error{Code: drover.ETIMEOUT, Message: "command on the controller did not finish in time", Err: ctx.Err()}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.exitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.exitCode = 128 + int(ws.Signal())
		}
		return res, nil
	}
	return res, &drover.Error{Code: drover.EFAILED, Message: "cannot run command on the controller in " + dir, Err: err}
}

// capBuffer keeps the first (or, with tail, the last) max bytes written.
type capBuffer struct {
	max  int
	tail bool
	b    bytes.Buffer
	cut  bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if c.tail {
		c.b.Write(p)
		if over := c.b.Len() - c.max; over > 0 {
			c.b.Next(over)
			c.cut = true
		}
		return n, nil
	}
	if room := c.max - c.b.Len(); room < len(p) {
		p = p[:max(room, 0)]
		c.cut = true
	}
	c.b.Write(p)
	return n, nil
}

func (c *capBuffer) String() string { return c.b.String() }
