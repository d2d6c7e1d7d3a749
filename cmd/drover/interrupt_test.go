package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"drover"
)

// TestInterruptLines: after a signal the live area ends with what it
// does, each step still running with the time left to its deadline, and
// what a second signal does; after the verdict one line says it was interrupted.
func TestInterruptLines(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := t0
	v := newLiveView(&buf, -1, style{})
	v.manual = true
	v.now = func() time.Time { return now }
	v.size = func() (int, int) { return 200, 40 }
	v.Emit(drover.Event{Time: t0, Deploy: "d", Kind: drover.EventDeployStart, Message: "deploy web 2.0",
		Groups: []drover.EventGroup{{Name: "web", Hosts: []string{"h1", "h2"}, Batch: 2}}})
	v.Emit(drover.Event{Time: t0, Deploy: "d", Kind: drover.EventStepStart, Group: "web", Host: "h1", Step: "check", Timeout: 40 * time.Second})
	v.Emit(drover.Event{Time: t0, Deploy: "d", Kind: drover.EventStepStart, Group: "web", Host: "h2", Step: "restart", Timeout: 10 * time.Second})
	v.tick()
	if strings.Contains(buf.String(), "Ctrl-C") {
		t.Fatalf("an explanation before any signal:\n%s", buf.String())
	}
	v.interrupted(os.Interrupt)
	now = t0.Add(5 * time.Second)
	buf.Reset()
	v.tick()
	got := stripANSI(buf.String())
	for _, want := range []string{
		"! Ctrl-C: halting: no new host starts",
		"still running: h2 restart (ends within 5.0s), h1 check (ends within 35.0s)",
		"Ctrl-C again stops at once",
		"`drover resume`",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("after Ctrl-C the view lacks %q:\n%s", want, got)
		}
	}
	v.Emit(drover.Event{Time: now, Deploy: "d", Kind: drover.EventStepDone, Group: "web", Host: "h2", Step: "restart", Outcome: "ok"})
	v.Emit(drover.Event{Time: now, Deploy: "d", Kind: drover.EventVerdict, Message: "rolled_back: interrupted"})
	buf.Reset()
	v.close()
	got = stripANSI(buf.String())
	if !strings.Contains(got, "! interrupted by Ctrl-C") || strings.Contains(got, "still running") || strings.Contains(got, "again") {
		t.Errorf("the final screen after Ctrl-C:\n%s", got)
	}
}
