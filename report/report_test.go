package report

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/runner"
	"drover/store/file"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// A start and its done are one step; a start with no done says whether
// the process died or still runs; hosts keep the record's order, and a
// host only the journal names comes after them.
func TestTimeline(t *testing.T) {
	d := drover.DeployRecord{ID: "d-1", Hosts: []drover.DeployHost{{Name: "h01", Group: "canary"}, {Name: "h02", Group: "default", Skipped: true}}}
	j := []drover.JournalEntry{
		{At: t0, Host: "h01", Step: "switch", Phase: "start"},
		{At: t0.Add(time.Second), Host: "h01", Step: "switch", Phase: "done", Outcome: "ok"},
		{At: t0.Add(2 * time.Second), Host: "h01", Step: "check", Phase: "start"},
		{At: t0.Add(3 * time.Second), Host: "h03", Step: "restore", Phase: "done", Outcome: "failed", Reason: "boom", Elapsed: time.Millisecond},
	}
	for _, tt := range []struct{ status, open string }{
		{StatusRunning, "no result: running"},
		{StatusInterrupted, "no result: the process died"},
		{StatusUnknown, "no result: the process died"},
	} {
		hosts := Timeline(d, j, tt.status)
		var names []string
		for _, h := range hosts {
			names = append(names, h.Name)
		}
		if !reflect.DeepEqual(names, []string{"h01", "h02", "h03"}) {
			t.Fatalf("hosts %v", names)
		}
		h1 := hosts[0]
		if h1.Group != "canary" || len(h1.Steps) != 2 {
			t.Fatalf("h01: %+v", h1)
		}
		if s := h1.Steps[0]; s.Outcome != "ok" || s.Elapsed != time.Second || !s.Finished.Equal(t0.Add(time.Second)) {
			t.Errorf("switch: %+v, want ok after 1s (elapsed from the entries when the done has none)", s)
		}
		if s := h1.Steps[1]; s.Outcome != tt.open || !s.Finished.IsZero() {
			t.Errorf("status %s: open check: %+v, want %q", tt.status, s, tt.open)
		}
		if !hosts[1].Skipped || len(hosts[1].Steps) != 0 {
			t.Errorf("h02: %+v", hosts[1])
		}
		if s := hosts[2].Steps; len(s) != 1 || s[0].Outcome != "failed" || s[0].Reason != "boom" || s[0].Elapsed != time.Millisecond {
			t.Errorf("a done without its start: %+v", s)
		}
	}
}

func TestHistoryRows(t *testing.T) {
	recs := []drover.DeployRecord{
		{ID: "d-2", Kind: drover.KindDeploy, Started: t0},
		{ID: "d-1", Kind: drover.KindDeploy, Started: t0, Finished: t0.Add(90 * time.Second), Outcome: drover.OutcomeSucceeded,
			Overrides: []drover.Override{{Kind: drover.OverrideCheck, Name: "x", Reason: "y"}}},
	}
	rows := History(recs, nil, nil)
	if rows[0].Status != StatusInterrupted || rows[0].Duration != 0 {
		t.Errorf("unfinished row %+v", rows[0])
	}
	if rows[1].Status != drover.OutcomeSucceeded || rows[1].Duration != 90 {
		t.Errorf("finished row %+v", rows[1])
	}
	if KindLabel(rows[0].DeployRecord) != "deploy" || KindLabel(rows[1].DeployRecord) != "deploy!" {
		t.Errorf("kind labels %q %q: an override marks the kind", KindLabel(rows[0].DeployRecord), KindLabel(rows[1].DeployRecord))
	}
}

func openStore(t *testing.T, recs ...drover.DeployRecord) drover.Store {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range recs {
		fin := r.Finished
		out := r.Outcome
		r.Finished, r.Outcome, r.Key, r.Service = time.Time{}, "", "hello", "hello"
		if err := st.Begin(ctx, r); err != nil {
			t.Fatal(err)
		}
		if !fin.IsZero() {
			if err := st.Finish(ctx, r.ID, drover.FinishRecord{Finished: fin, Outcome: out}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st
}

func hs(name, group, release string) runner.HostStatus {
	return runner.HostStatus{Name: name, Group: group, Reachable: true, Release: release, Version: strings.SplitN(release, "-", 2)[0]}
}

func TestDesiredRelease(t *testing.T) {
	ctx := context.Background()
	// Two hosts of three were upgraded with --limit: the fleet should be
	// on v2, though v1 is the most common release.
	fleet := []runner.HostStatus{hs("h01", "g", "v2-b"), hs("h02", "g", "v1-a"), hs("h03", "g", "v1-a+01234567")}
	deploy := func(id, rel, outcome string, at time.Duration) drover.DeployRecord {
		return drover.DeployRecord{ID: id, Kind: drover.KindDeploy, Release: rel, Started: t0.Add(at), Finished: t0.Add(at + time.Minute), Outcome: outcome}
	}
	for _, tt := range []struct {
		name string
		recs []drover.DeployRecord
		want string
		// common: the basis is the most common release, not a deploy.
		common bool
	}{
		{"last successful deploy", []drover.DeployRecord{deploy("d-1", "v1-a", drover.OutcomeSucceeded, 0), deploy("d-2", "v2-b", drover.OutcomeSucceeded, time.Hour)}, "v2-b", false},
		{"partial counts", []drover.DeployRecord{deploy("d-1", "v2-b", drover.OutcomePartial, 0)}, "v2-b", false},
		{"a failed deploy is skipped", []drover.DeployRecord{deploy("d-1", "v2-b", drover.OutcomeSucceeded, 0), deploy("d-2", "v3-c", drover.OutcomeRolledBack, time.Hour)}, "v2-b", false},
		{"a rollback since: most common", []drover.DeployRecord{deploy("d-1", "v2-b", drover.OutcomeSucceeded, 0),
			{ID: "d-2", Kind: drover.KindRollback, Started: t0.Add(time.Hour), Finished: t0.Add(time.Hour + time.Minute), Outcome: drover.OutcomeSucceeded}}, "v1-a", true},
		{"no history: most common, config slots counted as their release", nil, "v1-a", true},
	} {
		got, basis, err := DesiredRelease(ctx, openStore(t, tt.recs...), "hello", fleet)
		if err != nil || got != tt.want || strings.Contains(basis, "most common") != tt.common {
			t.Errorf("%s: %q (%s), %v; want %q", tt.name, got, basis, err, tt.want)
		}
	}
	if _, _, err := DesiredRelease(ctx, openStore(t), "hello", []runner.HostStatus{{Name: "h01"}}); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("no history and no release: %v, want ENOTFOUND", err)
	}
}

func TestFindStragglers(t *testing.T) {
	since := t0
	on := func(h runner.HostStatus, at time.Time) runner.HostStatus { h.DeployedAt = at; return h }
	fleet := &runner.FleetStatus{Service: "hello", Hosts: []runner.HostStatus{
		on(hs("h01", "g", "v2-b"), t0.Add(time.Hour)),
		on(hs("h02", "g", "v2-b+01234567"), t0.Add(time.Hour)),
		on(hs("h03", "g", "v1-a"), t0.Add(time.Hour)),
		on(hs("h04", "g", "v2-b"), t0.Add(-time.Hour)),
		{Name: "h05", Group: "g"},
		{Name: "h06", Group: "g", Reachable: true},
	}}
	rep := FindStragglers(fleet, "v2-b", "given", since)
	got := map[string]string{}
	for _, h := range rep.Hosts {
		got[h.Name] = strings.Join(h.Reasons, "; ")
	}
	want := map[string]string{
		"h03": "on v1 (v1-a), not v2-b",
		"h04": "last deployed " + t0.Add(-time.Hour).Local().Format("2006-01-02 15:04:05") + ", before " + t0.Local().Format("2006-01-02 15:04:05"),
		"h05": "unreachable: ",
		"h06": "no release deployed; never deployed, before " + t0.Local().Format("2006-01-02 15:04:05"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stragglers:\n got %q\nwant %q", got, want)
	}
	if rep.Unreachable != 1 || rep.Total != 6 || rep.Desired != "v2-b" {
		t.Errorf("report %+v", rep)
	}
}

func TestEnvDiff(t *testing.T) {
	groups := []drover.Group{{Name: "canary"}, {Name: "default"}}
	a := Survey(groups, []runner.HostStatus{
		hs("a1", "canary", "v2-b"), hs("a2", "default", "v2-b"), hs("a3", "default", "v2-b"), {Name: "a4", Group: "default"}, hs("x", "nogroup", "v9-z"),
	})
	b := Survey([]drover.Group{{Name: "canary"}, {Name: "default"}, {Name: "extra"}}, []runner.HostStatus{
		hs("b1", "canary", "v2-b+01234567"), hs("b2", "default", "v1-a"),
	})
	if s := a.Sides["default"]; s.Hosts != 3 || s.Unreachable != 1 || s.Releases["v2-b"] != 2 {
		t.Fatalf("survey of a/default: %+v", s)
	}
	d := Diff("hello", "a", "b", a, b)
	got := map[string][]string{}
	for _, g := range d.Groups {
		got[g.Group] = g.Differs
	}
	want := map[string][]string{
		"canary":  {}, // the same release in a config slot of its own
		"default": {"release", "version"},
		"extra":   {"group"},
	}
	if !reflect.DeepEqual(got, want) || d.Unreachable != 1 || d.Groups[2].A != nil {
		t.Errorf("diff %+v, want %v", d, want)
	}
}

// phase says what a running deploy does from its journal alone.
func TestActivityPhase(t *testing.T) {
	for _, tt := range []struct {
		j    []drover.JournalEntry
		want string
	}{
		{nil, "starting (reading the hosts)"},
		{[]drover.JournalEntry{
			{Host: "h01", Step: "switch", Phase: "start"}, {Host: "h02", Step: "switch", Phase: "start"},
			{Host: "h03", Step: "check", Phase: "start"}, {Host: "h02", Step: "switch", Phase: "done", Outcome: "ok"},
		}, "switch on h01; check on h03"},
		{[]drover.JournalEntry{{Host: "h01", Step: "switch", Phase: "start"}, {Host: "h01", Step: "switch", Phase: "done", Outcome: "ok"}},
			"between steps (last: switch on h01, ok)"},
	} {
		if got := phase(tt.j); got != tt.want {
			t.Errorf("phase = %q, want %q", got, tt.want)
		}
	}
}

// TestOneRelease: diff's "the same release" needs one release on every
// host of each side; a host on none, another release or not answering
// makes it "no one release".
func TestOneRelease(t *testing.T) {
	side := func(unreachable int, rels ...string) *EnvSide {
		s := &EnvSide{Releases: map[string]int{}, Unreachable: unreachable}
		for _, r := range rels {
			s.Releases[r]++
		}
		return s
	}
	for _, tc := range []struct {
		sides map[string]*EnvSide
		want  string
	}{
		{map[string]*EnvSide{"web": side(0, "1.0-a", "1.0-a"), "db": side(0, "1.0-a")}, "1.0-a"},
		{map[string]*EnvSide{"web": side(0, "1.0-a"), "db": side(0, "1.0-b")}, ""},
		{map[string]*EnvSide{"web": side(0, "1.0-a", "-")}, ""},
		{map[string]*EnvSide{"web": side(1, "1.0-a")}, ""},
		{map[string]*EnvSide{}, ""},
	} {
		if got := oneRelease(tc.sides); got != tc.want {
			t.Errorf("oneRelease(%v) = %q, want %q", tc.sides, got, tc.want)
		}
	}
}
