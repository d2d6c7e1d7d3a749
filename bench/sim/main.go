// Command sim runs real drover deploys (runner.Deploy, the rollout core, a
// real store) against fleets of simulated hosts (transport/sim) in one
// process, and prints one table: wall time, the ideal schedule, the
// overhead above it, CPU time and peak memory.
//
//	go run ./bench/sim                         # 1,000 and 10,000 hosts, sqlite
//	go run ./bench/sim -hosts 1000 -store sqlite,file
//	go run ./bench/sim -hosts 10000 -cpuprofile cpu.out -memprofile mem.out
//
// Each fleet size and store runs in a child process of its own, so the peak
// RSS of one run is not the high-water mark of another. See bench/README.md
// for the model and the figures.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	hosts := flag.String("hosts", "1000,10000", "fleet sizes, comma-separated")
	stores := flag.String("store", "sqlite", "stores, comma-separated: sqlite, file")
	canary := flag.Int("canary", 1, "canary group, percent of the fleet (one batch)")
	batch := flag.Int("batch", 10, "batch of the default group, percent")
	seed := flag.Uint64("seed", 1, "seed of the simulated latencies")
	scale := flag.Float64("scale", 1, "multiply every simulated latency slept (0.1: ten times faster)")
	events := flag.String("events", "json", "event sink: json (encoded as --output json does, discarded) or none")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the deploy (one size and store only)")
	memProfile := flag.String("memprofile", "", "write an allocation profile of the deploy (one size and store only)")
	tmp := flag.String("tmpdir", "", "directory for the release and the state directory (default: $TMPDIR); the store's fsyncs go to its disk")
	runs := flag.Int("runs", 1, "deploys per fleet size and store; the table shows the fastest and the median overhead")
	verbose := flag.Bool("v", false, "print each batch's time against its slowest host")
	isChild := flag.Bool("child", false, "run one deploy and print its result as JSON (internal)")
	flag.Parse()

	if *isChild {
		n, _ := strconv.Atoi(*hosts)
		o := Options{Hosts: n, CanaryPct: *canary, BatchPct: *batch, Store: *stores, Seed: *seed, Scale: *scale, Events: *events}
		if *verbose {
			o.Breakdown = os.Stderr
		}
		if err := runChild(o, *tmp, *cpuProfile, *memProfile); err != nil {
			fmt.Fprintln(os.Stderr, "sim:", err)
			os.Exit(1)
		}
		return
	}

	type row struct {
		best    Result
		overs   []float64
		peakRSS int64
	}
	var rows []row
	for _, h := range strings.Split(*hosts, ",") {
		for _, st := range strings.Split(*stores, ",") {
			var rw row
			for range max(1, *runs) {
				r, err := child(h, st, []string{"-canary", fmt.Sprint(*canary), "-batch", fmt.Sprint(*batch),
					"-seed", fmt.Sprint(*seed), "-scale", fmt.Sprint(*scale), "-events", *events,
					"-cpuprofile", *cpuProfile, "-memprofile", *memProfile, fmt.Sprintf("-v=%v", *verbose), "-tmpdir", *tmp})
				if err != nil {
					fmt.Fprintf(os.Stderr, "sim: %s hosts, %s store: %v\n", h, st, err)
					os.Exit(1)
				}
				fmt.Fprintf(os.Stderr, "sim: %d hosts, %s store: wall %.2fs, ideal %.2fs, replay %.2fs, overhead %.1f%%, CPU %.2fs, %.2fM allocs (%d MB), peak RSS %d MB (Go: %d MB, heap in use ≤ %d MB, stacks ≤ %d MB, ≤ %d goroutines), %d journal writes taking %.2fs\n",
					r.Hosts, r.Store, r.Wall.Seconds(), r.Ideal.Seconds(), r.Replay.Seconds(), 100*r.Overhead(), r.CPU.Seconds(), float64(r.Allocs)/1e6, r.AllocBytes>>20, r.PeakRSS>>20, r.GoSys>>20, r.HeapInuse>>20, r.StackInuse>>20, r.Goroutines, r.Writes, r.StoreTime.Seconds())
				if len(rw.overs) == 0 || r.Overhead() < rw.best.Overhead() {
					rw.best = r
				}
				rw.overs = append(rw.overs, r.Overhead())
				rw.peakRSS = max(rw.peakRSS, r.PeakRSS)
			}
			rows = append(rows, rw)
		}
	}
	fmt.Printf("drover simulated deploys (%d%% canary in one batch, then %d%% batches; Go %s, %d CPUs, seed %d, scale %g, events %s, fastest of %d runs)\n",
		*canary, *batch, runtime.Version(), runtime.NumCPU(), *seed, *scale, *events, max(1, *runs))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "hosts\tstore\tbatches\twall\tideal\toverhead\tmedian\treplay floor\tCPU\tpeak RSS\tjournal entries/writes\tevents\texit\t")
	for _, rw := range rows {
		r := rw.best
		sort.Float64s(rw.overs)
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.2fs\t%.2fs\t%.1f%%\t%.1f%%\t%.1f%%\t%.2fs\t%d MB\t%d/%d\t%d\t%d\t\n",
			r.Hosts, r.Store, r.Batches, r.Wall.Seconds(), r.Ideal.Seconds(), 100*r.Overhead(), 100*rw.overs[len(rw.overs)/2], 100*float64(r.Replay-r.Ideal)/float64(r.Ideal),
			r.CPU.Seconds(), rw.peakRSS>>20, r.Steps, r.Writes, r.Events, r.ExitCode)
	}
	tw.Flush()
}

// child runs one deploy in a child process and returns its result.
func child(hosts, store string, args []string) (Result, error) {
	cmd := exec.Command(os.Args[0], append([]string{"-child", "-hosts", hosts, "-store", store}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	fmt.Fprintf(os.Stderr, "sim: %s hosts, %s store ...\n", hosts, store)
	var r Result
	if err := cmd.Run(); err != nil {
		return r, err
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("bad result %q: %v", out.String(), err)
	}
	return r, nil
}

func runChild(o Options, tmp, cpuProfile, memProfile string) error {
	dir, err := os.MkdirTemp(tmp, "drover-sim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.Dir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if cpuProfile != "" {
		f, err := os.Create(profileName(cpuProfile, o))
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if memProfile != "" {
		runtime.MemProfileRate = 64 << 10
		peak := profileName(strings.TrimSuffix(memProfile, ".out")+"-peak.out", o)
		o.Watch = func() func() { return watchPeakHeap(peak) }
	}
	r, err := Run(ctx, o)
	if err != nil {
		return err
	}
	if memProfile != "" {
		f, err := os.Create(profileName(memProfile, o))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// profileName puts the size and store into a profile's file name.
func profileName(p string, o Options) string {
	ext := ""
	if i := strings.LastIndex(p, "."); i > 0 {
		p, ext = p[:i], p[i:]
	}
	return fmt.Sprintf("%s-%d-%s%s", p, o.Hosts, o.Store, ext)
}

// watchPeakHeap writes a heap profile to path each time the heap in use
// reaches a new high (by a tenth), so the profile shows what the peak held.
func watchPeakHeap(path string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var high uint64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > high+high/10 {
				high = ms.HeapInuse
				if f, err := os.Create(path); err == nil {
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
