package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"drover"
	"drover/rollout"
	"drover/runner"
	"drover/runview"
)

// eventOutput is where a deploy, rollback or resume reports: the events
// as they happen, then the verdict. close stops anything the output runs
// in the background; it is safe to call more than once.
type eventOutput interface {
	drover.EventSink
	verdict(out *runner.Outcome)
	close()
}

// Global output flags, on every command.
type outputFlags struct {
	noProgress bool
	color      string
}

// addOutputFlags adds --no-progress and --color to the root command.
func (a *app) addOutputFlags(root *cobra.Command) {
	root.PersistentFlags().BoolVar(&a.out.noProgress, "no-progress", false, "print a line per event instead of the live progress view")
	root.PersistentFlags().StringVar(&a.out.color, "color", "auto", "auto, always or never; auto colors a terminal unless NO_COLOR is set")
}

// newPrinter picks the output for --output format: NDJSON events for
// programs; for people, the live progress view on a terminal, else (a pipe,
// a CI log, --no-progress) a line per event that reads well in a file.
func (a *app) newPrinter(format string) (eventOutput, error) {
	st, err := a.style(a.stdout)
	if err != nil {
		return nil, err
	}
	switch format {
	case "", "text":
		if !a.out.noProgress && termFd(a.stdout) >= 0 && os.Getenv("TERM") != "dumb" {
			v := newLiveView(a.stdout, termFd(a.stdout), st)
			// A signal's explanation goes inside the view, where the
			// next frame does not draw over it (interrupt.go).
			interrupts.claim(v)
			return v, nil
		}
		return &printer{w: a.stdout, style: st}, nil
	case "json":
		return &printer{w: a.stdout, json: true}, nil
	}
	return nil, &usageError{fmt.Errorf("--output %q: want text or json", format)}
}

// termFd is w's file descriptor when w is a terminal, else -1.
func termFd(w any) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return -1
	}
	return int(f.Fd())
}

// style returns the colors for w under --color and NO_COLOR.
func (a *app) style(w io.Writer) (style, error) {
	on, err := colorEnabled(a.out.color, termFd(w) >= 0, os.Getenv("NO_COLOR"), os.Getenv("TERM"))
	return style{color: on, unicode: utf8Locale()}, err
}

// colorEnabled decides colors: never and always are what they say; auto
// colors a terminal unless NO_COLOR is set to anything (no-color.org) or
// TERM is dumb. Colors in a pipe end up as escape codes in CI logs.
func colorEnabled(mode string, tty bool, noColor, termName string) (bool, error) {
	switch mode {
	case "never":
		return false, nil
	case "always":
		return true, nil
	case "", "auto":
		return tty && noColor == "" && termName != "dumb", nil
	}
	return false, &usageError{fmt.Errorf("--color %q: want auto, always or never", mode)}
}

// utf8Locale reports whether the locale promises UTF-8, so the progress
// bar may use block characters; elsewhere it uses ASCII.
func utf8Locale() bool {
	for _, k := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := os.Getenv(k); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

const ansiReset = "\x1b[0m"

// style colors text for a terminal, or leaves it alone.
type style struct {
	color   bool
	unicode bool
}

func (s style) wrap(code, t string) string {
	if !s.color || t == "" {
		return t
	}
	return "\x1b[" + code + "m" + t + ansiReset
}

func (s style) bold(t string) string   { return s.wrap("1", t) }
func (s style) dim(t string) string    { return s.wrap("2", t) }
func (s style) red(t string) string    { return s.wrap("31", t) }
func (s style) green(t string) string  { return s.wrap("32", t) }
func (s style) yellow(t string) string { return s.wrap("33", t) }

// cross marks a failure.
func (s style) cross() string {
	if s.unicode {
		return "✗"
	}
	return "x"
}

// bar draws frac (0..1) of width cells, red when the group has failures.
func (s style) bar(frac float64, width int, failing bool) string {
	frac = min(max(frac, 0), 1)
	n := int(frac*float64(width) + 0.5)
	full, empty := "#", "."
	if s.unicode {
		full, empty = "█", "░"
	}
	done := strings.Repeat(full, n)
	if failing {
		done = s.red(done)
	} else {
		done = s.green(done)
	}
	return "[" + done + s.dim(strings.Repeat(empty, width-n)) + "]"
}

// printer turns deploy events into output: a line per host step that a
// person can follow live in a log, or NDJSON events for programs
// (--output json).
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	style style
	start time.Time
	// quietRotation hides the depool and repool lines of a spec that
	// configures no rotation: "depool ok (0s)" on every host says
	// something happened when nothing did.
	quietRotation bool
	// shown: the failures printed in full so far (errtext.go).
	shown shownErrors
}

func (p *printer) close() {}

// Emit implements drover.EventSink.
func (p *printer) Emit(e drover.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		b, _ := json.Marshal(e)
		p.w.Write(append(b, '\n'))
		return
	}
	e = termEvent(e) // termsafe.go: hosts' text, not escape sequences
	if p.start.IsZero() {
		p.start = e.Time
	}
	s := p.style
	ts := s.dim(e.Time.Format("15:04:05"))
	switch e.Kind {
	case drover.EventDeployStart:
		fmt.Fprintf(p.w, "%s %s  [%s]\n", ts, s.bold(e.Message), e.Deploy)
		for _, g := range e.Groups {
			fmt.Fprintf(p.w, "%s    group %s: %s, batch %d, failure limit %d\n", ts, g.Name, plural(len(g.Hosts), "host"), g.Batch, g.FailureLimit)
		}
		for _, o := range e.Overrides {
			fmt.Fprintf(p.w, "%s    %s skipped %s %s for this deploy: %s\n", ts, s.yellow("OVERRIDE:"), o.Kind, o.Name, o.Reason)
		}
	case drover.EventStepStart:
		// Starts are implied by their results; printing both doubles the
		// output without telling a person more.
	case drover.EventStepDone:
		if p.quietRotation && (e.Step == "depool" || e.Step == "repool") && e.Outcome == string(rollout.OK) {
			return
		}
		mark := s.green("ok")
		switch e.Outcome {
		case string(rollout.Failed):
			mark = s.red("FAILED")
		case string(rollout.Unreachable):
			mark = s.red("UNREACHABLE")
		}
		line := fmt.Sprintf("%s   %-8s %-9s %s (%s)", ts, e.Host, stepLabel(e), mark, e.Elapsed.Round(time.Millisecond))
		if e.Message != "" && e.Outcome != string(rollout.OK) {
			// The failure, whole, once: later lines that quote it leave
			// it out (errtext.go).
			p.shown.record(e.Host, e.Message)
			msg := strings.TrimPrefix(e.Message, "host "+e.Host+": ")
			first, rest, _ := strings.Cut(msg, "\n")
			fmt.Fprintln(p.w, line+": "+first)
			if rest != "" {
				for _, l := range indentLines(rest, "           ", 0) {
					fmt.Fprintln(p.w, l)
				}
			}
			return
		}
		if e.Message != "" {
			line += ": " + e.Message
		}
		fmt.Fprintln(p.w, line)
	case drover.EventGroupStart:
		fmt.Fprintf(p.w, "%s == group %s: %s\n", ts, e.Group, e.Message)
	case drover.EventGroupDone:
		fmt.Fprintf(p.w, "%s == group %s done: %s\n", ts, e.Group, e.Message)
	case drover.EventHostFailed:
		fmt.Fprintf(p.w, "%s %s %s failed: %s\n", ts, s.red("!!"), e.Host, p.shown.strip(e.Message))
	case drover.EventHalt:
		fmt.Fprintf(p.w, "%s %s %s\n", ts, s.red("!! HALT:"), p.shown.strip(e.Message))
	case drover.EventRollback:
		fmt.Fprintf(p.w, "%s %s %s\n", ts, s.yellow("<< rollback:"), e.Message)
	case drover.EventVerdict:
		// The command prints the verdict with the host list at the end.
	case drover.EventAnalysis:
		// One a second per analysis: too many for a log. A failure shows
		// as the halt; `drover show` prints every evaluation as a table.
	default:
		msg := e.Message
		if e.Host != "" {
			msg = e.Host + ": " + msg
		}
		if msg != "" {
			fmt.Fprintf(p.w, "%s    %s\n", ts, msg)
		}
	}
}

// verdict prints how a run ended and which hosts need attention.
func (p *printer) verdict(out *runner.Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	writeVerdict(p.w, p.json, p.style, out, &p.shown)
}

// writeVerdict prints the verdict: a "result" JSON line, or the summary,
// the hosts that need attention and the exit code in words.
//
// shown holds the failures already printed in full above (nil: none):
// the summary and the host list leave those out, and the errors are
// summed up once per distinct error.
func writeVerdict(w io.Writer, asJSON bool, s style, out *runner.Outcome, shown *shownErrors) {
	if asJSON {
		type host struct {
			Name   string `json:"name"`
			Group  string `json:"group"`
			Status string `json:"status"`
			Reason string `json:"reason,omitempty"`
			// RestoreTarget is where the host went back (or, stuck or
			// unreachable, must go back) to.
			RestoreTarget *restoreTarget `json:"restore_target,omitempty"`
		}
		v := struct {
			Schema   int    `json:"schema"`
			Kind     string `json:"kind"`
			Deploy   string `json:"deploy"`
			Verdict  string `json:"verdict"`
			ExitCode int    `json:"exit_code"`
			Summary  string `json:"summary"`
			Halt     string `json:"halt_reason,omitempty"`
			Hosts    []host `json:"hosts"`
		}{drover.EventSchema, "result", out.DeployID, string(out.Verdict), out.ExitCode, out.Summary, out.Report.HaltReason, nil}
		for _, h := range out.Report.Hosts {
			v.Hosts = append(v.Hosts, host{h.Name, h.Group, string(h.Status), h.Reason, targetOf(out, h)})
		}
		b, _ := json.Marshal(v)
		w.Write(append(b, '\n'))
		return
	}
	summary := shown.strip(termSafe(out.Summary))
	if out.ExitCode == drover.ExitOK {
		summary = s.green(summary)
	} else {
		summary = s.red(summary)
	}
	fmt.Fprintf(w, "\n%s\n", summary)
	var attention []rollout.HostReport
	for _, h := range out.Report.Hosts {
		switch h.Status {
		case rollout.HostFailed, rollout.HostUnreachable, rollout.HostStuck:
			attention = append(attention, h)
		}
	}
	sort.Slice(attention, func(i, j int) bool { return attention[i].Name < attention[j].Name })
	if len(attention) > 0 {
		groups, byHost := groupErrors(attention)
		fmt.Fprintln(w, "hosts:")
		for _, h := range attention {
			what := map[rollout.HostStatus]string{
				rollout.HostFailed:      "failed, restored to " + orNone(h.From),
				rollout.HostUnreachable: "UNREACHABLE — needs a person",
				rollout.HostStuck:       "could not be restored — needs a person",
			}[h.Status]
			if h.Status == rollout.HostFailed && !h.Switched {
				// Never switched: nothing was restored, it stayed where
				// it was — on a first deploy, with no release at all.
				what = "failed, not switched (still on " + h.From + ")"
				if h.From == "" {
					what = "failed, not switched (it has no release yet)"
				}
			}
			line := fmt.Sprintf("  %-10s %s", h.Name, termSafe(what))
			g := byHost[h.Name]
			if g == nil || len(g.hosts) > 1 {
				// No reason, or one several hosts share: said once below.
				fmt.Fprintln(w, line)
				continue
			}
			gist := errorGist(h.Name, g.reason)
			fmt.Fprintln(w, line+": "+gist)
			writeErrorDetail(w, g, gist, shown)
		}
		writeSharedErrors(w, groups, shown)
	}
	fmt.Fprintf(w, "exit %d: %s\n", out.ExitCode, drover.OutcomeOf(out.Name()).ExitWords)
}

// writeError prints err for a person: what went wrong and where, then what
// to try. A config file with several problems is reported a problem per
// line, each with its own hint, so fixing one does not hide the next.
func writeError(w io.Writer, err error, s style) {
	leaves := errorLeaves(err)
	if len(leaves) <= 1 {
		fmt.Fprintf(w, "%s %s\n", s.red("drover:"), termSafe(err.Error()))
		if hint := errorHint(err); hint != "" {
			fmt.Fprintf(w, "  %s %s\n", s.yellow("hint:"), termSafe(hint))
		}
		return
	}
	fmt.Fprintf(w, "%s %d problems:\n", s.red("drover:"), len(leaves))
	for _, e := range leaves {
		fmt.Fprintf(w, "  %s\n", termSafe(e.Error()))
		if hint := errorHint(e); hint != "" {
			fmt.Fprintf(w, "    %s %s\n", s.yellow("hint:"), termSafe(hint))
		}
	}
}

// errorLeaves flattens errors.Join trees into their parts.
func errorLeaves(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, errorLeaves(e)...)
	}
	return out
}

// stepLabel names an event's step for people: "restart", or "restart
// (restoring)" on the way back to the previous release.
func stepLabel(e drover.Event) string { return runview.StepLabel(e) }

// errorHint is the error's own hint or, for a domain error that has none,
// the advice that goes with its code: no error leaves a person without
// something to try.
func errorHint(err error) string {
	if h := drover.ErrorHint(err); h != "" {
		return h
	}
	var e *drover.Error
	if !errors.As(err, &e) {
		return ""
	}
	switch e.Code {
	case drover.EUNREACHABLE:
		return "check that the host is up and reachable (`drover status` shows every host), or leave it out with --limit '!HOST'"
	case drover.ETIMEOUT:
		return "check the host named above; raise step_timeout (or the check's timeout) in the config if the step is just slow"
	case drover.ELOCKED:
		return "wait for the other deploy to finish; `drover history` shows it"
	case drover.EINTERNAL:
		return "a bug or a problem with this machine (disk, permissions): check the message; if it persists, report it with the command line"
	}
	return ""
}

// orNone names a release for people, "none" when there was none.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// restoreTarget is a host's restore target in JSON output: label is the
// words the text output uses ("none", "foreign releases/<slot>", a
// version); a foreign release carries how current pointed at it and its
// content hash, so a script can tell exactly what a host went back to.
type restoreTarget struct {
	Label   string          `json:"label"`
	Release string          `json:"release,omitempty"` // the slot under releases/
	Version string          `json:"version,omitempty"`
	Foreign *drover.Foreign `json:"foreign,omitempty"`
}

// targetOf is h's restore target for the result line: in a rollback or a
// recovery every host's; in a deploy, a host's that went back or needs to
// (rolled back, stuck, or failed or unreachable after it was switched; a
// host never switched was not restored). nil when unknown.
func targetOf(out *runner.Outcome, h rollout.HostReport) *restoreTarget {
	snap, ok := out.Targets[h.Name]
	if !ok {
		return nil
	}
	if out.Kind == drover.KindDeploy {
		switch h.Status {
		case rollout.HostRolledBack, rollout.HostStuck:
		case rollout.HostFailed, rollout.HostUnreachable:
			if !h.Switched {
				return nil
			}
		default:
			return nil
		}
	}
	return &restoreTarget{Label: snap.Label(), Release: snap.Current, Version: snap.Version, Foreign: snap.Foreign}
}
