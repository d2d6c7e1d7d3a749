package runner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"drover"
)

// TestConfirmGate: a group with confirm: true asks once its hosts are done
// and before the next group starts; yes goes on, no (or an error, or no
// one to ask) halts and rolls back everything switched.
func TestConfirmGate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		confirm  func(ctx context.Context, q string) (bool, error)
		nilAsk   bool
		exit     int
		reason   string
		canaryOn string
	}{
		{name: "yes", confirm: func(context.Context, string) (bool, error) { return true, nil }, exit: drover.ExitOK, canaryOn: "2.0.0"},
		{name: "no", confirm: func(context.Context, string) (bool, error) { return false, nil }, exit: drover.ExitRolledBack, reason: "declined to go past group canary", canaryOn: "1.0.0"},
		{name: "error", confirm: func(context.Context, string) (bool, error) { return false, errors.New("tty gone") }, exit: drover.ExitRolledBack, reason: "tty gone", canaryOn: "1.0.0"},
		{name: "no one to ask", nilAsk: true, exit: drover.ExitRolledBack, reason: "no one to ask", canaryOn: "1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(3)
			e := newEnv(t, spec)
			e.mustDeploy(mkRelease(t, "1.0.0"), "")
			spec.Groups[0].Confirm = true

			var mu sync.Mutex
			var asked []string
			var switchedWhenAsked []string
			if !tc.nilAsk {
				e.r.Confirm = func(ctx context.Context, q string) (bool, error) {
					mu.Lock()
					asked = append(asked, q)
					for _, h := range []string{"h01", "h02", "h03"} {
						if e.fleet.State(h).Version == "2.0.0" {
							switchedWhenAsked = append(switchedWhenAsked, h)
						}
					}
					mu.Unlock()
					return tc.confirm(ctx, q)
				}
			}
			out := e.deploy(context.Background(), DeployOptions{Release: mkRelease(t, "2.0.0")})
			if out.ExitCode != tc.exit {
				t.Fatalf("exit %d, want %d: %s", out.ExitCode, tc.exit, out.Summary)
			}
			if !strings.Contains(out.Report.HaltReason, tc.reason) {
				t.Errorf("halt reason %q, want %q", out.Report.HaltReason, tc.reason)
			}
			if v := e.fleet.State("h01").Version; v != tc.canaryOn {
				t.Errorf("canary on %s, want %s", v, tc.canaryOn)
			}
			if tc.nilAsk {
				return
			}
			// Asked once, after the canary and before the rest.
			if len(asked) != 1 || !strings.Contains(asked[0], "group canary is done") {
				t.Errorf("asked %q", asked)
			}
			if !slices.Equal(switchedWhenAsked, []string{"h01"}) {
				t.Errorf("on the new release when asked: %v, want only the canary", switchedWhenAsked)
			}
			var gates []string
			for _, ev := range e.events.all() {
				if strings.HasPrefix(ev.Kind, "gate_") {
					gates = append(gates, ev.Kind+" "+ev.Group)
				}
			}
			if len(gates) != 2 || gates[0] != "gate_start canary" {
				t.Errorf("gate events %q", gates)
			}
		})
	}
}

// TestConfirmLastGroup: confirm on the last group asks whether to keep the
// release; a group without confirm asks nothing.
func TestConfirmLastGroup(t *testing.T) {
	spec := testSpec(3)
	spec.Groups[1].Confirm = true
	e := newEnv(t, spec)
	var asked []string
	e.r.Confirm = func(ctx context.Context, q string) (bool, error) {
		asked = append(asked, q)
		return true, nil
	}
	e.mustDeploy(mkRelease(t, "1.0.0"), "")
	if len(asked) != 1 || !strings.Contains(asked[0], "group default is done, the last one") {
		t.Errorf("asked %q", asked)
	}
}
