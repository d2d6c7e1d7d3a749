package runner

import (
	"context"
	"testing"
	"time"

	"drover/rollout"
)

// TestSurveyReadsPastStageParallelism: a survey reads every target at
// once, not stage_parallelism at a time. Bounded by stage_parallelism, a
// fleet larger than it was surveyed in waves: the hosts past the bound
// were connected only once an earlier one had answered, a whole connect
// and probe more before a deploy could begin.
func TestSurveyReadsPastStageParallelism(t *testing.T) {
	e, targets := sweepEnv(t)
	cs := newConns(e.r.Transport, e.spec)
	defer cs.closeAll()
	allAtOnce(t, e, opState, func() {
		for name, v := range e.r.survey(context.Background(), cs, targets) {
			if v.Err != nil {
				t.Errorf("%s: %v", name, v.Err)
			}
		}
	})
}

// TestPrunePastStageParallelism: after a deploy, every host is pruned at
// once; in rounds of stage_parallelism the command's exit waited for
// several prunes in a row.
func TestPrunePastStageParallelism(t *testing.T) {
	e, _ := sweepEnv(t)
	cs := newConns(e.r.Transport, e.spec)
	defer cs.closeAll()
	var rep rollout.Report
	for _, h := range e.spec.Hosts {
		rep.Hosts = append(rep.Hosts, rollout.HostReport{Name: h.Name, Status: rollout.HostDone})
	}
	allAtOnce(t, e, opPrune, func() { e.r.prune(context.Background(), cs, "d-1", rep) })
}

// sweepEnv is 6 hosts with stage_parallelism 2, and the 6 as targets.
func sweepEnv(t *testing.T) (*env, map[string]bool) {
	spec := testSpec(6)
	spec.StageParallelism = 2
	targets := map[string]bool{}
	for _, h := range spec.Hosts {
		targets[h.Name] = true
	}
	return newEnv(t, spec), targets
}

// allAtOnce runs sweep with op held on every host and fails unless every
// host's op is in flight before any is let through.
func allAtOnce(t *testing.T, e *env, op string, sweep func()) {
	t.Helper()
	var gates []*gate
	for _, h := range e.spec.Hosts {
		gates = append(gates, e.fleet.Hold(h.Name, op))
	}
	done := make(chan struct{})
	go func() { defer close(done); sweep() }()
	timeout := time.After(10 * time.Second)
	held := 0
	for _, g := range gates {
		select {
		case <-g.entered:
			held++
			continue
		case <-timeout:
		}
		break
	}
	for _, g := range gates {
		g.Release()
	}
	<-done
	if held < len(gates) {
		t.Fatalf("%s: only %d of %d hosts at once (stage_parallelism %d): the hosts past it waited for earlier ones", op, held, len(gates), e.spec.StageParallelism)
	}
}
