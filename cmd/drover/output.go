package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"drover"
	"drover/rollout"
	"drover/runner"
)

// printer turns deploy events into output: a line per host step that a
// person can follow live, or NDJSON events for programs (--output json).
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	start time.Time
}

func newPrinter(w io.Writer, format string) (*printer, error) {
	switch format {
	case "", "text":
		return &printer{w: w}, nil
	case "json":
		return &printer{w: w, json: true}, nil
	}
	return nil, &usageError{fmt.Errorf("--output %q: want text or json", format)}
}

// Emit implements drover.EventSink.
func (p *printer) Emit(e drover.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		b, _ := json.Marshal(e)
		p.w.Write(append(b, '\n'))
		return
	}
	if p.start.IsZero() {
		p.start = e.Time
	}
	ts := e.Time.Format("15:04:05")
	switch e.Kind {
	case drover.EventDeployStart:
		fmt.Fprintf(p.w, "%s %s  [%s]\n", ts, e.Message, e.Deploy)
	case drover.EventStepStart:
		// Starts are implied by their results; printing both doubles the
		// output without telling a person more.
	case drover.EventStepDone:
		mark := "ok"
		switch e.Outcome {
		case string(rollout.Failed):
			mark = "FAILED"
		case string(rollout.Unreachable):
			mark = "UNREACHABLE"
		}
		line := fmt.Sprintf("%s   %-8s %-9s %s (%s)", ts, e.Host, e.Step, mark, e.Elapsed.Round(time.Millisecond))
		if e.Message != "" {
			line += ": " + e.Message
		}
		fmt.Fprintln(p.w, line)
	case drover.EventGroupStart:
		fmt.Fprintf(p.w, "%s == group %s: %s\n", ts, e.Group, e.Message)
	case drover.EventGroupDone:
		fmt.Fprintf(p.w, "%s == group %s done: %s\n", ts, e.Group, e.Message)
	case drover.EventHostFailed:
		fmt.Fprintf(p.w, "%s !! %s failed: %s\n", ts, e.Host, e.Message)
	case drover.EventHalt:
		fmt.Fprintf(p.w, "%s !! HALT: %s\n", ts, e.Message)
	case drover.EventRollback:
		fmt.Fprintf(p.w, "%s << rollback: %s\n", ts, e.Message)
	case drover.EventVerdict:
		// The command prints the verdict with the host list at the end.
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
	if p.json {
		type host struct {
			Name   string `json:"name"`
			Group  string `json:"group"`
			Status string `json:"status"`
			Reason string `json:"reason,omitempty"`
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
			v.Hosts = append(v.Hosts, host{h.Name, h.Group, string(h.Status), h.Reason})
		}
		b, _ := json.Marshal(v)
		p.w.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(p.w, "\n%s\n", out.Summary)
	var attention []rollout.HostReport
	for _, h := range out.Report.Hosts {
		switch h.Status {
		case rollout.HostFailed, rollout.HostUnreachable, rollout.HostStuck:
			attention = append(attention, h)
		}
	}
	sort.Slice(attention, func(i, j int) bool { return attention[i].Name < attention[j].Name })
	if len(attention) > 0 {
		fmt.Fprintln(p.w, "hosts:")
		for _, h := range attention {
			what := map[rollout.HostStatus]string{
				rollout.HostFailed:      "failed, restored to its previous release",
				rollout.HostUnreachable: "UNREACHABLE — needs a person",
				rollout.HostStuck:       "could not be restored — needs a person",
			}[h.Status]
			fmt.Fprintf(p.w, "  %-10s %s: %s\n", h.Name, what, strings.TrimSpace(h.Reason))
		}
	}
	fmt.Fprintf(p.w, "exit %d: %s\n", out.ExitCode, exitWords(out.ExitCode))
}

func exitWords(code int) string {
	switch code {
	case drover.ExitOK:
		return "every targeted host is on the target release"
	case drover.ExitRolledBack:
		return "halted; the fleet is back where it started"
	case drover.ExitNeedsPerson:
		return "needs a person: see the hosts above"
	case drover.ExitPartial:
		return "finished within the failure limit; the hosts above failed and were restored"
	}
	return ""
}
