package main

// This file routes the explanation of a first Ctrl-C. Written to stderr
// under the live progress view, it was drawn over at the next frame, and
// a check with a 30s timeout then ran on with nothing on screen saying
// why the deploy had not stopped. When a live view is on screen, it
// shows the explanation inside its area, with the steps still running
// and how long each may take, until the run ends.

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// interruptWords is what the first signal does; signalAgainWords what a
// second one would.
const (
	interruptWords   = "halting: no new host starts; the steps running finish (each within its timeout), then every host this deploy switched goes back"
	signalAgainWords = "stops at once: running steps are cut off, hosts may stay switched or out of rotation; `drover resume` puts them back from the journal"
)

// interruptRoute is where main sends the first signal's explanation: to
// the live view on screen, if one claimed it, else stderr.
type interruptRoute struct {
	mu   sync.Mutex
	view *liveView
}

var interrupts interruptRoute

func (r *interruptRoute) claim(v *liveView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.view = v
}

func (r *interruptRoute) release(v *liveView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.view == v {
		r.view = nil
	}
}

// show tells the live view, if any, about sig; false when none showed it.
func (r *interruptRoute) show(sig os.Signal) bool {
	r.mu.Lock()
	v := r.view
	r.mu.Unlock()
	if v == nil {
		return false
	}
	v.interrupted(sig)
	return true
}

// signalName is how the operator sent sig.
func signalName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "Ctrl-C"
	}
	return sig.String()
}

// runningStep is a step in flight and when its timeout ends it.
type runningStep struct {
	host, step string
	deadline   time.Time
}

// interruptLines is the explanation drawn at the bottom of the live
// area after a signal: what happens now, what is still running and for
// how long at most, and what a second signal does. Once the run ended
// one line says it was interrupted; the verdict says the rest.
func (v *liveView) interruptLines(width int, now time.Time) []string {
	if v.signal == nil {
		return nil
	}
	s := v.style
	name := signalName(v.signal)
	if v.ended {
		return []string{s.yellow("! interrupted by " + name)}
	}
	out := []string{s.yellow("! "+name+": ") + interruptWords}
	steps := make([]runningStep, 0, len(v.running))
	for _, r := range v.running {
		steps = append(steps, r)
	}
	sort.Slice(steps, func(i, j int) bool {
		if !steps[i].deadline.Equal(steps[j].deadline) {
			return steps[i].deadline.Before(steps[j].deadline)
		}
		return steps[i].host < steps[j].host
	})
	if len(steps) == 0 {
		out = append(out, "    still running: nothing; finishing up")
	} else {
		var parts []string
		for _, r := range steps {
			p := r.host + " " + r.step
			switch left := r.deadline.Sub(now); {
			case r.deadline.IsZero():
			case left > 0:
				p += fmt.Sprintf(" (ends within %s)", fmtDur(left.Round(time.Second)))
			default:
				p += " (at its deadline)"
			}
			parts = append(parts, p)
		}
		out = append(out, "    still running: "+strings.Join(parts, ", "))
	}
	out = append(out, "    "+name+" again "+signalAgainWords)
	return wrapAll(out, width)
}

func wrapAll(lines []string, width int) []string {
	var out []string
	for _, l := range lines {
		out = append(out, wrapLine(stripANSIIf(l, width), width, "      ")...)
	}
	return out
}

// stripANSIIf drops the styles of a line too wide to fit, so it can be
// wrapped rather than cut.
func stripANSIIf(l string, width int) string {
	if visibleWidth(l) > width {
		return stripANSI(l)
	}
	return l
}
