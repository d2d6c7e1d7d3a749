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
	"drover/runview"
)

// progress is the state of one run (deploy, rollback or recovery) as the
// live view shows it: the run's view (runview, the same fold the web
// dashboard draws from) and the lines for above the live area.
type progress struct {
	v *runview.View
	// log holds lines for above the live area, in order, until taken.
	log   []string
	style style
}

func newProgress(st style) *progress {
	return &progress{v: runview.New(), style: st}
}

// started reports whether a deploy_start arrived.
func (p *progress) started() bool { return p.v.Started() }

// apply feeds one event to the model.
func (p *progress) apply(e drover.Event) {
	n := p.v.Apply(e)
	if n == nil {
		return
	}
	s := p.style
	switch n.Kind {
	case drover.EventNotice:
		msg := n.Message
		if n.Host != "" {
			msg = n.Host + ": " + msg
		}
		p.logf("%s %s", s.yellow("!"), msg)
	case drover.EventGateFailed:
		p.logf("%s group %s: gate failed: %s", s.red(s.cross()), n.Group, n.Message)
	case drover.EventHostFailed:
		p.logf("%s %s failed: %s", s.red(s.cross()), n.Host, n.Message)
	case drover.EventHostStuck:
		p.logf("%s %s needs a person: %s", s.red(s.cross()), n.Host, n.Message)
	case drover.EventHalt:
		p.logf("%s %s", s.red("HALT"), n.Message)
	case drover.EventAbort:
		p.logf("%s %s", s.red("ABORT"), n.Message)
	case drover.EventRollback:
		p.logf("%s %s", s.yellow("<<"), n.Message)
	}
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

// lines draws the view for a terminal width columns wide and at most
// height lines high (0: no limit), at time now. No line is wider than width.
func (p *progress) lines(width, height int, now time.Time) []string {
	s := p.style
	v := p.v
	var out []string
	if !p.started() {
		return nil
	}
	// The header: what runs, how long it has, how long it may still take.
	head := s.bold(v.Title)
	elapsed := now.Sub(v.Start)
	if v.Verdict != nil {
		// The final screen's clock stops at the verdict.
		elapsed = v.End.Sub(v.Start)
	}
	info := "elapsed " + fmtDur(elapsed)
	switch eta, ok := v.ETA(now); {
	case v.Verdict != nil:
		word := v.Verdict.Outcome
		if drover.OutcomeOf(word).Exit == drover.ExitOK {
			word = s.green(word)
		} else {
			word = s.red(word)
		}
		info += " · " + word
	case v.RollingBack:
		info += " · " + s.yellow("rolling back")
	case ok:
		info += " · ETA " + fmtDur(eta)
	case v.Staging:
		info += " · staging"
	}
	out = append(out, head, "  "+info)

	nameW := 6
	for _, g := range v.Groups {
		nameW = max(nameW, utf8.RuneCountInString(g.Name))
	}
	nameW = min(nameW, 16)
	// The bar takes what the counts leave, so they stay readable.
	counts := make([]string, len(v.Groups))
	countsW := 0
	for i, g := range v.Groups {
		counts[i] = p.groupCounts(g)
		countsW = max(countsW, visibleWidth(counts[i]))
	}
	barW := max(8, min(30, width-nameW-countsW-13))
	for i, g := range v.Groups {
		out = append(out, p.groupLine(g, nameW, barW, counts[i]))
	}

	// The hosts in flight: the current batch (or, while staging, the hosts
	// staging), each with its step and how long it has been at it.
	var busy []*runview.Host
	for _, g := range v.Groups {
		for _, h := range g.Hosts {
			if h.Step != "" {
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
		step := h.Step
		if strings.HasPrefix(step, string(rollout.StepCheck)) {
			step = s.yellow(fmt.Sprintf("%-9s", step))
		} else {
			step = fmt.Sprintf("%-9s", step)
		}
		out = append(out, fmt.Sprintf("    %-*s %s %s", nameW, h.Name, step, s.dim(fmtDur(now.Sub(h.StepStart)))))
	}
	if height > 0 && len(out) > height {
		out = out[:height]
	}
	for i := range out {
		out[i] = fit(out[i], width)
	}
	return out
}

func (p *progress) groupLine(g *runview.Group, nameW, barW int, counts string) string {
	s := p.style
	frac := p.v.Frac(g)
	failing := false
	for _, h := range g.Hosts {
		failing = failing || h.Failed
	}
	name := fmt.Sprintf("%-*s", nameW, g.Name)
	if g.Done {
		name = s.green(name)
	}
	line := fmt.Sprintf("  %s %s %3d%%  %s", name, s.bar(frac, barW, failing), int(frac*100), counts)
	if g.Gate != "" {
		line += "  " + s.yellow("gate: "+g.Gate)
	}
	return line
}

// groupCounts says how many hosts of g staged, were promoted, are being
// checked, failed (out of the limit), and skipped, rolled back or stuck
// when any are.
func (p *progress) groupCounts(g *runview.Group) string {
	s := p.style
	c := runview.Count(g)
	var counts []string
	if p.v.Operation == drover.KindDeploy {
		counts = append(counts, fmt.Sprintf("staged %d", c.Staged), fmt.Sprintf("promoted %d", c.Promoted))
	}
	counts = append(counts, fmt.Sprintf("checking %d", c.Checking))
	f := fmt.Sprintf("failed %d/%d", c.Failed, g.FailureLimit)
	if c.Failed > g.FailureLimit {
		f = s.red(f)
	} else if c.Failed > 0 {
		f = s.yellow(f)
	}
	counts = append(counts, f)
	if c.Skipped > 0 {
		counts = append(counts, s.dim(fmt.Sprintf("skipped %d", c.Skipped)))
	}
	if c.RolledBack > 0 {
		counts = append(counts, s.yellow(fmt.Sprintf("rolled back %d", c.RolledBack)))
	}
	if c.Stuck > 0 {
		counts = append(counts, s.red(fmt.Sprintf("stuck %d", c.Stuck)))
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
