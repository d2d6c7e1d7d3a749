package runner

import (
	"context"
	"slices"
	"strings"
	"testing"

	"drover"
)

// TestOverrideSkipsGateForOneDeploy: with --skip-gate canary:confirm and
// no one to ask, the deploy goes on past the canary; the gate is reported
// skipped with the reason (gate_skipped, never gate_done), and the record
// and deploy_start carry the override. The next deploy, without it, asks
// again and, with no one to ask, is rolled back.
func TestOverrideSkipsGateForOneDeploy(t *testing.T) {
	spec := testSpec(3)
	e := newEnv(t, spec)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	spec.Groups[0].Confirm = true

	ovs, err := drover.NewOverrides(spec, nil, nil, []string{"canary:confirm"}, "INC-7: on-call alone, no second pair of eyes")
	if err != nil {
		t.Fatal(err)
	}
	out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0"), Overrides: ovs})
	if out.ExitCode != drover.ExitOK {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	var gateEvents []string
	var start drover.Event
	for _, ev := range e.events.all() {
		if ev.Deploy != out.DeployID {
			continue
		}
		if strings.HasPrefix(ev.Kind, "gate_") {
			gateEvents = append(gateEvents, ev.Kind+" "+ev.Group+": "+ev.Message)
		}
		if ev.Kind == drover.EventDeployStart {
			start = ev
		}
	}
	want := []string{"gate_skipped canary: confirm skipped: INC-7: on-call alone, no second pair of eyes"}
	if !slices.Equal(gateEvents, want) {
		t.Errorf("gate events %q, want %q", gateEvents, want)
	}
	if !slices.Equal(start.Overrides, ovs) {
		t.Errorf("deploy_start overrides %+v, want %+v", start.Overrides, ovs)
	}
	rec, err := e.store.Deploy(context.Background(), out.DeployID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.Overrides, ovs) {
		t.Errorf("record overrides %+v, want %+v", rec.Overrides, ovs)
	}

	out = e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "3.0.0")})
	if out.ExitCode != drover.ExitRolledBack || !strings.Contains(out.Report.HaltReason, "no one to ask") {
		t.Errorf("the next deploy must ask again: exit %d, halt %q", out.ExitCode, out.Report.HaltReason)
	}
	if rec, _ := e.store.Deploy(context.Background(), out.DeployID); len(rec.Overrides) != 0 {
		t.Errorf("the next deploy carries overrides %+v", rec.Overrides)
	}
}

// TestOverrideSkipsCheckForOneDeploy: --skip-check up runs no check step
// command for that deploy; the spec keeps the check for the next one.
func TestOverrideSkipsCheckForOneDeploy(t *testing.T) {
	spec := testSpec(2)
	e := newEnv(t, spec)
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	ovs, err := drover.NewOverrides(spec, []string{"up"}, nil, nil, "INC-8")
	if err != nil {
		t.Fatal(err)
	}
	checks := func() int {
		n := 0
		for _, c := range e.log.all() {
			if c.Op == opCheck && c.Arg == "up" {
				n++
			}
		}
		return n
	}
	before := checks()
	e.mustDeploy(mkRelease(t, "2.0.0"), "")
	perDeploy := checks() - before
	if perDeploy == 0 {
		t.Fatal("a plain deploy ran no check: the test cannot tell")
	}
	before = checks()
	if out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "3.0.0"), Overrides: ovs}); out.ExitCode != 0 {
		t.Fatalf("exit %d: %s", out.ExitCode, out.Summary)
	}
	if n := checks() - before; n != 0 {
		t.Errorf("the deploy skipping check up ran it %d times", n)
	}
	if len(spec.Checks) != 1 {
		t.Errorf("the override changed the spec: %+v", spec.Checks)
	}
	before = checks()
	e.mustDeploy(mkRelease(t, "4.0.0"), "")
	if n := checks() - before; n != perDeploy {
		t.Errorf("the deploy after the override ran the check %d times, want %d", n, perDeploy)
	}
}
