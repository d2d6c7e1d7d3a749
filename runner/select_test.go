package runner

import (
	"context"
	"slices"
	"strings"
	"testing"

	"drover"
)

func TestSelectHosts(t *testing.T) {
	spec := testSpec(12) // h01..h12
	cases := []struct {
		limit string
		want  []string // nil: every host
	}{
		{"", nil},
		{"  ", nil},
		{"h01", []string{"h01"}},
		{"h0*", []string{"h01", "h02", "h03", "h04", "h05", "h06", "h07", "h08", "h09"}},
		{"h1?", []string{"h10", "h11", "h12"}},
		{"h01,h03", []string{"h01", "h03"}},
		{" h01 , h03 ,", []string{"h01", "h03"}},
		{"h01,h0[1-2]", []string{"h01", "h02"}},
		{"!h02", []string{"h01", "h03", "h04", "h05", "h06", "h07", "h08", "h09", "h10", "h11", "h12"}},
		{"h0*,!h03,!h0[5-9]", []string{"h01", "h02", "h04"}},
		{"!h0*", []string{"h10", "h11", "h12"}},
		// Ranges: the lower bound's digits give the width.
		{"h[01:03]", []string{"h01", "h02", "h03"}},
		{"h[09:11]", []string{"h09", "h10", "h11"}},
		{"h[1:12]", []string{"h10", "h11", "h12"}}, // h1..h9 are not names here
		{"h[07:20]", []string{"h07", "h08", "h09", "h10", "h11", "h12"}},
		{"h[01:12],!h[02:11]", []string{"h01", "h12"}},
		{"h[01:04],h1*", []string{"h01", "h02", "h03", "h04", "h10", "h11", "h12"}},
		{"!h[01:10]", []string{"h11", "h12"}},
		{"?[11:12]", []string{"h11", "h12"}},
		{"h[05:05]", []string{"h05"}},
	}
	for _, c := range cases {
		got, err := SelectHosts(spec, c.limit)
		if err != nil {
			t.Errorf("%q: %v", c.limit, err)
			continue
		}
		want := c.want
		if want == nil {
			want = hostNames(12)
		}
		if keys := sortedKeys(got); !slices.Equal(keys, want) {
			t.Errorf("%q selects %v, want %v", c.limit, keys, want)
		}
	}
}

func TestSelectHostsErrors(t *testing.T) {
	spec := testSpec(3)
	cases := []struct {
		limit string
		want  []string // in the message or the hint
	}{
		{"web*", []string{`"web*"`, "matches no host", "drover.yaml", "h01, h02, h03"}},
		{"h01,h9", []string{`"h9"`, "matches no host"}},
		{"!h9", []string{`"!h9"`, "excludes no host", "h01, h02, h03"}},
		{"h[", []string{`"h["`, "bad pattern"}},
		{"!h[", []string{`"!h["`, "bad pattern"}},
		{"h[03:01]", []string{`"h[03:01]"`, "runs backwards"}},
		{"h[01:02]x[1:2]", []string{"only one range"}},
		{"h[0:999999999]", []string{"more than"}},
		{"h[13:20]", []string{`"h[13:20]"`, "matches no host"}},
		{"h[01:12],!h[13:19]", []string{`"!h[13:19]"`, "excludes no host"}},
		{"h[01:03],!h[01:03]", []string{"leaves no host"}},
		{"h01,!h01", []string{"leaves no host"}},
		{"!h*", []string{"leaves no host"}},
	}
	for _, c := range cases {
		_, err := SelectHosts(spec, c.limit)
		if drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("%q: err %v (%s), want EINVALID", c.limit, err, drover.ErrorCode(err))
			continue
		}
		text := err.Error() + " / " + drover.ErrorHint(err)
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%q: %q lacks %q", c.limit, text, w)
			}
		}
	}
}

// TestDeployBadLimitTouchesNothing: a --limit typo is an error before the
// lock, the journal or any host is touched.
func TestDeployBadLimitTouchesNothing(t *testing.T) {
	e := newEnv(t, testSpec(3))
	_, err := e.r.Deploy(context.Background(), DeployOptions{Release: mkRelease(t, "1.0.0"), Limit: "web*"})
	if drover.ExitCode(err) != drover.ExitUsage {
		t.Fatalf("err %v: exit %d", err, drover.ExitCode(err))
	}
	if calls := e.log.all(); len(calls) != 0 {
		t.Errorf("calls after a bad --limit: %+v", calls)
	}
}

func TestPlanTouchesNothing(t *testing.T) {
	e := newEnv(t, testSpec(4))
	v1, v2 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0")
	e.mustDeploy(v1, "")
	e.mustDeploy(v2, "h02") // already on v2: skipped by the plan
	e.fleet.SetDown("h04", true)
	before := e.states()
	hist, _ := e.store.History(context.Background(), Key(e.spec), 0)
	mark := e.log.mark()

	p, err := e.r.Plan(context.Background(), DeployOptions{Release: v2})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range e.log.since(mark) {
		switch c.Op {
		case opOpen, opState, opReadFile, opClose:
		default:
			t.Errorf("plan made a %s call on %s", c.Op, c.Host)
		}
	}
	e.wantSnapshots(before)
	if h, _ := e.store.History(context.Background(), Key(e.spec), 0); len(h) != len(hist) {
		t.Errorf("plan wrote history: %d records, had %d", len(h), len(hist))
	}

	actions := map[string]string{}
	var h01 PlanHost
	for _, g := range p.Groups {
		for _, h := range g.Hosts {
			actions[h.Name] = h.Action
			if h.Name == "h01" {
				h01 = h
			}
		}
	}
	want := map[string]string{"h01": "deploy", "h02": "skip", "h03": "deploy", "h04": "unreachable"}
	for name, w := range want {
		if actions[name] != w {
			t.Errorf("%s: action %q, want %q", name, actions[name], w)
		}
	}
	if len(h01.Diffs) != 1 || !strings.Contains(h01.Diffs[0].Diff, "-version = 1.0.0") || !strings.Contains(h01.Diffs[0].Diff, "+version = 2.0.0") {
		t.Errorf("h01 diffs: %+v", h01.Diffs)
	}
}

// ConfirmGroups names only the confirm groups a --limit reaches: the CLI
// and the server refuse those deploys without a way to ask.
func TestConfirmGroups(t *testing.T) {
	spec := testSpec(4) // canary h01, default h02..h04
	spec.Groups[0].Confirm = true
	spec.Groups[1].Confirm = true
	for _, tt := range []struct {
		limit string
		want  []string
	}{
		{"", []string{"canary", "default"}},
		{"h01", []string{"canary"}},
		{"h0[2-4]", []string{"default"}},
	} {
		got, err := ConfirmGroups(spec, tt.limit)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ConfirmGroups(%q) = %v, %v; want %v", tt.limit, got, err, tt.want)
		}
	}
	spec.Groups[1].Confirm = false
	if got, err := ConfirmGroups(spec, "h02"); err != nil || got != nil {
		t.Errorf("no confirm group reached: %v, %v", got, err)
	}
	if _, err := ConfirmGroups(spec, "nosuchhost"); err == nil {
		t.Error("a --limit that matches nothing: no error")
	}
}
