// Command fanout measures relay distribution (distribution.mode: relay)
// against a direct push: a release carrying a large incompressible file
// (100 MB by default) deployed by the drover binary to a fleet of real
// sshd hosts on loopback (internal/sshfleet), once with the bundle pushed
// from this machine to every host and once relayed host to host. It
// prints the stage phase (where the bundle travels: receive, verify,
// unpack, render, validate) and the whole deploy for both, and the ratio.
//
// Before that it measures what one host's share of the work costs here —
// SSH transfer, HTTP relay transfer, sha256, unpack — so the result can be
// explained: on one machine every "host" shares the same CPUs and disk,
// so a relay saves no bandwidth, only the work it does not repeat.
//
// Run it through bench/fanout.sh, which builds drover first. It is a
// benchmark, not a test: it prints figures and fails only when a deploy
// does.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"drover"
	"drover/distribute"
	"drover/distribute/relay"
	"drover/internal/sshfleet"
	"drover/release"
)

type options struct {
	drover         string
	hosts, mb      int
	seeds, fanout  int
	rounds         int
	stagePar       int
	keep, noDeploy bool
	netns, subnet  string
}

func main() {
	var o options
	flag.StringVar(&o.drover, "drover", "", "the drover binary to measure (required)")
	flag.IntVar(&o.hosts, "hosts", 50, "hosts in the fleet")
	flag.IntVar(&o.mb, "mb", 100, "size of the release's incompressible payload, MB")
	flag.IntVar(&o.seeds, "seeds", 4, "relay: hosts fed from this machine")
	flag.IntVar(&o.fanout, "fanout", 4, "relay: hosts each host serves")
	flag.IntVar(&o.rounds, "rounds", 1, "direct/relay pairs to run (alternating)")
	flag.IntVar(&o.stagePar, "stage-parallelism", 0, "stage_parallelism of both deploys (0: drover's default, 16)")
	flag.BoolVar(&o.keep, "keep", false, "keep the fleet directory")
	flag.BoolVar(&o.noDeploy, "components-only", false, "only measure the per-host components")
	flag.StringVar(&o.netns, "netns", "", "hosts live in network namespaces PREFIX1..PREFIXn made beforehand (bench/fanout-netns.sh), host i at SUBNET.(i+1)")
	flag.StringVar(&o.subnet, "subnet", "10.77.0", "with -netns: the first three octets of the hosts' addresses")
	flag.Parse()
	if o.drover == "" {
		fmt.Fprintln(os.Stderr, "fanout: -drover PATH is required (bench/fanout.sh builds it)")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "drover-bench-fanout-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("fleet in", dir)
	}
	hosts := o.hosts
	if o.noDeploy {
		hosts = 1
	}
	batch := max(1, hosts/2)
	groups := fmt.Sprintf("groups:\n  - name: all\n    hosts: [\"h*\"]\n    batch: %d\n    failure_limit: 0\n", batch)
	fo := sshfleet.Options{Dir: filepath.Join(dir, "fleet"), Hosts: hosts, Groups: groups}
	where := "on loopback"
	if o.netns != "" {
		// Each sshd runs inside its host's namespace and listens on the
		// address the script gave it there; the fleet's service and
		// checks stay on that namespace's loopback.
		for i := range hosts {
			fo.IPs = append(fo.IPs, fmt.Sprintf("%s.%d", o.subnet, i+2))
			fo.Exec = append(fo.Exec, []string{"ip", "netns", "exec", fmt.Sprintf("%s%d", o.netns, i+1)})
		}
		where = "in network namespaces " + o.netns + "1.." + o.netns + strconv.Itoa(hosts)
	}
	f, err := sshfleet.New(fo)
	if err != nil {
		return err
	}
	defer f.Stop()
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s/%s; fleet: %d sshd hosts %s; payload %d MB (random, incompressible); load %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, o.hosts, where, o.mb, loadavg())

	// Bundles are built up front; building is not distribution.
	version := 0
	next := func() (string, error) {
		version++
		v := fmt.Sprintf("%d.0.0", version)
		src, err := f.WriteRelease(v, true)
		if err != nil {
			return "", err
		}
		if err := writeRandom(filepath.Join(src, "data", "payload.bin"), o.mb<<20); err != nil {
			return "", err
		}
		bundle := filepath.Join(dir, "bundle-"+v+".tar.gz")
		if out, err := exec.Command(o.drover, "release", "build", src, "--version", v, "-o", bundle).CombinedOutput(); err != nil {
			return "", fmt.Errorf("drover release build: %v\n%s", err, out)
		}
		os.RemoveAll(src)
		return bundle, nil
	}
	first, err := next()
	if err != nil {
		return err
	}
	if err := components(f, dir, first); err != nil {
		return err
	}
	if o.noDeploy {
		return nil
	}

	base, err := os.ReadFile(f.Config)
	if err != nil {
		return err
	}
	warm := filepath.Join(dir, "warm-up.yaml")
	if err := os.WriteFile(warm, base, 0o644); err != nil {
		return err
	}
	if o.stagePar > 0 {
		base = append(base, fmt.Sprintf("stage_parallelism: %d\n", o.stagePar)...)
	}
	direct := filepath.Join(dir, "direct.yaml")
	relayed := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(direct, base, 0o644); err != nil {
		return err
	}
	extra := fmt.Sprintf("distribution: {mode: relay, seeds: %d, fanout: %d}\n", o.seeds, o.fanout)
	if err := os.WriteFile(relayed, append(base, extra...), 0o644); err != nil {
		return err
	}
	// The first deploy installs drover and the service on every host;
	// it is not measured (a warm-up, direct, at the default
	// stage_parallelism: drover's own binary to every host at once over
	// a slow link would outlast the step timeout).
	if _, err := deploy(o.drover, warm, first); err != nil {
		return err
	}
	var d, r []timing
	for range o.rounds {
		for _, mode := range []string{"direct", "relay"} {
			bundle, err := next()
			if err != nil {
				return err
			}
			cfg := direct
			if mode == "relay" {
				cfg = relayed
			}
			t, err := deploy(o.drover, cfg, bundle)
			if err != nil {
				return err
			}
			fmt.Printf("  %-6s stage %6.1fs   deploy %6.1fs   CPU busy %5.0f%%  iowait %4.0f%%  load %s\n", mode, t.stage.Seconds(), t.total.Seconds(), t.busy*100, t.iowait*100, loadavg())
			if mode == "direct" {
				d = append(d, t)
			} else {
				r = append(r, t)
			}
			// Old releases are pruned by drover (keep_releases); the
			// relay cache holds one bundle per host.
		}
	}
	md, mr := best(d), best(r)
	model(o.hosts, o.seeds, o.fanout)
	fmt.Printf("\n%d MB to %d hosts, best of %d: direct push %.1fs, relay (seeds %d, fanout %d) %.1fs: relay is %.2fx direct (stage phase); whole deploy %.1fs vs %.1fs (%.2fx)\n",
		o.mb, o.hosts, o.rounds, md.stage.Seconds(), o.seeds, o.fanout, mr.stage.Seconds(), md.stage.Seconds()/mr.stage.Seconds(),
		md.total.Seconds(), mr.total.Seconds(), md.total.Seconds()/mr.total.Seconds())
	return nil
}

// model prints what the tree would give where every host has a network
// link of its own, a bundle transfer over one link takes T, and a sender
// shares its link among the hosts fetching from it at once: a direct push
// takes hosts·T (this machine's link carries every copy); the relay takes,
// level by level, as many T as the busiest sender of the level serves.
// Store and forward, unpacking not counted. Cut-through (relays pass the
// bundle on as it arrives) takes, when every host stages at once, about
// as many T as the busiest sender serves at once, max(seeds, fanout), plus
// a little per level. A model, not a measurement.
func model(hosts, seeds, fanout int) {
	rounds := func(s, f int) int {
		names := make([]string, hosts)
		for i := range names {
			names[i] = fmt.Sprintf("h%05d", i)
		}
		t, err := distribute.Plan(names, s, f)
		if err != nil {
			return 0
		}
		total := min(s, hosts)
		for d := 1; d < t.Depth(); d++ {
			busiest := 0
			for _, h := range names {
				if t.HostDepth(h) == d {
					busiest = max(busiest, len(t.Children(h)))
				}
			}
			total += busiest
		}
		return total
	}
	fmt.Printf("\nmodel, a network link per host (T = one bundle over one link): direct push %d T;", hosts)
	for _, c := range [][2]int{{seeds, fanout}, {2, 2}, {1, 2}, {8, 8}} {
		r := rounds(c[0], c[1])
		fmt.Printf(" relay seeds %d fanout %d: %d T (%.1fx);", c[0], c[1], r, float64(hosts)/float64(r))
	}
	ct := max(min(seeds, hosts), fanout)
	fmt.Printf(" cut-through, all hosts staging at once: relay seeds %d fanout %d: ~%d T (%.1fx)\n", seeds, fanout, ct, float64(hosts)/float64(ct))
}

type timing struct {
	stage, total  time.Duration
	busy, iowait  float64
	cpuStart, cpu cpuTimes
}

func best(ts []timing) timing {
	b := ts[0]
	for _, t := range ts[1:] {
		if t.stage < b.stage {
			b = t
		}
	}
	return b
}

// deploy runs `drover deploy --output json` and times the stage phase
// from its events: stage_start to stage_done.
func deploy(bin, cfg, bundle string) (timing, error) {
	var t timing
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "deploy", "-c", cfg, "--release", bundle, "--yes", "--output", "json", "--no-progress")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return t, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	c0 := readCPU()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return t, err
	}
	var stageStart, stageDone time.Time
	var lines []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Time time.Time `json:"time"`
			Kind string    `json:"kind"`
		}
		lines = append(lines, sc.Text())
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev.Kind {
		case drover.EventStageStart:
			stageStart = ev.Time
		case drover.EventStageDone:
			stageDone = ev.Time
		}
	}
	err = cmd.Wait()
	t.total = time.Since(start)
	c1 := readCPU()
	t.busy, t.iowait = c1.since(c0)
	if err != nil {
		tail := lines
		if len(tail) > 20 {
			tail = tail[len(tail)-20:]
		}
		return t, fmt.Errorf("drover deploy %s: %v\n%s\n%s", filepath.Base(cfg), err, strings.Join(tail, "\n"), stderr.String())
	}
	if stageStart.IsZero() || stageDone.IsZero() {
		return t, fmt.Errorf("drover deploy: no stage_start/stage_done events")
	}
	t.stage = stageDone.Sub(stageStart)
	return t, nil
}

// loadavg is the 1-minute load average: other work on the machine skews
// every figure here.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// cpuTimes are the machine's jiffies from /proc/stat.
type cpuTimes struct{ busy, idle, iowait float64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var v []float64
	for _, s := range f[1:] {
		x, _ := strconv.ParseFloat(s, 64)
		v = append(v, x)
	}
	if len(v) < 5 {
		return cpuTimes{}
	}
	var total float64
	for _, x := range v {
		total += x
	}
	return cpuTimes{busy: total - v[3] - v[4], idle: v[3], iowait: v[4]}
}

func (c cpuTimes) since(a cpuTimes) (busy, iowait float64) {
	b, i, w := c.busy-a.busy, c.idle-a.idle, c.iowait-a.iowait
	if t := b + i + w; t > 0 {
		return b / t, w / t
	}
	return 0, 0
}

func writeRandom(path string, n int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	if _, err := io.CopyN(w, rand.Reader, int64(n)); err != nil {
		fh.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// components measures one host's share of distributing bundle here, each
// the best of three (other work on the machine only adds).
func components(f *sshfleet.Fleet, dir, bundle string) error {
	ctx := context.Background()
	fi, err := os.Stat(bundle)
	if err != nil {
		return err
	}
	size := fi.Size()
	sum, err := fileSHA(bundle)
	if err != nil {
		return err
	}
	mb := float64(size) / (1 << 20)
	fmt.Printf("one host's share of a %.0f MB bundle on this machine (best of 3):\n", mb)
	measure := func(what string, fn func() error) error {
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			if err := fn(); err != nil {
				return fmt.Errorf("%s: %v", what, err)
			}
			best = min(best, time.Since(start))
		}
		fmt.Printf("  %-46s %6.0f ms  (%5.0f MB/s)\n", what, float64(best.Microseconds())/1000, mb/best.Seconds())
		return nil
	}
	cl, err := dialSSH(f, f.Hosts[0])
	if err != nil {
		return err
	}
	defer cl.Close()
	a, b, out := filepath.Join(dir, "comp-a"), filepath.Join(dir, "comp-b"), filepath.Join(dir, "comp-unpack")
	defer os.RemoveAll(a)
	defer os.RemoveAll(b)
	defer os.RemoveAll(out)

	steps := []struct {
		what string
		fn   func() error
	}{
		{"sha256 of the bundle (page cache)", func() error { _, err := fileSHA(bundle); return err }},
		// A direct push: the bytes over one Go SSH session (encrypted
		// here, decrypted by sshd) into `cat > /dev/null`.
		{"SSH transfer (encrypt + decrypt), no disk", func() error {
			sess, err := cl.NewSession()
			if err != nil {
				return err
			}
			defer sess.Close()
			in, err := os.Open(bundle)
			if err != nil {
				return err
			}
			defer in.Close()
			sess.Stdin = in
			return sess.Run("cat > /dev/null")
		}},
		// A seed: the stream into the cache (write + sha256).
		{"receive into the cache (write + sha256)", func() error {
			os.RemoveAll(a)
			in, err := os.Open(bundle)
			if err != nil {
				return err
			}
			defer in.Close()
			_, err = relay.Receive(ctx, a, in, sum, size, "bench")
			return err
		}},
		// Every other host: from a relay over loopback HTTP.
		{"HTTP relay fetch (send + write + sha256)", func() error {
			os.RemoveAll(b)
			ln, err := relay.Listen("127.0.0.1", 0, 0)
			if err != nil {
				return err
			}
			token := relay.NewToken()
			srv, err := relay.Serve(ctx, ln, a, sum, size, token, time.Minute)
			if err != nil {
				return err
			}
			defer srv.Close()
			// A child presents a one-time token derived from the key.
			_, err = relay.Fetch(ctx, b, srv.URL(), relay.ChildToken(token, "bench"), sum, size)
			return err
		}},
		// Every host either way; stage also hashes while unpacking
		// (direct) or just before (relay).
		{"unpack (gunzip + untar + write files)", func() error {
			os.RemoveAll(out)
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			in, err := os.Open(bundle)
			if err != nil {
				return err
			}
			defer in.Close()
			_, err = release.Unpack(in, out)
			return err
		}},
	}
	for _, st := range steps {
		if err := measure(st.what, st.fn); err != nil {
			return err
		}
	}
	return nil
}

func fileSHA(p string) (string, error) {
	fh, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

func dialSSH(f *sshfleet.Fleet, h *sshfleet.Host) (*gossh.Client, error) {
	key, err := os.ReadFile(f.Identity)
	if err != nil {
		return nil, err
	}
	signer, err := gossh.ParsePrivateKey(key)
	if err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(f.KnownHosts)
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	cfg := &gossh.ClientConfig{User: u.Username, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)}, HostKeyCallback: cb, Timeout: 10 * time.Second}
	return gossh.Dial("tcp", h.Address(), cfg)
}
