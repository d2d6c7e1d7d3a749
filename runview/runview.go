// Package runview folds a run's events (drover.Event) into what the run
// looks like: its groups, each host's state and step in flight, the gates,
// the halt and the verdict. It is the one model of a run that every view
// draws from — the terminal's live progress (cmd/drover/progress.go) and
// the web dashboard (server/view.go sends it, server/web/app.js draws it)
// — so that a terminal and a browser watching the same deploy cannot tell
// two stories.
//
// It is pure: no I/O, no clock, no goroutine. Times come from the events;
// whoever draws passes its own now.
package runview

import (
	"strings"
	"time"

	"drover"
	"drover/rollout"
)

// Host states, as the dashboard colours them.
const (
	Pending     = "pending"      // not touched yet (or staged and left as it was)
	Skipped     = "skipped"      // already on the target, never touched
	Staging     = "staging"      // receiving, unpacking, validating the release
	Staged      = "staged"       // staged, waiting for its batch
	Running     = "running"      // on its promotion path
	OK          = "ok"           // on the new release, checked, in rotation
	Failed      = "failed"       // a step failed
	Restored    = "restored"     // failed, then back on its previous release
	RollingBack = "rolling-back" // on its way back
	RolledBack  = "rolled-back"  // back where it was before the run
	Stuck       = "stuck"        // a restoring step failed: needs a person
)

// MaxNotes is how many notes (notices, halts, failures) a View keeps: a
// run's view is sent whole to every browser, and a deploy that warns on
// every host must not make it grow without bound.
const MaxNotes = 20

// View is one run (deploy, rollback or recovery) as the events tell it.
// The zero value is not ready: use New.
type View struct {
	Deploy    string    `json:"deploy"`
	Operation string    `json:"operation"`
	Title     string    `json:"title,omitempty"`
	Release   string    `json:"release,omitempty"`
	Version   string    `json:"version,omitempty"`
	Start     time.Time `json:"start"`
	// End is when the verdict came; zero while the run goes on.
	End time.Time `json:"end,omitzero"`
	// Running: begun, and no verdict yet.
	Running bool     `json:"running"`
	Groups  []*Group `json:"groups"`
	// PathLen is how many steps a host's whole path has: stage plus five
	// promotion steps for a deploy, five restore steps otherwise.
	PathLen int  `json:"path_len"`
	Staging bool `json:"staging,omitempty"`
	// RollingBack is set from rollback_start.
	RollingBack bool     `json:"rolling_back,omitempty"`
	Halt        string   `json:"halt,omitempty"`
	Verdict     *Verdict `json:"verdict,omitempty"`
	// Overrides are the checks, analyses and gates skipped for this run.
	Overrides []drover.Override `json:"overrides,omitempty"`
	// Notes are the last MaxNotes things said about the run.
	Notes []Note `json:"notes,omitempty"`
	// Analyses are the run's canary analyses, each with its evaluations,
	// in the order they were first evaluated.
	Analyses []*Analysis `json:"analyses,omitempty"`
	// Durations are the promotion paths of hosts that finished them, for
	// an ETA.
	Durations []time.Duration `json:"-"`

	begun bool
	hosts map[string]*Host
}

// Verdict is how a run ended.
type Verdict struct {
	// Outcome is a recorded outcome (drover.OutcomeSucceeded...).
	Outcome string `json:"outcome"`
	Message string `json:"message,omitempty"`
}

// Note is one thing worth a line above the live view: a notice, a host
// that failed, a halt. Kind is the event kind that said it.
type Note struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Group   string    `json:"group,omitempty"`
	Host    string    `json:"host,omitempty"`
	Message string    `json:"message"`
}

// Analysis is one canary analysis of one group and how each of its
// evaluations came out: what the canary chart marks.
type Analysis struct {
	Name     string        `json:"name"`
	Group    string        `json:"group"`
	Kind     string        `json:"kind"`
	Canary   []string      `json:"canary"`
	Baseline []string      `json:"baseline,omitempty"`
	Since    time.Time     `json:"since"`
	Window   time.Duration `json:"window_ns,omitempty"`
	Max      *float64      `json:"max,omitempty"`
	Min      *float64      `json:"min,omitempty"`
	// Halted: one of its evaluations stopped the deploy.
	Halted bool   `json:"halted,omitempty"`
	Evals  []Eval `json:"evals"`
}

// MaxEvals is how many evaluations of one analysis a View keeps (the
// newest; a halting one is always kept): an analysis evaluated every
// second through an hour's deploy must not make the view grow without
// bound.
const MaxEvals = 600

// Eval is one evaluation of an analysis.
type Eval struct {
	At      time.Time `json:"at"`
	Status  string    `json:"status"`
	Message string    `json:"message,omitempty"`
	Verdict bool      `json:"verdict,omitempty"`
	Halted  bool      `json:"halted,omitempty"`
}

// Group is one group of the run's plan.
type Group struct {
	Name         string `json:"name"`
	Batch        int    `json:"batch"`
	FailureLimit int    `json:"failure_limit"`
	// Batches is how many batches the group's targeted hosts make.
	Batches int     `json:"batches"`
	Hosts   []*Host `json:"hosts"`
	Started bool    `json:"started,omitempty"`
	Done    bool    `json:"done,omitempty"`
	// Gate is the gate the group waits on (a bake, an approval), as its
	// event said it; GateName is its name ("bake", "approve").
	Gate     string `json:"gate,omitempty"`
	GateName string `json:"gate_name,omitempty"`
	// AwaitingApproval: the group waits for a person (approve: manual).
	AwaitingApproval bool   `json:"awaiting_approval,omitempty"`
	GateFailed       string `json:"gate_failed,omitempty"`
}

// Host is one host of the run.
type Host struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	State string `json:"state"`
	// Batch is the host's batch in its group, from 0; -1 when skipped.
	Batch int `json:"batch"`
	// Step is the host's step in flight, or the one it just finished
	// while its path goes on (Active false), and since when: a host
	// between two steps stays on screen instead of blinking out.
	Step      string    `json:"step,omitempty"`
	Active    bool      `json:"active,omitempty"`
	StepStart time.Time `json:"step_start,omitzero"`
	// Units counts finished steps of the host's path, for a bar that
	// never runs backwards.
	Units int `json:"units"`
	// PathStart is when the host's promotion (or restore) path began.
	PathStart   time.Time `json:"-"`
	Staged      bool      `json:"staged,omitempty"`
	Done        bool      `json:"done,omitempty"`
	Failed      bool      `json:"failed,omitempty"`
	Unreachable bool      `json:"unreachable,omitempty"`
	// Steps are the host's finished steps, in order.
	Steps []Step `json:"steps,omitempty"`
	// FailedMessage and StuckMessage say why, from host_failed and
	// host_stuck.
	FailedMessage string `json:"failed_message,omitempty"`
	StuckMessage  string `json:"stuck_message,omitempty"`
}

// Step is one finished step of a host.
type Step struct {
	Step      string        `json:"step"`
	Restoring bool          `json:"restoring,omitempty"`
	Outcome   string        `json:"outcome"`
	Elapsed   time.Duration `json:"elapsed_ns,omitempty"`
	Message   string        `json:"message,omitempty"`
}

// New returns an empty view, waiting for its deploy_start.
func New() *View {
	return &View{hosts: map[string]*Host{}, PathLen: 6, Groups: []*Group{}}
}

// Started reports whether a deploy_start arrived.
func (v *View) Started() bool { return v.begun }

// Host returns the host called name, or nil.
func (v *View) Host(name string) *Host { return v.hosts[name] }

// Group returns the group called name, or nil.
func (v *View) Group(name string) *Group {
	for _, g := range v.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Open reports whether the host's path in this run is not over: it is
// neither skipped, nor done, nor failed, nor rolled back, nor stuck.
func (h *Host) Open() bool {
	return !h.Done && !h.Failed && h.State != Skipped && h.State != RolledBack && h.State != Stuck
}

// Final reports whether the host has finished its path in this run, as
// the dashboard counts it.
func (h *Host) Final() bool {
	switch h.State {
	case Skipped, OK, Failed, Restored, RolledBack, Stuck:
		return true
	}
	return false
}

// StepLabel is how a step is named on screen: a step of the way back says
// so.
func StepLabel(e drover.Event) string {
	if e.Restoring && e.Step != string(rollout.StepRestore) {
		return e.Step + " (restoring)"
	}
	return e.Step
}

// Apply folds one event into the view. It returns the note the event adds
// (a line for above a live view), or nil. Events of another run than the
// one begun are ignored, except a new deploy_start, which the caller
// should give to a New view.
func (v *View) Apply(e drover.Event) *Note {
	switch e.Kind {
	case drover.EventDeployStart:
		v.begin(e)
		return nil
	case drover.EventNotice:
		return v.note(e, e.Message)
	}
	h := v.hostOf(e)
	switch e.Kind {
	case drover.EventStageStart:
		v.Staging = true
	case drover.EventStageDone:
		v.Staging = false
	case drover.EventGroupStart:
		if g := v.Group(e.Group); g != nil {
			g.Started = true
		}
	case drover.EventGroupDone:
		if g := v.Group(e.Group); g != nil {
			g.Done = true
		}
	case drover.EventGateStart:
		if g := v.Group(e.Group); g != nil {
			g.Gate, g.GateName = e.Message, e.Gate
			if g.Gate == "" {
				g.Gate = g.GateName
			}
			g.AwaitingApproval = g.GateName == drover.GateApprove
		}
	case drover.EventGateDone:
		if g := v.Group(e.Group); g != nil {
			g.Gate, g.GateName, g.AwaitingApproval = "", "", false
		}
	case drover.EventGateFailed:
		if g := v.Group(e.Group); g != nil {
			g.Gate, g.GateName, g.AwaitingApproval = "", "", false
			g.GateFailed = e.Message
			if g.GateFailed == "" {
				g.GateFailed = "gate failed"
			}
		}
		return v.note(e, e.Message)
	case drover.EventGateSkipped:
		if g := v.Group(e.Group); g != nil {
			g.Gate, g.GateName, g.AwaitingApproval = "", "", false
		}
		return v.note(e, e.Message)
	case drover.EventStepStart:
		if h == nil {
			return nil
		}
		if e.Step != string(rollout.StepStage) && h.PathStart.IsZero() {
			h.PathStart = e.Time
		}
		h.Step, h.Active, h.StepStart = StepLabel(e), true, e.Time
		switch {
		case e.Step == string(rollout.StepStage):
			h.State = Staging
		case e.Restoring:
			if h.State != Failed && h.State != Stuck {
				h.State = RollingBack
			}
		case h.State == Pending || h.State == Staged || h.State == Staging:
			h.State = Running
		}
	case drover.EventStepDone:
		if h == nil {
			return nil
		}
		h.Active = false
		h.Steps = append(h.Steps, Step{Step: e.Step, Restoring: e.Restoring, Outcome: e.Outcome, Elapsed: e.Elapsed, Message: e.Message})
		if e.Step == string(rollout.StepStage) {
			// Staged hosts wait for their batch; off the screen.
			h.Step = ""
		}
		switch e.Outcome {
		case string(rollout.OK):
			if e.Step == string(rollout.StepStage) {
				h.Staged = true
				if h.State == Staging {
					h.State = Staged
				}
			}
			// A bar never runs backwards: restoring steps after a
			// failure or a halt count as going on, up to the end.
			h.Units = min(h.Units+1, v.PathLen-1)
		case "":
		default:
			if e.Outcome == string(rollout.Unreachable) {
				h.Unreachable = true
			}
			if h.State != Stuck {
				h.State = Failed
			}
		}
	case drover.EventHostDone:
		if h != nil {
			h.State, h.Done, h.Units, h.Step, h.Active = OK, true, v.PathLen, "", false
			if !h.PathStart.IsZero() {
				v.Durations = append(v.Durations, e.Time.Sub(h.PathStart))
			}
		}
	case drover.EventHostFailed:
		if h != nil {
			h.State, h.Failed, h.Units, h.FailedMessage = Failed, true, v.PathLen, e.Message
			if h.Unreachable {
				h.Step, h.Active = "", false // nothing more will be done to it
			}
		}
		return v.note(e, e.Message)
	case drover.EventHostRestored:
		if h != nil {
			if h.Open() {
				h.Units = v.PathLen
			}
			h.State, h.Step, h.Active = Restored, "", false
		}
	case drover.EventHostRolledBack:
		if h != nil {
			h.State, h.Units, h.Step, h.Active = RolledBack, v.PathLen, "", false
			if v.Operation != drover.KindDeploy && !h.PathStart.IsZero() {
				v.Durations = append(v.Durations, e.Time.Sub(h.PathStart))
			}
		}
	case drover.EventHostStuck:
		if h != nil {
			h.State, h.Units, h.Step, h.Active, h.StuckMessage = Stuck, v.PathLen, "", false, e.Message
		}
		return v.note(e, e.Message)
	case drover.EventHalt:
		v.Halt = e.Message
		if v.Halt == "" {
			v.Halt = "halted"
		}
		for _, g := range v.Groups {
			g.AwaitingApproval = false
		}
		return v.note(e, e.Message)
	case drover.EventAbort:
		return v.note(e, e.Message)
	case drover.EventRollback:
		v.RollingBack = true
		return v.note(e, e.Message)
	case drover.EventAnalysis:
		if e.Analysis != nil {
			v.analysis(*e.Analysis)
		}
	case drover.EventVerdict:
		v.Running, v.End = false, e.Time
		v.Verdict = &Verdict{Outcome: e.Outcome, Message: e.Message}
		for _, g := range v.Groups {
			g.AwaitingApproval = false
		}
		for _, h := range v.hosts {
			h.Step, h.Active = "", false
			// Staged and never switched: the run left them as they were.
			if h.State == Staged || h.State == Staging {
				h.State = Pending
			}
		}
	}
	return nil
}

func (v *View) analysis(ev drover.AnalysisEval) {
	var a *Analysis
	for _, x := range v.Analyses {
		if x.Name == ev.Name && x.Group == ev.Group {
			a = x
			break
		}
	}
	if a == nil {
		a = &Analysis{Name: ev.Name, Group: ev.Group, Kind: ev.Kind, Evals: []Eval{}}
		v.Analyses = append(v.Analyses, a)
	}
	// The latest evaluation says who is judged against whom.
	a.Canary, a.Baseline, a.Since, a.Window, a.Max, a.Min = ev.Canary, ev.Baseline, ev.Since, ev.Window, ev.Max, ev.Min
	a.Halted = a.Halted || ev.Halted
	a.Evals = append(a.Evals, Eval{At: ev.At, Status: ev.Status, Message: ev.Message, Verdict: ev.Verdict, Halted: ev.Halted})
	if n := len(a.Evals); n > MaxEvals {
		keep := a.Evals[n-MaxEvals:]
		for _, e := range a.Evals[:n-MaxEvals] {
			if e.Halted {
				keep = append([]Eval{e}, keep[1:]...)
			}
		}
		a.Evals = append(a.Evals[:0:0], keep...)
	}
}

func (v *View) note(e drover.Event, msg string) *Note {
	n := Note{Time: e.Time, Kind: e.Kind, Group: e.Group, Host: e.Host, Message: msg}
	v.Notes = append(v.Notes, n)
	if len(v.Notes) > MaxNotes {
		v.Notes = append(v.Notes[:0:0], v.Notes[len(v.Notes)-MaxNotes:]...)
	}
	return &n
}

func (v *View) begin(e drover.Event) {
	op := e.Operation
	if op == "" {
		op = drover.KindDeploy
	}
	*v = View{
		begun: true, hosts: map[string]*Host{}, PathLen: 6, Groups: []*Group{},
		Deploy: e.Deploy, Operation: op, Title: e.Message, Release: e.Release, Version: e.Version,
		Start: e.Time, Running: true, Overrides: e.Overrides,
	}
	if op != drover.KindDeploy {
		v.PathLen = 5
	}
	for _, eg := range e.Groups {
		g := &Group{Name: eg.Name, Batch: max(eg.Batch, 1), FailureLimit: eg.FailureLimit, Hosts: []*Host{}}
		skip := map[string]bool{}
		for _, n := range eg.Skipped {
			skip[n] = true
		}
		i := 0
		for _, n := range eg.Hosts {
			h := &Host{Name: n, Group: g.Name, State: Pending, Batch: -1}
			if skip[n] {
				h.State, h.Units = Skipped, v.PathLen
			} else {
				h.Batch = i / g.Batch
				i++
			}
			g.Hosts = append(g.Hosts, h)
			v.hosts[n] = h
		}
		g.Batches = (i + g.Batch - 1) / g.Batch
		v.Groups = append(v.Groups, g)
	}
}

// hostOf is the host an event is about. A host the plan did not name (a
// recovery's own hosts) is added to its group, or to a group of its own.
func (v *View) hostOf(e drover.Event) *Host {
	if e.Host == "" || !v.begun {
		return nil
	}
	if h := v.hosts[e.Host]; h != nil {
		return h
	}
	switch e.Kind {
	case drover.EventStepStart, drover.EventStepDone, drover.EventHostDone, drover.EventHostFailed,
		drover.EventHostRestored, drover.EventHostRolledBack, drover.EventHostStuck:
	default:
		return nil
	}
	g := v.Group(e.Group)
	if g == nil {
		g = &Group{Name: e.Group, Batch: 1, Hosts: []*Host{}}
		v.Groups = append(v.Groups, g)
	}
	h := &Host{Name: e.Host, Group: g.Name, State: Pending, Batch: g.Batches}
	g.Batches++
	g.Hosts = append(g.Hosts, h)
	v.hosts[e.Host] = h
	return h
}

// ETA estimates the time left from the promotion paths finished so far:
// the hosts in flight finish one average path after they started, then
// each group's remaining hosts take one average path per batch. It is
// unknown (ok false) before any host finished, and meaningless once a
// rollback began.
func (v *View) ETA(now time.Time) (time.Duration, bool) {
	if len(v.Durations) == 0 || v.RollingBack || v.Verdict != nil {
		return 0, false
	}
	var sum time.Duration
	for _, d := range v.Durations {
		sum += d
	}
	avg := sum / time.Duration(len(v.Durations))
	var left time.Duration
	for _, h := range v.hosts {
		if h.Open() && !h.PathStart.IsZero() {
			left = max(left, avg-now.Sub(h.PathStart))
		}
	}
	for _, g := range v.Groups {
		queued := 0
		for _, h := range g.Hosts {
			if h.Open() && h.PathStart.IsZero() {
				queued++
			}
		}
		left += time.Duration((queued+g.Batch-1)/g.Batch) * avg
	}
	return max(left, 0), true
}

// Frac is how far the group is: finished steps over all steps. A host
// that failed staging counts nothing: it was never touched, and a full
// bar over a group where nothing was staged read as done.
func (v *View) Frac(g *Group) float64 {
	units := 0
	for _, h := range g.Hosts {
		if h.Failed && !h.Staged && h.PathStart.IsZero() && v.Operation == drover.KindDeploy {
			continue
		}
		units += h.Units
	}
	if len(g.Hosts) == 0 {
		return 0
	}
	return float64(units) / float64(len(g.Hosts)*v.PathLen)
}

// Counts are how many hosts of a group stand where.
type Counts struct {
	Staged, Promoted, Checking, Failed, Skipped, RolledBack, Stuck int
}

// Count counts g's hosts.
func Count(g *Group) Counts {
	var c Counts
	for _, h := range g.Hosts {
		if h.Staged {
			c.Staged++
		}
		switch {
		case h.State == Skipped:
			c.Skipped++
		case h.State == RolledBack:
			c.RolledBack++
		case h.State == Stuck:
			c.Stuck++
		case h.Done:
			c.Promoted++
		}
		if h.Failed {
			c.Failed++
		}
		if h.Active && strings.HasPrefix(h.Step, string(rollout.StepCheck)) {
			c.Checking++
		}
	}
	return c
}
