package main

// This file draws the progress model (progress.go) on a terminal: it
// redraws the live area in place with ANSI cursor movement, prints lines
// that must stay (failures, the halt, notices) above it, and leaves the
// final screen in place for the verdict.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"drover"
	"drover/rollout"
	"drover/runner"
)

const (
	// frameInterval bounds redraws to 10 a second: events can arrive by
	// the hundred while 200 hosts stage, and a terminal drawing each one
	// slows the deploy down and flickers.
	frameInterval = 100 * time.Millisecond
	// clockInterval redraws an unchanged screen so elapsed times move.
	clockInterval = time.Second
)

// liveView is the progress view on a terminal. Emit only updates the
// model; one goroutine, started on the first event and stopped by verdict
// or close, draws at most every frameInterval.
type liveView struct {
	mu       sync.Mutex
	w        io.Writer
	size     func() (width, height int)
	now      func() time.Time
	style    style
	model    *progress
	drawn    int // lines of the live area on screen now
	dirty    bool
	lastDraw time.Time
	frames   int
	// shown: the failures printed in full so far (errtext.go).
	shown shownErrors
	// signal is the signal that interrupted the run (interrupt.go),
	// running the steps in flight, ended whether the verdict came.
	signal  os.Signal
	running map[string]runningStep
	ended   bool

	// manual: no drawing goroutine; a test calls tick itself.
	manual    bool
	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
}

func newLiveView(w io.Writer, fd int, st style) *liveView {
	v := &liveView{
		w: w, style: st, now: time.Now, model: newProgress(st),
		stop: make(chan struct{}), done: make(chan struct{}),
		size: func() (int, int) {
			wd, ht, err := term.GetSize(fd)
			if err != nil || wd <= 0 || ht <= 0 {
				return 80, 24
			}
			return wd, ht
		},
	}
	return v
}

// Emit implements drover.EventSink.
func (v *liveView) Emit(e drover.Event) {
	v.startOnce.Do(func() {
		if v.manual {
			close(v.done)
			return
		}
		go v.loop()
	})
	e = termEvent(e) // termsafe.go
	v.mu.Lock()
	defer v.mu.Unlock()
	v.track(e)
	block := v.errorsOnce(&e)
	defer func() { v.model.log = append(v.model.log, block...) }()
	if e.Kind == drover.EventDeployStart && v.model.started() {
		// A new run in the same command (a recovery, then the deploy):
		// the finished one's screen stays, the new one draws below it.
		v.drawLocked()
		v.drawn = 0
		v.model = newProgress(v.style)
	}
	v.model.apply(e)
	v.dirty = true
}

// track keeps the steps in flight and their deadlines, for the
// explanation after a signal (interrupt.go).
func (v *liveView) track(e drover.Event) {
	switch e.Kind {
	case drover.EventStepStart:
		r := runningStep{host: e.Host, step: stepLabel(e)}
		if e.Timeout > 0 {
			r.deadline = e.Time.Add(e.Timeout)
		}
		if v.running == nil {
			v.running = map[string]runningStep{}
		}
		v.running[e.Host+"/"+e.Step] = r
	case drover.EventStepDone:
		delete(v.running, e.Host+"/"+e.Step)
	case drover.EventVerdict:
		v.running, v.ended = nil, true
	case drover.EventDeployStart:
		v.ended = false
	}
}

// interrupted shows, from the next frame on, what the signal does.
func (v *liveView) interrupted(sig os.Signal) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.signal = sig
	v.dirty = true
}

// errorsOnce prints each failure once (errtext.go): a failed step's
// error is remembered; the host's failure line that quotes it leaves it
// out and is followed by the error, whole and indented; the halt and the
// rollback leave it out. It returns the lines to log after e's own.
func (v *liveView) errorsOnce(e *drover.Event) []string {
	switch e.Kind {
	case drover.EventStepDone:
		if e.Outcome != string(rollout.OK) && e.Message != "" {
			v.shown.record(e.Host, e.Message)
		}
	case drover.EventHostFailed, drover.EventHostStuck:
		full := v.shown.byHost[e.Host]
		quoted := full != "" && strings.Contains(e.Message, full)
		e.Message = v.shown.strip(e.Message)
		if quoted {
			return indentLines(strings.TrimPrefix(full, "host "+e.Host+": "), "    ", 0)
		}
	case drover.EventHalt, drover.EventAbort, drover.EventRollback:
		e.Message = v.shown.strip(e.Message)
	}
	return nil
}

func (v *liveView) loop() {
	defer close(v.done)
	t := time.NewTicker(frameInterval)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			v.tick()
		}
	}
}

// tick draws when something changed, or when the clock on screen is a
// second old; never more than once per call.
func (v *liveView) tick() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dirty || v.now().Sub(v.lastDraw) >= clockInterval {
		v.drawLocked()
	}
}

// drawLocked redraws the live area in one write: up to its first line,
// then each line cleared and rewritten, the log lines first so they stay
// above, then everything below the area cleared in case it shrank.
func (v *liveView) drawLocked() {
	width, height := v.size()
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA", v.drawn)
	}
	for _, l := range v.model.takeLog() {
		// Lines that stay are wrapped, not cut: the end of a failure
		// is often what says what is wrong. A line the terminal wrapped
		// itself would leave old rows uncleared; styled ones are
		// drover's own and fit.
		for _, wl := range wrapLine(l, width, "      ") {
			b.WriteString("\r\x1b[2K" + fit(wl, width) + "\n")
		}
	}
	// One line short of the screen: a live area taller than the
	// terminal scrolls, and cursor-up cannot reach lines scrolled away.
	now := v.now()
	notice := v.interruptLines(width, now)
	lines := append(v.model.lines(width, max(height-1-len(notice), 3), now), notice...)
	for _, l := range lines {
		b.WriteString("\r\x1b[2K" + l + "\n")
	}
	b.WriteString("\x1b[J")
	io.WriteString(v.w, b.String())
	v.drawn = len(lines)
	v.dirty = false
	v.lastDraw = v.now()
	v.frames++
}

// close stops the drawing goroutine and draws the final screen.
func (v *liveView) close() {
	v.stopOnce.Do(func() {
		interrupts.release(v)
		close(v.stop)
		// Never started: there is no goroutine to wait for.
		v.startOnce.Do(func() { close(v.done) })
		<-v.done
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.model.started() || len(v.model.log) > 0 {
			v.drawLocked()
		}
	})
}

// verdict leaves the final screen and prints the verdict below it.
func (v *liveView) verdict(out *runner.Outcome) {
	v.close()
	v.mu.Lock()
	defer v.mu.Unlock()
	writeVerdict(v.w, false, v.style, out, &v.shown)
}
