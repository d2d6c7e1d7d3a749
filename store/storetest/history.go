package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"drover"
)

// RunHistoryReaderContract runs the drover.HistoryReader contract against
// fresh stores made by open, one per subtest. A store that does not
// implement HistoryReader fails: call this only for those that claim to.
func RunHistoryReaderContract(t *testing.T, open func(t *testing.T) drover.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, drover.Store, drover.HistoryReader)
	}{
		{"Deploys", testDeploysQuery},
		{"DeploysInvalidKey", testDeploysInvalidKey},
		{"Steps", testStepsQuery},
		{"LockHolder", testLockHolder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			hr, ok := s.(drover.HistoryReader)
			if !ok {
				t.Fatalf("%T does not implement drover.HistoryReader", s)
			}
			tt.fn(t, s, hr)
		})
	}
}

// seedHistory writes four deploys of "hello" an hour apart (d-0 .. d-3),
// one of "hello/staging", with hosts: d-0 h01 h02, d-1 h02, d-2 h01 h03,
// d-3 h03 (skipped); each non-skipped host has a start and a done step,
// and h03 failed its check in d-2.
func seedHistory(t *testing.T, s drover.Store) {
	t.Helper()
	ctx := context.Background()
	hosts := [][]string{{"h01", "h02"}, {"h02"}, {"h01", "h03"}, {"h03"}}
	for n, hs := range hosts {
		d := Record(fmt.Sprintf("d-%d", n), "hello", time.Duration(n)*time.Hour)
		d.Hosts = nil
		for _, h := range hs {
			d.Hosts = append(d.Hosts, drover.DeployHost{Name: h, Group: "default", Skipped: n == 3})
		}
		if err := s.Begin(ctx, d); err != nil {
			t.Fatal(err)
		}
		if n == 3 {
			continue
		}
		for i, h := range hs {
			at := d.Started.Add(time.Duration(i+1) * time.Minute)
			for _, e := range []drover.JournalEntry{
				{At: at, Host: h, Step: "switch", Phase: drover.PhaseStart},
				{At: at.Add(time.Second), Host: h, Step: "switch", Phase: drover.PhaseDone, Outcome: "ok", Elapsed: time.Second},
				{At: at.Add(2 * time.Second), Host: h, Step: "check", Phase: drover.PhaseStart},
				{At: at.Add(5 * time.Second), Host: h, Step: "check", Phase: drover.PhaseDone, Outcome: "ok", Elapsed: 3 * time.Second},
			} {
				if n == 2 && h == "h03" && e.Step == "check" && e.Phase == drover.PhaseDone {
					e.Outcome, e.Reason, e.Output = "failed", "health: status 500", "HTTP 500: unhealthy"
				}
				if err := s.Append(ctx, d.ID, e); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Finish(ctx, d.ID, drover.FinishRecord{Finished: d.Started.Add(30 * time.Minute), Outcome: drover.OutcomeSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	other := Record("d-s", "hello/staging", 10*time.Hour)
	if err := s.Begin(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "d-s", drover.JournalEntry{At: other.Started, Host: "h01", Step: "switch", Phase: drover.PhaseStart}); err != nil {
		t.Fatal(err)
	}
}

func testDeploysQuery(t *testing.T, s drover.Store, hr drover.HistoryReader) {
	ctx := context.Background()
	if got, err := hr.Deploys(ctx, drover.DeployQuery{Key: "hello"}); err != nil || len(got) != 0 {
		t.Fatalf("Deploys of an empty store: %v, %v", ids(got), err)
	}
	seedHistory(t, s)
	for _, tt := range []struct {
		name string
		q    drover.DeployQuery
		want []string
	}{
		{"all", drover.DeployQuery{Key: "hello"}, []string{"d-3", "d-2", "d-1", "d-0"}},
		{"limit", drover.DeployQuery{Key: "hello", Limit: 2}, []string{"d-3", "d-2"}},
		{"host", drover.DeployQuery{Key: "hello", Host: "h01"}, []string{"d-2", "d-0"}},
		{"host skipped included", drover.DeployQuery{Key: "hello", Host: "h03"}, []string{"d-3", "d-2"}},
		{"host unknown", drover.DeployQuery{Key: "hello", Host: "h99"}, []string{}},
		{"since", drover.DeployQuery{Key: "hello", Since: base.Add(time.Hour)}, []string{"d-3", "d-2", "d-1"}},
		{"since and host and limit", drover.DeployQuery{Key: "hello", Host: "h02", Since: base.Add(30 * time.Minute), Limit: 5}, []string{"d-1"}},
		{"other key", drover.DeployQuery{Key: "hello/staging"}, []string{"d-s"}},
	} {
		got, err := hr.Deploys(ctx, tt.q)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("%s: Deploys = %v, want %v", tt.name, ids(got), tt.want)
		}
	}
	// Records come back whole: hosts, outcome, times.
	got, _ := hr.Deploys(ctx, drover.DeployQuery{Key: "hello", Host: "h01", Limit: 1})
	want, _ := s.Deploy(ctx, "d-2")
	if len(got) != 1 || !sameRecord(got[0], want) || want.Outcome != drover.OutcomeSucceeded || len(want.Hosts) != 2 {
		t.Errorf("Deploys record %+v, want %+v", got, want)
	}
}

func testDeploysInvalidKey(t *testing.T, s drover.Store, hr drover.HistoryReader) {
	ctx := context.Background()
	for _, key := range []string{"", "../x", "a//b"} {
		if _, err := hr.Deploys(ctx, drover.DeployQuery{Key: key}); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Deploys(%q): %v, want EINVALID", key, err)
		}
		if _, err := hr.Steps(ctx, drover.StepQuery{Key: key}); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("Steps(%q): %v, want EINVALID", key, err)
		}
		if _, err := hr.LockHolder(ctx, key); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("LockHolder(%q): %v, want EINVALID", key, err)
		}
	}
}

func stepIDs(steps []drover.StepRecord) []string {
	out := []string{}
	for _, s := range steps {
		out = append(out, fmt.Sprintf("%s/%s/%s/%s", s.DeployID, s.Host, s.Step, s.Phase))
	}
	return out
}

func testStepsQuery(t *testing.T, s drover.Store, hr drover.HistoryReader) {
	ctx := context.Background()
	seedHistory(t, s)
	all, err := hr.Steps(ctx, drover.StepQuery{Key: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5*4 {
		t.Fatalf("Steps(all) = %d entries, want 20: %v", len(all), stepIDs(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].At.Before(all[i-1].At) {
			t.Fatalf("Steps not in journal order at %d: %v", i, stepIDs(all))
		}
	}
	for _, tt := range []struct {
		name string
		q    drover.StepQuery
		want []string
	}{
		{"deploy", drover.StepQuery{Key: "hello", DeployID: "d-1"}, []string{"d-1/h02/switch/start", "d-1/h02/switch/done", "d-1/h02/check/start", "d-1/h02/check/done"}},
		{"host and step", drover.StepQuery{Key: "hello", Host: "h01", Step: "switch"}, []string{"d-0/h01/switch/start", "d-0/h01/switch/done", "d-2/h01/switch/start", "d-2/h01/switch/done"}},
		{"failed", drover.StepQuery{Key: "hello", Failed: true}, []string{"d-2/h03/check/done"}},
		{"limit keeps the newest, oldest first", drover.StepQuery{Key: "hello", Host: "h03", Limit: 2}, []string{"d-2/h03/check/start", "d-2/h03/check/done"}},
		{"since", drover.StepQuery{Key: "hello", Since: base.Add(2*time.Hour + 2*time.Minute + 2*time.Second)}, []string{"d-2/h03/check/start", "d-2/h03/check/done"}},
		{"other key", drover.StepQuery{Key: "hello/staging"}, []string{"d-s/h01/switch/start"}},
		{"nothing", drover.StepQuery{Key: "hello", Host: "h99"}, []string{}},
	} {
		got, err := hr.Steps(ctx, tt.q)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !reflect.DeepEqual(stepIDs(got), tt.want) {
			t.Errorf("%s: Steps = %v, want %v", tt.name, stepIDs(got), tt.want)
		}
	}
	failed, _ := hr.Steps(ctx, drover.StepQuery{Key: "hello", Failed: true})
	if len(failed) == 1 {
		f := failed[0]
		if f.Reason != "health: status 500" || f.Output != "HTTP 500: unhealthy" || f.Elapsed != 3*time.Second || !f.At.Equal(base.Add(2*time.Hour+2*time.Minute+5*time.Second)) {
			t.Errorf("failed step lost fields: %+v", f)
		}
	}
}

func testLockHolder(t *testing.T, s drover.Store, hr drover.HistoryReader) {
	ctx := context.Background()
	if h, err := hr.LockHolder(ctx, "hello"); err != nil || h != nil {
		t.Fatalf("LockHolder of a lock never taken: %+v, %v", h, err)
	}
	owner := drover.LockOwner{PID: 4242, Machine: "m", User: "bob", DeployID: "d-9", Since: base}
	l, err := s.Lock(ctx, "hello", owner)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hr.LockHolder(ctx, "hello")
	if err != nil || h == nil || !sameOwner(*h, owner) {
		t.Errorf("LockHolder while held: %+v, %v; want %+v", h, err, owner)
	}
	if h, err := hr.LockHolder(ctx, "hello/staging"); err != nil || h != nil {
		t.Errorf("LockHolder of another key: %+v, %v", h, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if h, err := hr.LockHolder(ctx, "hello"); err != nil || h != nil {
		t.Errorf("LockHolder after a clean release: %+v, %v", h, err)
	}
}
