package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/rollout"
	"drover/runner"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// script builds events of one deploy: canary h01, then default h02..h05
// in batches of 2 with a failure limit of 1.
type script struct{ events []drover.Event }

func (s *script) add(sec float64, e drover.Event) {
	e.Time, e.Deploy, e.Schema = at(sec), "d-1", drover.EventSchema
	s.events = append(s.events, e)
}

func (s *script) step(sec, took float64, host, group, step, outcome string) {
	s.add(sec, drover.Event{Kind: drover.EventStepStart, Host: host, Group: group, Step: step})
	if outcome != "" {
		s.add(sec+took, drover.Event{Kind: drover.EventStepDone, Host: host, Group: group, Step: step, Outcome: outcome})
	}
}

// promote runs a host's whole promotion path, a second per step.
func (s *script) promote(sec float64, host, group string) {
	for i, st := range []string{"depool", "switch", "restart", "check", "repool"} {
		s.step(sec+float64(i), 1, host, group, st, "ok")
	}
	s.add(sec+5, drover.Event{Kind: drover.EventHostDone, Host: host, Group: group})
}

func startScript() *script {
	s := &script{}
	s.add(0, drover.Event{Kind: drover.EventDeployStart, Operation: drover.KindDeploy, Message: "deploy hello 2.0.0 (2.0.0-abc) to 5 hosts, 5 to change",
		Groups: []drover.EventGroup{
			{Name: "canary", Hosts: []string{"h01"}, Batch: 1},
			{Name: "default", Hosts: []string{"h02", "h03", "h04", "h05"}, Batch: 2, FailureLimit: 1},
		}})
	s.add(0, drover.Event{Kind: drover.EventStageStart})
	for i, h := range []string{"h01", "h02", "h03", "h04", "h05"} {
		g := "default"
		if h == "h01" {
			g = "canary"
		}
		s.step(0.1*float64(i), 0.5, h, g, "stage", "ok")
	}
	s.add(1, drover.Event{Kind: drover.EventStageDone})
	s.add(1, drover.Event{Kind: drover.EventGroupStart, Group: "canary"})
	s.promote(1, "h01", "canary") // a path of 5s: t=1..6
	s.add(6, drover.Event{Kind: drover.EventGroupDone, Group: "canary"})
	s.add(6, drover.Event{Kind: drover.EventGroupStart, Group: "default"})
	return s
}

func feed(p *progress, evs []drover.Event) {
	for _, e := range evs {
		p.apply(e)
	}
}

func lineWith(t *testing.T, lines []string, sub string) string {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return l
		}
	}
	t.Fatalf("no line has %q:\n%s", sub, strings.Join(lines, "\n"))
	return ""
}

func TestProgressScreenMidDeploy(t *testing.T) {
	t.Parallel()
	s := startScript()
	// The first batch of default: h02 is checking, h03 restarting.
	for i, st := range []string{"depool", "switch", "restart"} {
		s.step(6+float64(i), 1, "h02", "default", st, "ok")
		s.step(6+float64(i), 1, "h03", "default", st, "ok")
	}
	s.step(9, 0, "h02", "default", "check", "")
	s.step(9, 0, "h03", "default", "restart", "") // restarting again, still
	p := newProgress(style{})
	feed(p, s.events)
	lines := p.lines(100, 0, at(10))

	if want := "deploy hello 2.0.0"; !strings.HasPrefix(lines[0], want) {
		t.Errorf("header %q, want it to start with %q", lines[0], want)
	}
	// One average path (5s) after h02 and h03 began (t=6) is t=11: 1s
	// left; then h04 and h05 are one batch: 5s more.
	if l := lineWith(t, lines, "elapsed"); !strings.Contains(l, "elapsed 10.0s") || !strings.Contains(l, "ETA 6.0s") {
		t.Errorf("clock line %q, want elapsed 10.0s and ETA 6.0s", l)
	}
	canary := lineWith(t, lines, "canary")
	for _, want := range []string{"100%", "staged 1", "promoted 1", "checking 0", "failed 0/0", "[" + strings.Repeat("#", 10)} {
		if !strings.Contains(canary, want) {
			t.Errorf("canary line %q lacks %q", canary, want)
		}
	}
	def := lineWith(t, lines, "default")
	for _, want := range []string{"staged 4", "promoted 0", "checking 1", "failed 0/1"} {
		if !strings.Contains(def, want) {
			t.Errorf("default line %q lacks %q", def, want)
		}
	}
	// h02 and h03 each did stage + 3 steps of 6; h04, h05 stage only:
	// 2*(4/6) + 2*(1/6) = 10/24 of the group.
	if !strings.Contains(def, " 41%") {
		t.Errorf("default line %q, want 41%%", def)
	}
	if l := lineWith(t, lines, "h02"); !strings.Contains(l, "check") || !strings.Contains(l, "1.0s") {
		t.Errorf("h02 line %q, want its step check for 1.0s", l)
	}
	if l := lineWith(t, lines, "h03"); !strings.Contains(l, "restart") {
		t.Errorf("h03 line %q, want restart", l)
	}
	for _, l := range lines {
		if strings.Contains(l, "h04") || strings.Contains(l, "h01") {
			t.Errorf("a host not in flight is listed: %q", l)
		}
	}
}

func TestProgressBarsAdvance(t *testing.T) {
	t.Parallel()
	s := startScript()
	p := newProgress(style{})
	var fracs []string
	pct := regexp.MustCompile(`(\d+)%`)
	for _, e := range s.events {
		p.apply(e)
		l := lineWith(t, p.lines(100, 0, e.Time), "default")
		fracs = append(fracs, pct.FindString(l))
	}
	if fracs[0] != "0%" || fracs[len(fracs)-1] != "16%" {
		t.Errorf("default group went %s → %s, want 0%% → 16%% (staged only)", fracs[0], fracs[len(fracs)-1])
	}
	prev := -1
	for _, f := range fracs {
		var n int
		fmt.Sscanf(f, "%d%%", &n)
		if n < prev {
			t.Fatalf("the bar ran backwards: %v", fracs)
		}
		prev = n
	}
}

func TestProgressHaltAndRollback(t *testing.T) {
	t.Parallel()
	s := startScript()
	s.step(6, 1, "h02", "default", "depool", "ok")
	s.add(7, drover.Event{Kind: drover.EventStepStart, Host: "h02", Group: "default", Step: "switch"})
	s.add(7.5, drover.Event{Kind: drover.EventStepDone, Host: "h02", Group: "default", Step: "switch", Outcome: "failed", Message: "disk full"})
	s.add(7.5, drover.Event{Kind: drover.EventHostFailed, Host: "h02", Group: "default", Message: "switch: disk full (1 failed in group default, limit 1)"})
	s.add(8, drover.Event{Kind: drover.EventHostFailed, Host: "h03", Group: "default", Message: "check: 500 (2 failed in group default, limit 1)"})
	s.add(8, drover.Event{Kind: drover.EventHalt, Message: "group default: 2 failed > failure limit 1"})
	s.add(9, drover.Event{Kind: drover.EventRollback, Message: "rolling back 1 host: canary 1"})
	s.add(9, drover.Event{Kind: drover.EventStepStart, Host: "h01", Group: "canary", Step: "restore", Restoring: true})
	p := newProgress(style{})
	feed(p, s.events)
	log := strings.Join(p.takeLog(), "\n")
	for _, want := range []string{"h02 failed: switch: disk full", "h03 failed", "HALT group default: 2 failed > failure limit 1", "rolling back 1 host"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if again := p.takeLog(); len(again) != 0 {
		t.Errorf("takeLog returned lines twice: %q", again)
	}
	lines := p.lines(100, 0, at(10))
	if l := lineWith(t, lines, "elapsed"); !strings.Contains(l, "rolling back") || strings.Contains(l, "ETA") {
		t.Errorf("clock line %q, want rolling back and no ETA", l)
	}
	if l := lineWith(t, lines, "default"); !strings.Contains(l, "failed 2/1") {
		t.Errorf("default line %q, want failed 2/1", l)
	}
	p.apply(drover.Event{Time: at(9), Kind: drover.EventGateStart, Group: "canary", Message: "bake until 12:00:30"})
	lines = p.lines(140, 0, at(10))
	if l := lineWith(t, lines, "canary"); !strings.Contains(l, "gate: bake until 12:00:30") {
		t.Errorf("canary line %q, want its gate", l)
	}
	p.apply(drover.Event{Time: at(9), Kind: drover.EventGateDone, Group: "canary"})
	if l := lineWith(t, lines, "h01"); !strings.Contains(l, "restore") {
		t.Errorf("h01 line %q, want its restore step", l)
	}
	s.add(10, drover.Event{Kind: drover.EventStepDone, Host: "h01", Group: "canary", Step: "restore", Outcome: "ok", Restoring: true})
	s.add(11, drover.Event{Kind: drover.EventHostRolledBack, Host: "h01", Group: "canary", Message: "back on 1.0.0"})
	s.add(11, drover.Event{Kind: drover.EventVerdict, Outcome: drover.OutcomeRolledBack, Message: "deploy halted and rolled back in 11s: 1 rolled back, 2 failed"})
	feed(p, s.events[len(s.events)-3:])
	final := p.lines(100, 0, at(500))
	if l := lineWith(t, final, "elapsed"); !strings.Contains(l, "elapsed 11.0s") || !strings.Contains(l, "rolled_back") {
		t.Errorf("final clock line %q, want the clock stopped at the verdict (11.0s) and the verdict", l)
	}
	if l := lineWith(t, final, "canary"); !strings.Contains(l, "rolled back 1") {
		t.Errorf("final canary line %q, want rolled back 1", l)
	}
}

func TestProgressSkippedHostsAndRollbackMode(t *testing.T) {
	t.Parallel()
	p := newProgress(style{})
	p.apply(drover.Event{Time: t0, Kind: drover.EventDeployStart, Operation: drover.KindRollback, Message: "rollback hello: 2 hosts to restore",
		Groups: []drover.EventGroup{{Name: "all", Hosts: []string{"a", "b", "c"}, Skipped: []string{"c"}, Batch: 1}}})
	l := lineWith(t, p.lines(100, 0, t0), "all")
	// A rollback has no staging and no promotion to count.
	if strings.Contains(l, "staged") || strings.Contains(l, "promoted") || !strings.Contains(l, "skipped 1") || !strings.Contains(l, " 33%") {
		t.Errorf("rollback group line %q, want skipped 1, 33%% and no staged/promoted", l)
	}
}

func TestProgressFitsWidthAndHeight(t *testing.T) {
	t.Parallel()
	s := startScript()
	for _, h := range []string{"h02", "h03", "h04", "h05"} {
		s.step(6, 0, h, "default", "depool", "")
	}
	for _, st := range []style{{}, {color: true, unicode: true}} {
		p := newProgress(st)
		feed(p, s.events)
		for w := 1; w <= 140; w++ {
			for _, l := range p.lines(w, 0, at(7)) {
				if vw := visibleWidth(l); vw > w {
					t.Fatalf("width %d: line %q is %d wide", w, l, vw)
				}
			}
		}
		for h := 3; h < 10; h++ {
			lines := p.lines(100, h, at(7))
			if len(lines) > h {
				t.Fatalf("height %d: %d lines", h, len(lines))
			}
		}
		lines := p.lines(100, 6, at(7))
		if !strings.Contains(lines[len(lines)-1], "more") {
			t.Errorf("cut host list does not say how many more: %q", lines)
		}
	}
}

func TestProgressColorsOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	s := startScript()
	plain, colored := newProgress(style{}), newProgress(style{color: true})
	feed(plain, s.events)
	feed(colored, s.events)
	for _, l := range plain.lines(100, 0, at(7)) {
		if strings.Contains(l, "\x1b") {
			t.Errorf("escape code without color: %q", l)
		}
	}
	if !strings.Contains(strings.Join(colored.lines(100, 0, at(7)), ""), "\x1b[32m") {
		t.Error("no green in the colored view")
	}
	if got, want := stripANSI(strings.Join(colored.lines(100, 0, at(7)), "\n")), strings.Join(plain.lines(100, 0, at(7)), "\n"); got != want {
		t.Errorf("colors changed the text:\n%s\nvs\n%s", got, want)
	}
}

func TestProgressColorEnabled(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		mode        string
		tty         bool
		noColor, tm string
		want        bool
		err         bool
	}{
		{"auto", true, "", "xterm", true, false},
		{"", true, "", "xterm", true, false},
		{"auto", false, "", "xterm", false, false},
		{"auto", true, "1", "xterm", false, false},
		{"auto", true, "", "dumb", false, false},
		{"always", false, "1", "dumb", true, false},
		{"never", true, "", "xterm", false, false},
		{"rainbow", true, "", "xterm", false, true},
	} {
		got, err := colorEnabled(c.mode, c.tty, c.noColor, c.tm)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("colorEnabled(%q, tty %v, NO_COLOR %q, TERM %q) = %v, %v; want %v, error %v", c.mode, c.tty, c.noColor, c.tm, got, err, c.want, c.err)
		}
	}
}

func TestProgressFit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		w    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"héllo", 2, "hé"},
		{"\x1b[31mred\x1b[0m tail", 2, "\x1b[31mre" + ansiReset},
		{"\x1b[31mred\x1b[0m", 3, "\x1b[31mred\x1b[0m"},
		{"abc", 0, ""},
	} {
		if got := fit(c.in, c.w); got != c.want {
			t.Errorf("fit(%q, %d) = %q, want %q", c.in, c.w, got, c.want)
		}
	}
}

// TestProgressRedraws drives the terminal renderer by hand: each frame
// goes back up over the previous one, events between two ticks make one
// frame, an idle screen is redrawn only for its clock, and the final
// screen stays with the verdict under it.
func TestProgressRedraws(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := t0
	v := newLiveView(&buf, -1, style{})
	v.manual = true
	v.now = func() time.Time { return now }
	v.size = func() (int, int) { return 100, 40 }
	s := startScript()
	for _, e := range s.events {
		v.Emit(e)
	}
	v.tick()
	first := buf.String()
	if strings.Contains(first, "\x1b[") && strings.HasPrefix(first, "\r\x1b[") && strings.Contains(first[:6], "A") {
		t.Errorf("the first frame moves the cursor up: %q", first[:10])
	}
	drawn := v.drawn
	if drawn < 4 {
		t.Fatalf("first frame drew %d lines:\n%s", drawn, first)
	}
	buf.Reset()

	// A hundred events between two ticks: one frame.
	for i := 0; i < 100; i++ {
		v.Emit(drover.Event{Time: at(6), Kind: drover.EventNotice, Message: fmt.Sprintf("n%d", i)})
	}
	now = now.Add(frameInterval)
	frames := v.frames
	v.tick()
	if v.frames != frames+1 {
		t.Errorf("%d frames for 100 events in one tick, want 1", v.frames-frames)
	}
	second := buf.String()
	if want := fmt.Sprintf("\r\x1b[%dA", drawn); !strings.HasPrefix(second, want) {
		t.Errorf("second frame starts %q, want cursor up %d lines (%q)", second[:min(len(second), 12)], drawn, want)
	}
	if !strings.Contains(second, "n0") || !strings.Contains(second, "n99") || strings.Index(second, "n99") > strings.Index(second, "deploy hello") {
		t.Errorf("notices are not printed above the live area:\n%s", second)
	}

	// Nothing new: no frame until the clock needs one.
	frames = v.frames
	now = now.Add(frameInterval)
	v.tick()
	if v.frames != frames {
		t.Error("an unchanged screen was redrawn within a second")
	}
	now = now.Add(clockInterval)
	v.tick()
	if v.frames != frames+1 {
		t.Error("an unchanged screen was not redrawn after a second (the clock stands still)")
	}

	buf.Reset()
	v.Emit(drover.Event{Time: at(20), Kind: drover.EventVerdict, Outcome: drover.OutcomeSucceeded, Message: "deploy succeeded in 20s: 5 done"})
	v.verdict(&runner.Outcome{Verdict: rollout.Succeeded, ExitCode: 0, Summary: "deploy succeeded in 20s: 5 done"})
	out := buf.String()
	iFinal, iVerdict := strings.LastIndex(out, "succeeded: "), strings.Index(out, "deploy succeeded in 20s")
	if !strings.Contains(out, "elapsed 20.0s · succeeded") || iVerdict < 0 || iVerdict < iFinal {
		t.Errorf("final screen then verdict, got:\n%s", out)
	}
	if !strings.Contains(out, "exit 0: ") {
		t.Errorf("verdict lacks the exit code:\n%s", out)
	}
	v.close() // twice is fine
}

// TestProgressOnlyOnATerminal: a pipe or a file gets a line per event,
// and so does a terminal with --no-progress (checked under tmux in
// e2e_tty_test.go); --output json always gets NDJSON.
func TestProgressOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, w := range []io.Writer{&bytes.Buffer{}, file} {
		a := &app{stdout: w, out: outputFlags{color: "auto"}}
		p, err := a.newPrinter("text")
		if err != nil {
			t.Fatal(err)
		}
		if pr, ok := p.(*printer); !ok || pr.json || pr.style.color {
			t.Errorf("%T: got %T %+v, want a plain printer without colors", w, p, p)
		}
		p, _ = a.newPrinter("json")
		if pr, ok := p.(*printer); !ok || !pr.json {
			t.Errorf("--output json: got %T", p)
		}
	}
	a := &app{stdout: &bytes.Buffer{}, out: outputFlags{color: "always"}}
	if p, _ := a.newPrinter("text"); !p.(*printer).style.color {
		t.Error("--color always gave no colors")
	}
	if _, err := a.newPrinter("yaml"); err == nil {
		t.Error("--output yaml accepted")
	}
}
