package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"drover"
	"drover/rollout"
	"drover/runner"
	"drover/runview"
)

// verdictsOf lists the verdicts a deploy prints, in order: each
// unfinished deploy it recovered first, then its own.
func verdictsOf(out *runner.Outcome) []*runner.Outcome {
	var vs []*runner.Outcome
	for _, r := range out.Recovered {
		if r != out {
			vs = append(vs, r)
		}
	}
	return append(vs, out)
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
