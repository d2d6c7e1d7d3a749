package rollout

// Golden scenario tests, in the style of etcd raft's interaction tests: each
// file under testdata/ is a script of commands, each followed by the trace
// it must produce. Run `go test ./rollout -update` to rewrite the expected
// traces from what the Machine does now — then read the diff: it is the
// review.
//
// File format. A file is a sequence of blocks; lines starting with # and
// blank lines between blocks are comments. A block is one command (one or
// more lines), a line "----", then the expected output up to the next blank
// line (output never contains blank lines):
//
//	# a canary failing its check past a limit of 0
//	plan mode=deploy stage_parallelism=4 from=v1
//	group canary batch=1 limit=0: c1
//	group default batch=2 limit=1: h1 h2 h3(skip) h4(from=)
//	----
//	ok
//
//	run fail=c1:check:"503 from /health"
//	----
//	<trace>
//
// Commands:
//
//	plan [mode=deploy|rollback] [stage_parallelism=N] [from=RELEASE]
//	group NAME batch=N limit=N [gates=G,...]: HOST...
//	    (following lines of the plan command) A new Machine. A gate G is
//	    NAME (run by the runner) or NAME/DURATION (a wait, e.g. bake/5m). Hosts are
//	    NAME or NAME(OPT,...) with OPT skip or from=RELEASE; from= alone
//	    means no previous release. Defaults: mode=deploy,
//	    stage_parallelism=4, from=v1. Prints "ok" or New's error.
//	ready
//	    Calls Ready and prints what it handed out.
//	report HOST STEP ok|failed|unreachable ["REASON"]
//	    Reports a result, then calls Ready. A gate's result is reported as
//	    `report @GROUP gate OUTCOME`: the gate in flight for that group.
//	abort ["REASON"]
//	    Calls Abort, then Ready.
//	freeze ["REASON"]
//	    Calls Freeze (the deploy lock was lost), then Ready.
//	tick DURATION
//	    Advances the clock passed as now (notes carry it; the harness
//	    checks it). Prints nothing.
//	run [fail=HOST:STEP[:"REASON"]]... [unreachable=HOST:STEP[:"REASON"]]...
//	    [stop=HOST:STEP]
//	    Runs the Machine: calls Ready, then answers the actions in flight
//	    one at a time, oldest first, each with ok unless a rule names it,
//	    calling Ready after each — until the Machine is Done, nothing is
//	    in flight, or the oldest action matches stop (it stays in flight).
//	    With nothing in flight and a wake time set, it moves the clock to
//	    it ("~ wake +DURATION") and calls Ready. A gate is matched as
//	    @GROUP:gate (fail=@canary:gate:"5xx up").
//	    STEP names a deploy-path step (stage, depool, switch, restart,
//	    check, repool); ~STEP names the step on a restoring path (~depool,
//	    ~restart, ~check, ~repool); restore is always restoring.
//	outcome
//	    Prints Outcome() as it is now.
//
// Trace lines:
//
//	> h1 depool              an action handed out on the deploy path
//	> @canary gate smoke     a gate handed out
//	> h1 ~restore to=v1      an action on a restoring path (restore shows the
//	                         release it goes back to; "none" for a first deploy)
//	< h1 check failed "503"  a result fed back by run
//	note KIND [SCOPE]: MSG   a note; SCOPE is the host, else the group
//	error: ...               an error returned by New or Report
//	verdict V                once the Machine is Done, the report follows:
//	halt_reason "..."
//	host NAME GROUP STATUS [switched] ["REASON"]
//
// Every command also runs the invariant harness (invariants_test.go): a
// scenario fails on a broken invariant even with -update.

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected traces in testdata/*.txt")

// scenarioEpoch is the first now of every scenario.
var scenarioEpoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata/")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScenarioFile(t, file)
		})
	}
}

// block is one command of a scenario file and its expected output.
type block struct {
	pre  []string // comments and blank lines before the command
	cmd  []string
	want []string
	line int // of the command's first line
}

func parseScenario(text string) (blocks []block, trailer []string, err error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	const (
		outside = iota
		inCmd
		inWant
	)
	state := outside
	var b block
	for i, line := range lines {
		switch state {
		case outside:
			if line == "" || strings.HasPrefix(line, "#") {
				b.pre = append(b.pre, line)
				continue
			}
			b.cmd, b.line, state = []string{line}, i+1, inCmd
		case inCmd:
			if line == "----" {
				state = inWant
				continue
			}
			b.cmd = append(b.cmd, line)
		case inWant:
			if line == "" {
				blocks = append(blocks, b)
				b, state = block{}, outside
				continue
			}
			b.want = append(b.want, line)
		}
	}
	switch state {
	case inCmd:
		return nil, nil, fmt.Errorf("line %d: command without ----", b.line)
	case inWant:
		blocks = append(blocks, b)
		b = block{}
	}
	return blocks, b.pre, nil
}

func runScenarioFile(t *testing.T, file string) {
	s := &scenario{now: scenarioEpoch}
	runGolden(t, file, func(b block) []string {
		got := s.exec(b.cmd)
		for _, e := range s.takeErrs() {
			t.Errorf("%s:%d: invariant: %s", file, b.line, e)
		}
		return got
	})
}

// runGolden runs a golden file's blocks through exec in order, compares
// each block's output with the file, and with -update writes the file
// again with what exec printed. Every interpreter over these files
// (rollouts, converge rounds) shares it.
func runGolden(t *testing.T, file string, exec func(b block) []string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks, trailer, err := parseScenario(string(data))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out strings.Builder
	for i, b := range blocks {
		got := exec(b)
		if !*update && strings.Join(got, "\n") != strings.Join(b.want, "\n") {
			t.Errorf("%s:%d: %s\n--- got:\n%s\n--- want:\n%s", file, b.line, strings.Join(b.cmd, "\n"), strings.Join(got, "\n"), strings.Join(b.want, "\n"))
		}
		for _, l := range append(append(b.pre, b.cmd...), "----") {
			out.WriteString(l + "\n")
		}
		for _, l := range got {
			out.WriteString(l + "\n")
		}
		if i < len(blocks)-1 || len(trailer) > 0 {
			out.WriteString("\n")
		}
	}
	for _, l := range trailer {
		out.WriteString(l + "\n")
	}
	if *update && out.String() != string(data) {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// scenario is the interpreter's state.
type scenario struct {
	h       *harness
	now     time.Time
	pending []Action // handed out, not answered, oldest first
	done    bool     // the final report was printed
	errs    []string
	wake    time.Time // the last Ready's Wake
}

func (s *scenario) takeErrs() []string {
	errs := s.errs
	if s.h != nil {
		errs = append(errs, s.h.errs...)
		s.h.errs = nil
	}
	s.errs = nil
	return errs
}

func (s *scenario) exec(cmd []string) []string {
	args, err := fields(cmd[0])
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	if args[0] != "plan" && s.h == nil {
		return []string{"error: no plan yet"}
	}
	if args[0] != "plan" && len(cmd) > 1 {
		return []string{"error: " + args[0] + " takes one line"}
	}
	var out []string
	switch args[0] {
	case "plan":
		return s.cmdPlan(args[1:], cmd[1:])
	case "ready":
		out = s.ready()
	case "report":
		if len(args) < 4 || len(args) > 5 {
			return []string{"error: usage: report HOST STEP OUTCOME [REASON]"}
		}
		r := Result{Host: args[1], Step: Step(args[2]), Outcome: Outcome(args[3])}
		if r.Step == StepGate {
			r.Host = ""
			for _, a := range s.pending {
				if a.Step == StepGate && "@"+a.Group == args[1] {
					r.Gate = a.Gate
				}
			}
		}
		if len(args) == 5 {
			r.Reason = unquote(args[4])
		}
		if err := s.report(r); err != nil {
			return []string{"error: " + err.Error()}
		}
		out = s.ready()
	case "abort":
		reason := ""
		if len(args) > 1 {
			reason = unquote(args[1])
		}
		s.h.abort(s.now, reason)
		out = s.ready()
	case "freeze":
		reason := ""
		if len(args) > 1 {
			reason = unquote(args[1])
		}
		s.h.freeze(s.now, reason)
		out = s.ready()
	case "tick":
		if len(args) != 2 {
			return []string{"error: usage: tick DURATION"}
		}
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		s.now = s.now.Add(d)
	case "run":
		out, err = s.run(args[1:])
		if err != nil {
			return []string{"error: " + err.Error()}
		}
	case "outcome":
		out = formatReport(s.h.m.Outcome())
	default:
		return []string{"error: unknown command " + args[0]}
	}
	if !s.done && s.h.m.Done() {
		s.done = true
		s.h.final()
		out = append(out, formatReport(s.h.m.Outcome())...)
	}
	return out
}

func (s *scenario) cmdPlan(opts, groupLines []string) []string {
	p := Plan{Mode: ModeDeploy, StageParallelism: 4}
	from := "v1"
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "mode":
			p.Mode = Mode(v)
		case "stage_parallelism":
			n, err := strconv.Atoi(v)
			if err != nil {
				return []string{"error: " + err.Error()}
			}
			p.StageParallelism = n
		case "from":
			from = v
		case "strategy":
			p.Strategy = Strategy(v)
		default:
			return []string{"error: unknown plan option " + o}
		}
	}
	for _, line := range groupLines {
		g, err := parseGroup(line, from)
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		p.Groups = append(p.Groups, g)
	}
	h, err := newHarness(p)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	*s = scenario{h: h, now: scenarioEpoch}
	return []string{"ok"}
}

// parseGroup parses "group NAME batch=N limit=N: HOST...".
func parseGroup(line, from string) (GroupPlan, error) {
	head, hosts, ok := strings.Cut(line, ":")
	f := strings.Fields(head)
	if !ok || len(f) < 2 || f[0] != "group" {
		return GroupPlan{}, fmt.Errorf("want: group NAME batch=N limit=N: HOST..., got %q", line)
	}
	g := GroupPlan{Name: f[1]}
	for _, o := range f[2:] {
		k, v, _ := strings.Cut(o, "=")
		if k == "gates" {
			for _, gs := range strings.Split(v, ",") {
				name, wait, isWait := strings.Cut(gs, "/")
				gate := Gate{Name: name, Kind: GateRun}
				if isWait {
					d, err := time.ParseDuration(wait)
					if err != nil {
						return g, fmt.Errorf("group %s: gate %s: %v", g.Name, gs, err)
					}
					gate = Gate{Name: name, Kind: GateWait, Wait: d}
				}
				g.Gates = append(g.Gates, gate)
			}
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return g, fmt.Errorf("group %s: %s: %v", g.Name, o, err)
		}
		switch k {
		case "batch":
			g.Batch = n
		case "limit":
			g.FailureLimit = n
		default:
			return g, fmt.Errorf("group %s: unknown option %s", g.Name, o)
		}
	}
	for _, spec := range strings.Fields(hosts) {
		hp := HostPlan{Name: spec, From: from}
		if name, rest, ok := strings.Cut(spec, "("); ok {
			hp.Name = name
			for _, o := range strings.Split(strings.TrimSuffix(rest, ")"), ",") {
				switch {
				case o == "skip":
					hp.Skip = true
				case strings.HasPrefix(o, "from="):
					hp.From = strings.TrimPrefix(o, "from=")
				default:
					return g, fmt.Errorf("host %s: unknown option %s", name, o)
				}
			}
		}
		g.Hosts = append(g.Hosts, hp)
	}
	return g, nil
}

func (s *scenario) ready() []string {
	rd := s.h.ready(s.now)
	s.wake = rd.Wake
	s.pending = append(s.pending, rd.Actions...)
	var out []string
	for _, n := range rd.Notes {
		out = append(out, formatNote(n))
	}
	for _, a := range rd.Actions {
		out = append(out, s.formatAction(a))
	}
	return out
}

func (s *scenario) report(r Result) error {
	err := s.h.report(s.now, r)
	if err == nil {
		for i, a := range s.pending {
			if a.Host == r.Host && (r.Step != StepGate || a.Gate == r.Gate) {
				s.pending = append(s.pending[:i], s.pending[i+1:]...)
				break
			}
		}
	}
	return err
}

// rule matches an action by host, step and path.
type rule struct {
	host      string
	step      Step
	restoring bool
	outcome   Outcome
	reason    string
}

func (r rule) matches(a Action) bool {
	if a.Step == StepGate {
		return r.step == StepGate && r.host == "@"+a.Group
	}
	return a.Host == r.host && a.Step == r.step && (a.Restoring == r.restoring || a.Step == StepRestore)
}

func parseRule(kind, v string) (rule, error) {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) < 2 {
		return rule{}, fmt.Errorf("%s=%s: want HOST:STEP[:REASON]", kind, v)
	}
	r := rule{host: parts[0], step: Step(strings.TrimPrefix(parts[1], "~")), restoring: strings.HasPrefix(parts[1], "~")}
	switch r.step {
	case StepStage, StepDepool, StepSwitch, StepRestart, StepCheck, StepRepool, StepRestore, StepGate, StepStartIdle, StepStopIdle:
	default:
		return rule{}, fmt.Errorf("%s=%s: unknown step %s", kind, v, r.step)
	}
	if len(parts) == 3 {
		r.reason = unquote(parts[2])
	}
	switch kind {
	case "fail":
		r.outcome = Failed
	case "unreachable":
		r.outcome = Unreachable
	}
	return r, nil
}

func (s *scenario) run(opts []string) ([]string, error) {
	var rules []rule
	var stop *rule
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		r, err := parseRule(k, v)
		if err != nil {
			return nil, err
		}
		switch k {
		case "fail", "unreachable":
			rules = append(rules, r)
		case "stop":
			stop = &r
		default:
			return nil, fmt.Errorf("unknown run option %s", o)
		}
	}
	out := s.ready()
	for range 10000 {
		if s.h.m.Done() {
			return out, nil
		}
		if len(s.pending) == 0 {
			if !s.wake.IsZero() {
				out = append(out, "~ wake +"+s.wake.Sub(s.now).String())
				s.now = s.wake
				out = append(out, s.ready()...)
				continue
			}
			s.errs = append(s.errs, "run: the machine stalled: not done and nothing in flight")
			return out, nil
		}
		a := s.pending[0]
		if stop != nil && stop.matches(a) {
			return out, nil
		}
		res := Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: OK}
		for _, r := range rules {
			if r.matches(a) {
				res.Outcome, res.Reason = r.outcome, r.reason
			}
		}
		who := a.Host
		if a.Step == StepGate {
			who = "@" + a.Group
		}
		line := "< " + who + " " + string(a.Step) + " " + string(res.Outcome)
		if res.Reason != "" {
			line += " " + strconv.Quote(res.Reason)
		}
		out = append(out, line)
		if err := s.report(res); err != nil {
			out = append(out, "error: "+err.Error())
			return out, nil
		}
		out = append(out, s.ready()...)
	}
	s.errs = append(s.errs, "run: no end after 10000 steps")
	return out, nil
}

func (s *scenario) formatAction(a Action) string {
	if a.Step == StepGate {
		return "> @" + a.Group + " gate " + a.Gate
	}
	step := string(a.Step)
	if a.Restoring {
		step = "~" + step
	}
	line := "> " + a.Host + " " + step
	if a.Step == StepRestore {
		to := "none"
		if t := s.h.hosts[a.Host]; t != nil && t.plan.From != "" {
			to = t.plan.From
		}
		line += " to=" + to
	}
	return line
}

func formatNote(n Note) string {
	line := "note " + string(n.Kind)
	switch {
	case n.Host != "":
		line += " " + n.Host
	case n.Group != "":
		line += " " + n.Group
	}
	return line + ": " + n.Message
}

func formatReport(r Report) []string {
	verdict := string(r.Verdict)
	if r.Verdict == Running {
		verdict = "running"
	}
	out := []string{"verdict " + verdict}
	if r.HaltReason != "" {
		out = append(out, "halt_reason "+strconv.Quote(r.HaltReason))
	}
	for _, h := range r.Hosts {
		line := "host " + h.Name + " " + h.Group + " " + string(h.Status)
		if h.Switched {
			line += " switched"
		}
		if h.Reason != "" {
			line += " " + strconv.Quote(h.Reason)
		}
		out = append(out, line)
	}
	return out
}

// fields splits a command line at spaces, keeping "quoted strings" (which
// may contain spaces) inside their field, quotes included.
func fields(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for _, c := range line {
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ' ' && !inQuote:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(c)
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return out, nil
}

// unquote removes Go quotes from s if it has them.
func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}
