package rollout

import (
	"strings"
	"testing"
	"time"

	"drover"
)

// t0 is the tests' clock origin; at(m) is m minutes after it.
var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// dep is a history record: kind, release, outcome, start and end minute,
// hosts it listed.
func dep(id, kind, rel, outcome string, start, finish int, hosts ...string) drover.DeployRecord {
	d := drover.DeployRecord{ID: id, Kind: kind, Release: rel, Outcome: outcome, Started: at(start)}
	if rel != "" {
		d.Version, _, _ = strings.Cut(rel, "-")
	}
	if outcome != "" {
		d.Finished = at(finish)
	}
	for _, h := range hosts {
		d.Hosts = append(d.Hosts, drover.DeployHost{Name: h})
	}
	return d
}

const (
	a1 = "1.0.0-aaaaaaaaaaaa"
	a2 = "1.0.0-bbbbbbbbbbbb" // the same version, other content
	b  = "2.0.0-cccccccccccc"
)

func TestPromotable(t *testing.T) {
	staging := []string{"s1", "s2"}
	ok, dk, rb, rc := drover.OutcomeSucceeded, drover.KindDeploy, drover.KindRollback, drover.KindRecover
	tests := []struct {
		name    string
		history []drover.DeployRecord
		release string
		soak    time.Duration
		now     int
		missing string
		// want are substrings of the message.
		want      []string
		remaining time.Duration
		running   string
	}{
		{name: "no history", release: a1, soak: 30 * time.Minute, now: 100, missing: MissingNever,
			want: []string{"release " + a1 + " never succeeded in staging"}},
		{name: "soaked", history: []drover.DeployRecord{dep("d1", dk, a1, ok, 0, 5, "s1", "s2")},
			release: a1, soak: 30 * time.Minute, now: 100, running: a1},
		{name: "soak exactly over at the boundary", history: []drover.DeployRecord{dep("d1", dk, a1, ok, 0, 5, "s1", "s2")},
			release: a1, soak: 30 * time.Minute, now: 35, running: a1},
		{name: "still soaking", history: []drover.DeployRecord{dep("d1", dk, a1, ok, 0, 5, "s1", "s2")},
			release: a1, soak: 30 * time.Minute, now: 17, missing: MissingSoak, remaining: 18 * time.Minute, running: a1,
			want: []string{"for 12m of its 30m soak: 18m to go (until 12:35:00 UTC)"}},
		{name: "no soak asked: success is enough", history: []drover.DeployRecord{dep("d1", dk, a1, ok, 0, 5, "s1", "s2")},
			release: a1, now: 5, running: a1},
		{name: "same version, other content", history: []drover.DeployRecord{dep("d1", dk, a1, ok, 0, 5, "s1", "s2")},
			release: a2, soak: time.Minute, now: 100, missing: MissingNever, running: a1,
			want: []string{"never succeeded in staging, which runs " + a1, "the same version 1.0.0, other content"}},
		{name: "a later failed deploy resets", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, drover.OutcomeRolledBack, 40, 42, "s1", "s2"),
		}, release: a1, soak: 30 * time.Minute, now: 100, missing: MissingReset,
			want: []string{"succeeded in staging at 2026-12-03T12:05:00Z", "deploy d2 of " + b + " (halted and rolled back, 2026-12-03T12:42:00Z) since reset its soak"}},
		{name: "a deploy halted before any host switched resets", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, drover.OutcomeHalted, 40, 42, "s1", "s2"),
		}, release: a1, now: 100, missing: MissingReset, want: []string{"(halted before any host switched, "}},
		{name: "a partial deploy resets", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, drover.OutcomePartial, 40, 42, "s1", "s2"),
		}, release: a1, now: 100, missing: MissingReset},
		{name: "a rollback resets", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", rb, "", ok, 40, 42, "s1", "s2"),
		}, release: a1, now: 100, missing: MissingReset, want: []string{"rollback d2 (succeeded, 2026-12-03T12:42:00Z)"}},
		{name: "a recovery resets", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, drover.OutcomeInterrupted, 40, 42, "s1"),
			dep("d3", rc, "", ok, 43, 44, "s1"),
		}, release: a1, now: 100, missing: MissingReset, want: []string{"deploy d2 of " + b + " (was interrupted, "}},
		{name: "a deploy still running resets", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, "", 40, 0, "s1", "s2"),
		}, release: a1, now: 100, missing: MissingReset, want: []string{"has not finished"}},
		{name: "deployed again after the reset: the soak restarts", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, drover.OutcomeRolledBack, 40, 42, "s1", "s2"),
			dep("d3", dk, a1, ok, 50, 51, "s1", "s2"),
		}, release: a1, soak: 30 * time.Minute, now: 60, missing: MissingSoak, remaining: 21 * time.Minute, running: a1},
		{name: "deployed again after the reset, soaked", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, drover.OutcomeRolledBack, 40, 42, "s1", "s2"),
			dep("d3", dk, a1, ok, 50, 51, "s1", "s2"),
		}, release: a1, soak: 30 * time.Minute, now: 81, running: a1},
		{name: "a forced redeploy of the same release keeps the soak", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, a1, drover.OutcomeNothing, 20, 21, "s1", "s2"),
		}, release: a1, soak: 30 * time.Minute, now: 35, running: a1},
		{name: "limited to half of staging", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1"),
		}, release: a1, now: 100, missing: MissingHosts,
			want: []string{"does not run on every host of staging", a1 + " on s1", "no successful deploy on s2"}},
		{name: "soak runs from the last host covered", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1"),
			dep("d2", dk, a1, ok, 20, 25, "s1", "s2"),
		}, release: a1, soak: 30 * time.Minute, now: 40, missing: MissingSoak, remaining: 15 * time.Minute, running: a1},
		{name: "staging moved on to another release", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, ok, 40, 45, "s2"),
		}, release: a1, now: 100, missing: MissingHosts, want: []string{a1 + " on s1", b + " on s2"}},
		{name: "the newer release soaks", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, ok, 40, 45, "s1", "s2"),
		}, release: b, soak: 10 * time.Minute, now: 56, running: b},
		{name: "history in any order", history: []drover.DeployRecord{
			dep("d3", dk, a1, ok, 50, 51, "s1", "s2"),
			dep("d2", dk, b, drover.OutcomeRolledBack, 40, 42, "s1", "s2"),
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
		}, release: a1, soak: 30 * time.Minute, now: 60, missing: MissingSoak, remaining: 21 * time.Minute, running: a1},
		{name: "promote: what staging runs", history: []drover.DeployRecord{dep("d1", dk, a1, ok, 0, 5, "s1", "s2")},
			soak: 30 * time.Minute, now: 35, running: a1},
		{name: "promote: staging runs no one release", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", dk, b, ok, 40, 45, "s2"),
		}, now: 100, missing: MissingNever, want: []string{"staging runs no one release", a1 + " on s1", b + " on s2"}},
		{name: "promote: staging reset", history: []drover.DeployRecord{
			dep("d1", dk, a1, ok, 0, 5, "s1", "s2"),
			dep("d2", rb, "", drover.OutcomeRolledBack, 40, 42, "s1", "s2"),
		}, now: 100, missing: MissingNever, want: []string{"nothing steady on s1, s2 since rollback d2"}},
		{name: "clock behind the record: still soaking", history: []drover.DeployRecord{dep("d1", dk, a1, ok, 0, 5, "s1", "s2")},
			release: a1, soak: 30 * time.Minute, now: 0, missing: MissingSoak, remaining: 35 * time.Minute, running: a1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := drover.Requirement{Env: "staging", Soak: tc.soak, Hosts: staging}
			p := Promotable(req, tc.history, tc.release, at(tc.now))
			if p.Missing != tc.missing {
				t.Fatalf("missing %q, want %q: %s (hint: %s)", p.Missing, tc.missing, p.Message, p.Hint)
			}
			if p.OK() != (tc.missing == MissingNone) || (p.OK() && (p.Message != "" || p.Hint != "")) {
				t.Errorf("OK %v with message %q hint %q", p.OK(), p.Message, p.Hint)
			}
			if !p.OK() && (p.Message == "" || p.Hint == "") {
				t.Errorf("refusal without words: %+v", p)
			}
			for _, w := range tc.want {
				if !strings.Contains(p.Message, w) {
					t.Errorf("message lacks %q:\n%s", w, p.Message)
				}
			}
			if p.Remaining != tc.remaining {
				t.Errorf("remaining %s, want %s", p.Remaining, tc.remaining)
			}
			if p.Running != tc.running {
				t.Errorf("running %q, want %q", p.Running, tc.running)
			}
			if tc.release == "" && p.OK() && p.Release != tc.running {
				t.Errorf("promote judged %q, want what staging runs, %q", p.Release, tc.running)
			}
		})
	}
}

// TestPromotableHostsFromHistory: without the environment's hosts, every
// host its history lists must run the release.
func TestPromotableHostsFromHistory(t *testing.T) {
	h := []drover.DeployRecord{
		dep("d1", drover.KindDeploy, a1, drover.OutcomeSucceeded, 0, 5, "s1", "s2"),
		dep("d2", drover.KindDeploy, b, drover.OutcomeSucceeded, 10, 15, "s1"),
	}
	if p := Promotable(drover.Requirement{Env: "staging"}, h, b, at(60)); p.Missing != MissingHosts {
		t.Errorf("b on s1 only: %+v", p)
	}
	if p := Promotable(drover.Requirement{Env: "staging"}, h[:1], a1, at(60)); !p.OK() {
		t.Errorf("a1 on both: %+v", p)
	}
}

func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		18 * time.Minute: "18m", 90 * time.Minute: "1h30m", time.Hour: "1h", 90 * time.Second: "1m30s",
		45*time.Second + 400*time.Millisecond: "45s", 0: "0s", 2*time.Hour + 3*time.Second: "2h0m3s",
	} {
		if got := Span(d); got != want {
			t.Errorf("Span(%s) = %q, want %q", d, got, want)
		}
	}
}
