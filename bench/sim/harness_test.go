package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"drover"
	"drover/transport/sim"
)

// TestSimulatedDeploy runs the harness on a small fleet at 1% of real
// time: every host ends on the release, every step is journaled, and the
// ideal schedule is what the simulated times add up to.
func TestSimulatedDeploy(t *testing.T) {
	for _, store := range []string{"sqlite", "file"} {
		t.Run(store, func(t *testing.T) {
			r, err := Run(context.Background(), Options{Hosts: 50, CanaryPct: 2, BatchPct: 20, Store: store, Seed: 3, Scale: 0.01, Events: "json", Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if r.ExitCode != drover.ExitOK {
				t.Fatalf("exit %d: %s", r.ExitCode, r.Summary)
			}
			// canary: 1 host; default: 49 hosts in batches of 10.
			if r.Batches != 1+5 {
				t.Errorf("%d batches, want 6", r.Batches)
			}
			// stage + 5 promote steps, start and done, per host.
			if r.Steps != 50*6*2 {
				t.Errorf("%d journal entries, want %d", r.Steps, 50*6*2)
			}
			if r.Writes >= int64(r.Steps) {
				t.Errorf("%d journal writes for %d entries: nothing was batched", r.Writes, r.Steps)
			}
			// Each batch's path is ~510ms ±20% simulated, at 1%: the ideal
			// is between 6×4ms and 6×7ms plus stage and survey.
			if r.Ideal < 25*time.Millisecond || r.Ideal > 60*time.Millisecond {
				t.Errorf("ideal %s out of range", r.Ideal)
			}
			if r.Wall < r.Ideal {
				t.Errorf("wall %s below the ideal %s", r.Wall, r.Ideal)
			}
		})
	}
}

// TestSimulatedFailuresRollBack: with the canary's checks failing, the
// deploy halts and every host the deploy switched is back where it was.
func TestSimulatedFailuresRollBack(t *testing.T) {
	ops := DefaultOps()
	ops["check:version"] = sim.Op{Latency: 100 * time.Millisecond, FailRate: 1}
	r, err := Run(context.Background(), Options{Hosts: 20, CanaryPct: 10, BatchPct: 50, Store: "sqlite", Seed: 1, Scale: 0.01, Events: "none", Dir: t.TempDir(), Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != drover.ExitRolledBack {
		t.Fatalf("exit %d (%s), want %d", r.ExitCode, r.Summary, drover.ExitRolledBack)
	}
}

func BenchmarkSimulatedDeploy(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			var last Result
			for b.Loop() {
				r, err := Run(context.Background(), Options{Hosts: n, CanaryPct: 1, BatchPct: 10, Store: "sqlite", Seed: 1, Scale: 1, Events: "json", Dir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				if r.ExitCode != 0 {
					b.Fatalf("exit %d: %s", r.ExitCode, r.Summary)
				}
				last = r
			}
			b.ReportMetric(100*last.Overhead(), "%overhead")
			b.ReportMetric(last.Ideal.Seconds(), "ideal-s")
			b.ReportMetric(last.CPU.Seconds(), "cpu-s")
			b.ReportMetric(float64(last.PeakRSS>>20), "peakRSS-MB")
			b.ReportMetric(float64(last.StackInuse>>20), "stacks-MB")
			b.ReportMetric(float64(last.HeapInuse>>20), "heap-MB")
		})
	}
}
