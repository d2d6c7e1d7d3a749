package main

import (
	"strings"
	"testing"
	"time"

	"drover"
)

// TestProgressBarNothingStaged: a group whose every host failed staging
// was never touched; its bar stays empty instead of reading 100%.
func TestProgressBarNothingStaged(t *testing.T) {
	p := newProgress(style{})
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(kind, host, step, outcome, msg string) drover.Event {
		return drover.Event{Time: t0, Deploy: "d", Kind: kind, Group: "web", Host: host, Step: step, Outcome: outcome, Message: msg}
	}
	p.apply(drover.Event{Time: t0, Deploy: "d", Kind: drover.EventDeployStart, Message: "deploy web 1.0",
		Groups: []drover.EventGroup{{Name: "web", Hosts: []string{"h1", "h2"}, Batch: 1, FailureLimit: 0}}})
	p.apply(ev(drover.EventStageStart, "", "", "", ""))
	for _, h := range []string{"h1", "h2"} {
		p.apply(ev(drover.EventStepStart, h, "stage", "", ""))
		p.apply(ev(drover.EventStepDone, h, "stage", "failed", "validate: bad"))
		p.apply(ev(drover.EventHostFailed, h, "", "", "stage: validate: bad"))
	}
	p.apply(ev(drover.EventHalt, "", "", "", "group web: 2 failed > failure limit 0"))
	p.apply(ev(drover.EventVerdict, "", "", "", "rolled_back: nothing switched"))
	screen := strings.Join(p.lines(100, 0, t0), "\n")
	if !strings.Contains(screen, "  0%") || strings.Contains(screen, "100%") {
		t.Errorf("a group where nothing was staged:\n%s", screen)
	}
}
