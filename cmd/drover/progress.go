package main

// This file is the model of the live progress view: deploy events go in,
// screen lines come out. It is pure — no terminal, no clock, no goroutine:
// the renderer (progress_term.go) passes the width, the height and now, so
// every screen it can draw is reproducible in a unit test.

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"drover"
	"drover/rollout"
)

// hostPhase is where one host stands, as far as the events tell.
type hostPhase int

const (
	phasePending hostPhase = iota
	phaseSkipped
	phaseDone
	phaseFailed     // counted failure; restored or being restored
	phaseRolledBack // switched, then back on its snapshot
	phaseStuck      // a restoring step failed: needs a person
)

type progHost struct {
	name  string
	group *progGroup
	phase hostPhase
	// step is the host's step in flight, or the one it just finished
	// while its path goes on (idle), and since when: a host between two
	// steps stays on screen instead of blinking out for a moment.
	step      string
	idle      bool
	stepStart time.Time
	// units counts finished steps of the host's path, for the bar.
	units int
	// pathStart is when the host's promotion (or restore) path began,
	// for the durations the ETA is computed from.
	pathStart   time.Time
	staged      bool
	failed      bool
	unreachable bool
}

type progGroup struct {
	name         string
	hosts        []*progHost
	batch, limit int
	started      bool
	done         bool
	// gate is the gate the group waits on (a bake, an approval), if any.
	gate string
}

// progress is the state of one run (deploy, rollback or recovery) as the
// live view shows it.
type progress struct {
	begun     bool
	deploy    string
	operation string
	title     string
	start     time.Time
	groups    []*progGroup
	hosts     map[string]*progHost
	// pathLen is how many steps a host's whole path has: stage plus five
	// promotion steps for a deploy, five restore steps otherwise.
	pathLen int
	staging bool
	// rollingBack is set from rollback_start: the ETA no longer applies.
	rollingBack bool
	halt        string
	outcome     string // of the verdict event
	finished    bool
	end         time.Time
	// durations are the promotion paths of hosts that finished them.
	durations []time.Duration
	// log holds lines for above the live area, in order, until taken.
	log   []string
	style style
}

func newProgress(st style) *progress {
	return &progress{hosts: map[string]*progHost{}, style: st, pathLen: 6}
}

// started reports whether a deploy_start arrived.
func (p *progress) started() bool { return p.begun }

// apply feeds one event to the model.
func (p *progress) apply(e drover.Event) {
	s := p.style
	switch e.Kind {
	case drover.EventDeployStart:
		p.begin(e)
		return
	case drover.EventNotice:
		msg := e.Message
		if e.Host != "" {
			msg = e.Host + ": " + msg
		}
		p.logf("%s %s", s.yellow("!"), msg)
		return
	}
	h := p.hosts[e.Host]
	switch e.Kind {
	case drover.EventStageStart:
		p.staging = true
	case drover.EventStageDone:
		p.staging = false
	case drover.EventGroupStart:
		if g := p.group(e.Group); g != nil {
			g.started = true
		}
	case drover.EventGroupDone:
		if g := p.group(e.Group); g != nil {
			g.done = true
		}
	case drover.EventGateStart:
		if g := p.group(e.Group); g != nil {
			g.gate = e.Message
		}
	case drover.EventGateDone:
		if g := p.group(e.Group); g != nil {
			g.gate = ""
		}
	case drover.EventGateFailed:
		if g := p.group(e.Group); g != nil {
			g.gate = ""
		}
		p.logf("%s group %s: gate failed: %s", s.red(s.cross()), e.Group, e.Message)
	case drover.EventStepStart:
		if h == nil {
			return
		}
		if e.Step != string(rollout.StepStage) && h.pathStart.IsZero() {
			h.pathStart = e.Time
		}
		h.step, h.idle, h.stepStart = stepLabel(e), false, e.Time
	case drover.EventStepDone:
		if h == nil {
			return
		}
		h.idle = true
		if e.Step == string(rollout.StepStage) {
			// Staged hosts wait for their batch; off the screen.
			h.step = ""
		}
		switch e.Outcome {
		case string(rollout.OK):
			if e.Step == string(rollout.StepStage) {
				h.staged = true
			}
			// A bar never runs backwards: restoring steps after a
			// failure or a halt count as going on, up to the end.
			h.units = min(h.units+1, p.pathLen-1)
		case string(rollout.Unreachable):
			h.unreachable = true
		}
	case drover.EventHostDone:
		if h != nil {
			h.phase, h.units, h.step = phaseDone, p.pathLen, ""
			if !h.pathStart.IsZero() {
				p.durations = append(p.durations, e.Time.Sub(h.pathStart))
			}
		}
	case drover.EventHostFailed:
		if h != nil {
			h.failed, h.phase, h.units = true, phaseFailed, p.pathLen
			if h.unreachable {
				h.step = "" // nothing more will be done to it
			}
		}
		p.logf("%s %s failed: %s", s.red(s.cross()), e.Host, e.Message)
	case drover.EventHostRestored:
		if h != nil {
			h.step = ""
			if h.phase == phasePending {
				h.units = p.pathLen
			}
		}
	case drover.EventHostRolledBack:
		if h != nil {
			h.phase, h.units, h.step = phaseRolledBack, p.pathLen, ""
			if p.operation != drover.KindDeploy && !h.pathStart.IsZero() {
				p.durations = append(p.durations, e.Time.Sub(h.pathStart))
			}
		}
	case drover.EventHostStuck:
		if h != nil {
			h.phase, h.units, h.step = phaseStuck, p.pathLen, ""
		}
		p.logf("%s %s needs a person: %s", s.red(s.cross()), e.Host, e.Message)
	case drover.EventHalt:
		p.halt = e.Message
		p.logf("%s %s", s.red("HALT"), e.Message)
	case drover.EventAbort:
		p.logf("%s %s", s.red("ABORT"), e.Message)
	case drover.EventRollback:
		p.rollingBack = true
		p.logf("%s %s", s.yellow("<<"), e.Message)
	case drover.EventVerdict:
		p.finished, p.end = true, e.Time
		for _, h := range p.hosts {
			h.step = ""
		}
		p.outcome = e.Outcome
	}
}

func (p *progress) begin(e drover.Event) {
	p.begun, p.deploy, p.operation, p.start = true, e.Deploy, e.Operation, e.Time
	if p.operation == "" {
		p.operation = drover.KindDeploy
	}
	if p.operation != drover.KindDeploy {
		p.pathLen = 5
	}
	p.title = e.Message
	for _, eg := range e.Groups {
		g := &progGroup{name: eg.Name, batch: max(eg.Batch, 1), limit: eg.FailureLimit}
		skip := map[string]bool{}
		for _, n := range eg.Skipped {
			skip[n] = true
		}
		for _, n := range eg.Hosts {
			h := &progHost{name: n, group: g}
			if skip[n] {
				h.phase, h.units = phaseSkipped, p.pathLen
			}
			g.hosts = append(g.hosts, h)
			p.hosts[n] = h
		}
		p.groups = append(p.groups, g)
	}
}

func (p *progress) group(name string) *progGroup {
	for _, g := range p.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

func (p *progress) logf(format string, args ...any) {
	p.log = append(p.log, fmt.Sprintf(format, args...))
}

// takeLog returns the lines for above the live area and forgets them.
func (p *progress) takeLog() []string {
	l := p.log
	p.log = nil
	return l
}

// eta estimates the time left from the promotion paths finished so far:
// the hosts in flight finish one average path after they started, then
// each group's remaining hosts take one average path per batch. It is
// unknown (ok false) before any host finished, and meaningless once a
// rollback began.
func (p *progress) eta(now time.Time) (time.Duration, bool) {
	if len(p.durations) == 0 || p.rollingBack || p.finished {
		return 0, false
	}
	var sum time.Duration
	for _, d := range p.durations {
		sum += d
	}
	avg := sum / time.Duration(len(p.durations))
	var left time.Duration
	for _, h := range p.hosts {
		if h.phase == phasePending && !h.pathStart.IsZero() {
			left = max(left, avg-now.Sub(h.pathStart))
		}
	}
	for _, g := range p.groups {
		queued := 0
		for _, h := range g.hosts {
			if h.phase == phasePending && h.pathStart.IsZero() && !h.failed {
				queued++
			}
		}
		left += time.Duration((queued+g.batch-1)/g.batch) * avg
	}
	return max(left, 0), true
}

// lines draws the view for a terminal width columns wide and at most
// height lines high (0: no limit), at time now. No line is wider than width.
func (p *progress) lines(width, height int, now time.Time) []string {
	s := p.style
	var out []string
	if !p.started() {
		return nil
	}
	// The header: what runs, how long it has, how long it may still take.
	head := s.bold(p.title)
	elapsed := now.Sub(p.start)
	if p.finished {
		// The final screen's clock stops at the verdict.
		elapsed = p.end.Sub(p.start)
	}
	info := "elapsed " + fmtDur(elapsed)
	switch eta, ok := p.eta(now); {
	case p.finished:
		word := p.outcome
		if drover.OutcomeOf(word).Exit == drover.ExitOK {
			word = s.green(word)
		} else {
			word = s.red(word)
		}
		info += " · " + word
	case p.rollingBack:
		info += " · " + s.yellow("rolling back")
	case ok:
		info += " · ETA " + fmtDur(eta)
	case p.staging:
		info += " · staging"
	}
	out = append(out, head, "  "+info)

	nameW := 6
	for _, g := range p.groups {
		nameW = max(nameW, utf8.RuneCountInString(g.name))
	}
	nameW = min(nameW, 16)
	// The bar takes what the counts leave, so they stay readable.
	counts := make([]string, len(p.groups))
	countsW := 0
	for i, g := range p.groups {
		counts[i] = p.groupCounts(g)
		countsW = max(countsW, visibleWidth(counts[i]))
	}
	barW := max(8, min(30, width-nameW-countsW-13))
	for i, g := range p.groups {
		out = append(out, p.groupLine(g, nameW, barW, counts[i]))
	}

	// The hosts in flight: the current batch (or, while staging, the hosts
	// staging), each with its step and how long it has been at it.
	var busy []*progHost
	for _, g := range p.groups {
		for _, h := range g.hosts {
			if h.step != "" {
				busy = append(busy, h)
			}
		}
	}
	room := len(busy)
	if height > 0 {
		room = min(room, max(height-len(out)-1, 1))
	}
	for i, h := range busy {
		if i == room-1 && room < len(busy) {
			out = append(out, fmt.Sprintf("    … and %d more", len(busy)-i))
			break
		}
		step := h.step
		if strings.HasPrefix(step, string(rollout.StepCheck)) {
			step = s.yellow(fmt.Sprintf("%-9s", step))
		} else {
			step = fmt.Sprintf("%-9s", step)
		}
		out = append(out, fmt.Sprintf("    %-*s %s %s", nameW, h.name, step, s.dim(fmtDur(now.Sub(h.stepStart)))))
	}
	if height > 0 && len(out) > height {
		out = out[:height]
	}
	for i := range out {
		out[i] = fit(out[i], width)
	}
	return out
}

// groupFrac is how far the group is: finished steps over all steps.
func (p *progress) groupFrac(g *progGroup) float64 {
	units := 0
	for _, h := range g.hosts {
		units += h.units
	}
	if len(g.hosts) == 0 {
		return 0
	}
	return float64(units) / float64(len(g.hosts)*p.pathLen)
}

func (p *progress) groupLine(g *progGroup, nameW, barW int, counts string) string {
	s := p.style
	frac := p.groupFrac(g)
	failing := false
	for _, h := range g.hosts {
		failing = failing || h.failed
	}
	name := fmt.Sprintf("%-*s", nameW, g.name)
	if g.done {
		name = s.green(name)
	}
	line := fmt.Sprintf("  %s %s %3d%%  %s", name, s.bar(frac, barW, failing), int(frac*100), counts)
	if g.gate != "" {
		line += "  " + s.yellow("gate: "+g.gate)
	}
	return line
}

// groupCounts says how many hosts of g staged, were promoted, are being
// checked, failed (out of the limit), and skipped, rolled back or stuck
// when any are.
func (p *progress) groupCounts(g *progGroup) string {
	s := p.style
	var staged, promoted, checking, failed, skipped, rolledBack, stuck int
	for _, h := range g.hosts {
		if h.staged {
			staged++
		}
		switch h.phase {
		case phaseDone:
			promoted++
		case phaseSkipped:
			skipped++
		case phaseRolledBack:
			rolledBack++
		case phaseStuck:
			stuck++
		}
		if h.failed {
			failed++
		}
		if !h.idle && strings.HasPrefix(h.step, string(rollout.StepCheck)) {
			checking++
		}
	}
	var counts []string
	if p.operation == drover.KindDeploy {
		counts = append(counts, fmt.Sprintf("staged %d", staged), fmt.Sprintf("promoted %d", promoted))
	}
	counts = append(counts, fmt.Sprintf("checking %d", checking))
	f := fmt.Sprintf("failed %d/%d", failed, g.limit)
	if failed > g.limit {
		f = s.red(f)
	} else if failed > 0 {
		f = s.yellow(f)
	}
	counts = append(counts, f)
	if skipped > 0 {
		counts = append(counts, s.dim(fmt.Sprintf("skipped %d", skipped)))
	}
	if rolledBack > 0 {
		counts = append(counts, s.yellow(fmt.Sprintf("rolled back %d", rolledBack)))
	}
	if stuck > 0 {
		counts = append(counts, s.red(fmt.Sprintf("stuck %d", stuck)))
	}
	return strings.Join(counts, "  ")
}

// fmtDur prints a duration for people: 850ms, 4.2s, 1m05s.
func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// fit cuts s to width visible columns, skipping ANSI escape sequences when
// counting and closing any style it cut off. Every rune counts one column:
// the view draws no wide characters.
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	var b strings.Builder
	n := 0
	styled := false
	for i := 0; i < len(s); {
		if s[i] == '\x1b' {
			j := i + 1
			for j < len(s) && !(s[j] >= '@' && s[j] <= '~' && j > i+1) {
				j++
			}
			if j < len(s) {
				j++
			}
			b.WriteString(s[i:j])
			styled = true
			i = j
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if n == width {
			if styled {
				b.WriteString(ansiReset)
			}
			return b.String()
		}
		b.WriteRune(r)
		n++
		i += size
	}
	return b.String()
}

// visibleWidth is how many columns s takes on a terminal.
func visibleWidth(s string) int {
	return utf8.RuneCountInString(stripANSI(s))
}

// stripANSI removes ANSI escape sequences.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == '\x1b' {
			j := i + 1
			for j < len(s) && !(s[j] >= '@' && s[j] <= '~' && j > i+1) {
				j++
			}
			i = min(j+1, len(s))
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}
