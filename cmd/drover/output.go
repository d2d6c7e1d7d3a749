package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/rollout"
	"drover/runner"
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
