package report

import (
	"time"

	"drover"
)

// StepView is one step of one host in `drover show`: its start and done
// entries joined.
type StepView struct {
	Step     string        `json:"step"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns,omitempty"`
	Outcome  string        `json:"outcome"`
	Reason   string        `json:"reason,omitempty"`
	Output   string        `json:"output,omitempty"`
}

// HostView is one host of a deploy: where it was before and its steps.
type HostView struct {
	Name    string          `json:"name"`
	Group   string          `json:"group"`
	Before  drover.Snapshot `json:"before"`
	Skipped bool            `json:"skipped,omitempty"`
	Steps   []StepView      `json:"steps"`
}

// DeployView is one deploy as `drover show` prints it.
type DeployView struct {
	Deploy drover.DeployRecord `json:"deploy"`
	Status string              `json:"status"`
	Hosts  []HostView          `json:"hosts"`
	// Analyses are the deploy's canary analysis evaluations, in order.
	Analyses []drover.AnalysisEval `json:"analyses,omitempty"`
}

// Show is the view of deploy d with journal j and status (DeployStatus).
func Show(d drover.DeployRecord, j []drover.JournalEntry, status string) DeployView {
	return DeployView{Deploy: d, Status: status, Hosts: Timeline(d, j, status), Analyses: AnalysisEvals(j)}
}

// AnalysisEvals are the canary analysis evaluations a journal holds, in
// order.
func AnalysisEvals(journal []drover.JournalEntry) []drover.AnalysisEval {
	var out []drover.AnalysisEval
	for _, j := range journal {
		if j.Analysis != nil {
			out = append(out, *j.Analysis)
		}
	}
	return out
}

// Timeline joins a journal into per-host step lists, hosts in the record's
// order. A start with no done is a step whose process died (or is still
// running): its outcome says so rather than leaving a blank.
func Timeline(d drover.DeployRecord, j []drover.JournalEntry, status string) []HostView {
	var hosts []HostView
	index := map[string]int{}
	for _, h := range d.Hosts {
		index[h.Name] = len(hosts)
		hosts = append(hosts, HostView{Name: h.Name, Group: h.Group, Before: h.Before, Skipped: h.Skipped, Steps: []StepView{}})
	}
	open := map[string]int{} // host/step -> index of the step without a done yet
	for _, e := range j {
		if e.Analysis != nil {
			continue // an analysis evaluation: its own table (AnalysisEvals)
		}
		i, ok := index[e.Host]
		if !ok {
			index[e.Host] = len(hosts)
			i = len(hosts)
			hosts = append(hosts, HostView{Name: e.Host, Steps: []StepView{}})
		}
		h := &hosts[i]
		k := e.Host + "/" + e.Step
		switch e.Phase {
		case drover.PhaseStart:
			open[k] = len(h.Steps)
			h.Steps = append(h.Steps, StepView{Step: e.Step, Started: e.At})
		default:
			si, ok := open[k]
			if !ok {
				h.Steps = append(h.Steps, StepView{Step: e.Step, Started: e.At})
				si = len(h.Steps) - 1
			}
			delete(open, k)
			s := &h.Steps[si]
			s.Finished, s.Outcome, s.Reason, s.Output, s.Elapsed = e.At, e.Outcome, e.Reason, e.Output, e.Elapsed
			if s.Elapsed == 0 {
				s.Elapsed = e.At.Sub(s.Started)
			}
		}
	}
	unfinished := "no result: " + status
	if status != StatusRunning {
		unfinished = "no result: the process died"
	}
	for i := range hosts {
		for k := range hosts[i].Steps {
			if hosts[i].Steps[k].Finished.IsZero() {
				hosts[i].Steps[k].Outcome = unfinished
			}
		}
	}
	return hosts
}
