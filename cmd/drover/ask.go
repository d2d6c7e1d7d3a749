package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"drover"
	"drover/runner"
)

// This file asks the confirm gates' questions (groups with confirm: true).
// The contract: --yes answers every question; without it drover asks on a
// terminal; without a terminal it never waits for input — a deploy that
// would ask is refused at the start, exit 2, before anything is touched.

// checkConfirm refuses a deploy that will need a person's answer when there
// is no terminal to ask on and no --yes: finding out after the canary was
// switched would leave the fleet half-deployed, waiting on a prompt that a
// CI job never shows.
func (a *app) checkConfirm(spec *drover.Spec, limit string, yes bool) error {
	if yes || isTerminal(a.stdin) {
		return nil
	}
	asks, err := runner.ConfirmGroups(spec, limit)
	if err != nil {
		return err
	}
	if len(asks) == 0 {
		return nil
	}
	return &usageError{fmt.Errorf("%s: group %s has confirm: true and there is no terminal to ask on; nothing was changed: pass --yes to confirm in advance, or run drover in a terminal",
		spec.Source, strings.Join(asks, ", "))}
}

// confirmer is Runner.Confirm for a deploy: yes for --yes, a question on
// the terminal otherwise (nil without one: checkConfirm refused already).
// cmdCtx is the command's context, cancelled by Ctrl-C, which answers no:
// the gate itself runs under a context an interrupt does not cancel, and a
// person pressing Ctrl-C at a prompt means stop.
func (a *app) confirmer(cmdCtx context.Context, yes bool, out eventOutput) func(ctx context.Context, question string) (bool, error) {
	if yes {
		return func(context.Context, string) (bool, error) { return true, nil }
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	return func(ctx context.Context, question string) (bool, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(cmdCtx, cancel)
		defer stop()
		var answer string
		var err error
		ask := func() {
			fmt.Fprintf(a.stderr, "\n%s [y/N] ", question)
			answer, err = readLine(ctx, f)
			if err != nil {
				fmt.Fprintln(a.stderr)
			}
		}
		if h, ok := out.(interface{ hold(func()) }); ok {
			h.hold(ask)
		} else {
			ask()
		}
		if err != nil {
			if cmdCtx.Err() != nil {
				return false, nil // Ctrl-C: no
			}
			return false, err
		}
		switch strings.ToLower(strings.TrimSpace(answer)) {
		case "y", "yes":
			return true, nil
		}
		return false, nil
	}
}

// readLine reads one line from the terminal f, giving up when ctx is done.
// It polls rather than blocking in read: a read blocked on a terminal
// cannot be interrupted, and the goroutine doing it would outlive the
// question.
func readLine(ctx context.Context, f *os.File) (string, error) {
	fd := int(f.Fd())
	var line []byte
	buf := make([]byte, 256)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return "", fmt.Errorf("reading the answer: %w", err)
		case n == 0:
			continue
		}
		k, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading the answer: %w", err)
		}
		if k == 0 {
			return "", io.EOF
		}
		line = append(line, buf[:k]...)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			return string(line[:i]), nil
		}
		if len(line) > 4096 {
			return string(line), nil
		}
	}
}

// hold draws the live view once and keeps it from redrawing while fn asks
// a question below it; the next frame is drawn under the answer.
func (v *liveView) hold(fn func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.drawLocked()
	fn()
	v.drawn = 0
	v.dirty = true
}
