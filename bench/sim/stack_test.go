package main

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"drover"
	"drover/transport/sim"
)

// stagingStacks deploys to hosts simulated hosts whose stage takes
// stage, and in the middle of it, with every host staging, collects the
// garbage once and returns the stack bytes that collection scanned per
// goroutine (the runtime starts new goroutines at that average, rounded
// up to a power of two with 928 bytes of guard) and the stack memory in
// use per goroutine.
func stagingStacks(t testing.TB, hosts int, stage time.Duration) (scanned, inuse float64) {
	ops := DefaultOps()
	for k, op := range ops {
		op.Latency /= 100
		ops[k] = op
	}
	ops[sim.OpStage] = sim.Op{Latency: stage}
	done := make(chan struct{})
	watch := func() func() {
		go func() {
			defer close(done)
			deadline := time.Now().Add(stage * 5)
			for runtime.NumGoroutine() < hosts && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(stage / 4)
			runtime.GC()
			s := []metrics.Sample{{Name: "/gc/scan/stack:bytes"}}
			metrics.Read(s)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			n := float64(runtime.NumGoroutine())
			scanned, inuse = float64(s[0].Value.Uint64())/n, float64(ms.StackInuse)/n
		}()
		return func() { <-done }
	}
	r, err := Run(context.Background(), Options{Hosts: hosts, CanaryPct: 1, BatchPct: 50, Store: "sqlite", Seed: 1, Scale: 1, Events: "json", Dir: t.TempDir(), Ops: ops, Watch: watch})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != drover.ExitOK {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Summary)
	}
	return scanned, inuse
}

// TestStagingStacks: with every host staging at once (stage_parallelism
// = the fleet), each step goroutine waits on its host with under ~3 KB
// of frames, so the runtime starts goroutines with 4 KB stacks and they
// stay there. Over ~3.1 KB every one needs 8 KB: 80 MB at 10,000 hosts,
// which the collector's goal counts again (bench/README.md). The frames
// were 6.5 KB: the action, the host and the stage request copied by value
// through every call, and the cold paths' temporaries in the frames of
// retrying, step and the simulator's Stage and op.
//
// Its bounds hold for a build without the race detector, whose
// instrumentation makes every frame larger: make test runs it that way
// (Makefile, test-stacks) besides the race-built run of the package,
// which skips it rather than spend 15–100 s of CPU checking nothing.
func TestStagingStacks(t *testing.T) {
	if raceDetector {
		t.Skip("frame sizes are measured without -race: make test runs this test in a build of its own (go test -run TestStagingStacks ./bench/sim)")
	}
	scanned, inuse := stagingStacks(t, 2000, time.Second)
	t.Logf("staging: %.0f B of stack scanned, %.0f B in use per goroutine", scanned, inuse)
	if scanned > 3000 {
		t.Errorf("a staging goroutine waits with %.0f B of frames, want ≤ 3,000 (new goroutines start at 8 KB past ~3,100)", scanned)
	}
	if inuse > 5000 {
		t.Errorf("%.0f B of stack per goroutine while staging, want ≤ 5,000 (4 KB stacks)", inuse)
	}
}
