package main

// This file keeps each failure on screen once. A step's error reaches the
// operator up to four times — the failed step, the host's failure, the
// halt that quotes it, the verdict's summary and host list — and a
// validate command's output is often several lines (`nginx -t`): four
// hosts failing staging printed 13 copies, 60 lines, each cut at the
// terminal width before the part that says what is wrong. The renderers
// print an error whole, indented, where the step failed, and later
// mentions drop it; the verdict sums identical errors up across hosts.

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"drover/rollout"
)

// shownErrors remembers the failure texts printed in full so far.
type shownErrors struct {
	texts map[string]bool
	// byHost is the last failure text shown for each host.
	byHost map[string]string
}

// record notes that text, host's failure, was printed in full.
//
// Only a host's failures: a gate's (no host) is its group's, and the
// halt that names the gate is where people look for why.
func (s *shownErrors) record(host, text string) {
	if s == nil || host == "" || strings.TrimSpace(text) == "" {
		return
	}
	if s.texts == nil {
		s.texts, s.byHost = map[string]bool{}, map[string]string{}
	}
	s.texts[text] = true
	s.byHost[host] = text
}

// strip removes from msg every failure text already shown — the
// ": TEXT" a later message quotes it with — so "stage: host h02:
// validate …(20 lines)… (1 failed in group default, limit 0)" becomes
// "stage (1 failed in group default, limit 0)".
func (s *shownErrors) strip(msg string) string {
	if s == nil || len(s.texts) == 0 {
		return msg
	}
	texts := make([]string, 0, len(s.texts))
	for t := range s.texts {
		texts = append(texts, t)
	}
	// Longest first: one text may contain another.
	sort.Slice(texts, func(i, j int) bool { return len(texts[i]) > len(texts[j]) })
	for _, t := range texts {
		if msg == t {
			return ""
		}
		msg = strings.ReplaceAll(msg, ": "+t, "")
	}
	return msg
}

// shown reports whether host's failure text t was printed in full.
func (s *shownErrors) shown(t string) bool {
	if s == nil {
		return false
	}
	for _, x := range s.byHost {
		if strings.Contains(t, x) {
			return true
		}
	}
	return false
}

// indentLines writes text's lines, each after indent, cut at width
// (0: no limit) into several lines rather than cut off: what a failure
// says is often at the end of a long line.
func indentLines(text, indent string, width int) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		out = append(out, wrapLine(indent+l, width, indent+"  ")...)
	}
	return out
}

// wrapLine splits line into lines of at most width visible columns, the
// continuations after cont. Lines with escape sequences are left whole:
// only drover's own lines are styled, and those fit.
func wrapLine(line string, width int, cont string) []string {
	if width <= 0 || visibleWidth(line) <= width || strings.Contains(line, "\x1b") || len(cont) >= width {
		return []string{line}
	}
	r := []rune(line)
	var out []string
	for n, first := width, true; len(r) > 0; n, first = width-len(cont), false {
		k := min(n, len(r))
		if k < len(r) {
			// At a space when there is one in the line's second half.
			for i := k; i > k/2; i-- {
				if r[i] == ' ' {
					k = i
					break
				}
			}
		}
		part := string(r[:k])
		if !first {
			part = cont + part
		}
		out = append(out, strings.TrimRight(part, " "))
		r = r[k:]
		if len(r) > 0 && r[0] == ' ' {
			r = r[1:] // the space the line was broken at
		}
	}
	return out
}

// stagePath is a staging directory's random part, different on every
// host: errors that differ only there are the same error.
var stagePath = regexp.MustCompile(`\.stage-[0-9a-f]+`)

// errorKey is what makes two hosts' errors the same: the text with the
// host's name and staging directory taken out.
func errorKey(host, text string) string {
	text = strings.TrimPrefix(text, "host "+host+": ")
	text = stagePath.ReplaceAllString(text, ".stage-*")
	if host != "" {
		text = strings.ReplaceAll(text, host, "{host}")
	}
	return text
}

// exitedOutput finds a command's output in its error: what follows
// "exited N: ".
var exitedOutput = regexp.MustCompile(`exited \d+: `)

// errorGist is a failure in one line for a summary: its step, then what
// the failing command said (its first line, with the next when it ends
// in ":"; "…" when more follows), else the error's first line.
func errorGist(host, reason string) string {
	step := ""
	if i := strings.Index(reason, ": "); i > 0 && isStep(reason[:i]) {
		step, reason = reason[:i]+": ", reason[i+2:]
	}
	reason = strings.TrimPrefix(reason, "host "+host+": ")
	if loc := exitedOutput.FindStringIndex(reason); loc != nil && strings.TrimSpace(reason[loc[1]:]) != "" {
		reason = reason[loc[1]:]
	}
	var lines []string
	for _, l := range strings.Split(reason, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, strings.TrimRight(l, " \t"))
		}
	}
	if len(lines) == 0 {
		return strings.TrimSuffix(step, ": ")
	}
	// A line ending in ":" introduces the next ("invalid config:"): the
	// useful part is there.
	n := 1
	for n < len(lines) && strings.HasSuffix(lines[n-1], ":") {
		n++
	}
	g := step + strings.Join(lines[:n], " ")
	if len(lines) > n {
		g += " …"
	}
	return g
}

func isStep(s string) bool {
	switch rollout.Step(s) {
	case rollout.StepStage, rollout.StepDepool, rollout.StepSwitch, rollout.StepRestart,
		rollout.StepCheck, rollout.StepRepool, rollout.StepRestore, rollout.StepGate:
		return true
	}
	return false
}

// hostNames lists names for a summary line: the first five, then how
// many more.
func hostNames(names []string) string {
	if len(names) <= 5 {
		return strings.Join(names, " ")
	}
	return strings.Join(names[:5], " ") + fmt.Sprintf(" and %d more", len(names)-5)
}

// errorGroup is the hosts that failed with the same error.
type errorGroup struct {
	hosts  []string
	first  string // the first host's name
	reason string // the first host's error, as it had it
}

// groupErrors groups hosts' errors by errorKey, in order, and maps each
// host to its group.
func groupErrors(hosts []rollout.HostReport) ([]*errorGroup, map[string]*errorGroup) {
	var groups []*errorGroup
	byKey, byHost := map[string]*errorGroup{}, map[string]*errorGroup{}
	for _, h := range hosts {
		reason := strings.TrimSpace(termSafe(h.Reason))
		if reason == "" {
			continue
		}
		k := errorKey(h.Name, reason)
		g := byKey[k]
		if g == nil {
			g = &errorGroup{first: h.Name, reason: reason}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.hosts = append(g.hosts, h.Name)
		byHost[h.Name] = g
	}
	return groups, byHost
}

// writeErrorDetail writes g's error in full, indented, unless it was
// printed in full above or its gist says it all.
func writeErrorDetail(w io.Writer, g *errorGroup, gist string, shown *shownErrors) {
	if shown.shown(g.reason) || gist == g.reason {
		return
	}
	if len(g.hosts) > 1 {
		fmt.Fprintf(w, "    on %s:\n", g.first)
	}
	for _, l := range indentLines(g.reason, "    ", 0) {
		fmt.Fprintln(w, l)
	}
}

// writeSharedErrors prints the errors several hosts share, once each: how
// many hosts and which, the gist, and — when the error was not printed
// in full above — the whole text as the first of them had it. An error
// of one host only is on that host's line.
func writeSharedErrors(w io.Writer, groups []*errorGroup, shown *shownErrors) {
	header := false
	for _, g := range groups {
		if len(g.hosts) < 2 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "errors:")
			header = true
		}
		gist := errorGist(g.first, g.reason)
		fmt.Fprintf(w, "  %s (%s): %s\n", plural(len(g.hosts), "host"), hostNames(g.hosts), gist)
		writeErrorDetail(w, g, gist, shown)
	}
}
