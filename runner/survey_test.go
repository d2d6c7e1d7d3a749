package runner

import (
	"context"
	"testing"
	"time"
)

// TestSurveyReadsPastStageParallelism: a survey reads every target at
// once, not stage_parallelism at a time. Bounded by stage_parallelism, a
// fleet larger than it was surveyed in waves: the hosts past the bound
// were connected only once an earlier one had answered, a whole connect
// and probe more before a deploy could begin.
func TestSurveyReadsPastStageParallelism(t *testing.T) {
	spec := testSpec(6)
	spec.StageParallelism = 2
	e := newEnv(t, spec)
	var gates []*gate
	for _, h := range spec.Hosts {
		gates = append(gates, e.fleet.Hold(h.Name, opState))
	}
	targets := map[string]bool{}
	for _, h := range spec.Hosts {
		targets[h.Name] = true
	}
	cs := newConns(e.r.Transport, spec)
	defer cs.closeAll()
	done := make(chan map[string]*hostView, 1)
	go func() { done <- e.r.survey(context.Background(), cs, targets) }()
	// Every host's read is in flight before any is let through.
	timeout := time.After(10 * time.Second)
	for i, g := range gates {
		select {
		case <-g.entered:
		case <-timeout:
			for _, g := range gates {
				g.Release()
			}
			<-done
			t.Fatalf("only %d of %d hosts were being read at once (stage_parallelism %d): the survey waits for earlier hosts", i, len(gates), spec.StageParallelism)
		}
	}
	for _, g := range gates {
		g.Release()
	}
	views := <-done
	for name, v := range views {
		if v.Err != nil {
			t.Errorf("%s: %v", name, v.Err)
		}
	}
	if len(views) != len(spec.Hosts) {
		t.Errorf("%d views, want %d", len(views), len(spec.Hosts))
	}
}
