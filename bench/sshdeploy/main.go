// Command sshdeploy measures drover deploying over real SSH: it starts a
// fleet of sshd hosts on loopback (internal/sshfleet), deploys a first
// release (drover uploads itself to every host), then rolls a second one
// in batches and times it. Then, by mode:
//
//   - default (bench/ssh-deploy.sh): the same rolling upgrade on a local
//     fleet (transport local, same hosts, same checks), to tell what SSH
//     adds per host;
//   - -ansible DIR (bench/compare.sh): the same rolling upgrade on the
//     same sshd fleet by ansible-playbook with DIR/deploy.yml, and the
//     ratio of the two times.
//
// Both tools get the same release bundle (.tar.gz built beforehand) and
// the same fleet; see bench/README.md for what is compared.
//
// It is a benchmark, not a test: it prints figures and fails only when a
// deploy does.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"drover/internal/localfleet"
	"drover/internal/sshfleet"
)

type options struct {
	drover     string
	hosts      int
	batch      int
	keep       bool
	ansible    string
	pipelining bool
	runs       int
	shellRC    bool
	hold       bool
	payloadMB  int
	fromDir    bool
	onlyDrover bool
}

func main() {
	var o options
	flag.StringVar(&o.drover, "drover", "", "the drover binary to measure (required)")
	flag.IntVar(&o.hosts, "hosts", 20, "hosts in the fleet")
	flag.IntVar(&o.batch, "batch", 5, "hosts promoted at once (Ansible: serial and forks)")
	flag.BoolVar(&o.keep, "keep", false, "keep the fleet directory")
	flag.StringVar(&o.ansible, "ansible", "", "compare with ansible-playbook using DIR/deploy.yml and DIR/ansible.cfg")
	flag.BoolVar(&o.pipelining, "pipelining", false, "turn Ansible's SSH pipelining on (off is Ansible's default)")
	flag.IntVar(&o.runs, "runs", 1, "timed upgrades per tool; the median is reported")
	flag.BoolVar(&o.hold, "hold", false, "after the first deploy, print the fleet's drover.yaml and keep the fleet up until interrupted (for profiling by hand)")
	flag.BoolVar(&o.shellRC, "shell-rc", true, "let every SSH session's login shell read the user's ~/.bashrc, as sshd normally has it (false: sshd sets SHLVL=1 and bash skips it)")
	flag.IntVar(&o.payloadMB, "payload-mb", 0, "add an N MB incompressible file (payload.bin) to every release, as a real service's binary would weigh")
	flag.BoolVar(&o.fromDir, "from-dir", false, "drover deploys the release directory (packed by drover itself, as `drover deploy --release DIR` does) instead of the prebuilt bundle")
	flag.BoolVar(&o.onlyDrover, "only-drover", false, "one first deploy and -runs upgrades by drover only; report peak RSS, open fds and time per host of the controller (for large fleets: -hosts 200)")
	flag.Parse()
	if o.drover == "" {
		fmt.Fprintln(os.Stderr, "sshdeploy: -drover PATH is required (bench/ssh-deploy.sh and bench/compare.sh build it)")
		os.Exit(2)
	}
	if o.runs < 1 {
		o.runs = 1
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "sshdeploy:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "drover-bench-ssh-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	groups := fmt.Sprintf("groups:\n  - name: all\n    hosts: [\"h*\"]\n    batch: %d\n    failure_limit: 0\n", o.batch)
	sf, err := sshfleet.New(sshfleet.Options{Dir: filepath.Join(dir, "ssh"), Hosts: o.hosts, Groups: groups, NoShellRC: !o.shellRC})
	if err != nil {
		return err
	}
	defer sf.Stop()
	b := &bench{o: o, dir: dir}

	// Every version gets its bundle up front: neither tool pays for
	// building it inside its timing.
	version := 0
	srcs := map[string]string{}
	b.srcs = srcs
	next := func(write func(string, bool) (string, error)) (string, string, error) {
		version++
		v := fmt.Sprintf("%d.0.0", version)
		src, err := write(v, true)
		if err != nil {
			return "", "", err
		}
		if err := writePayload(src, o.payloadMB); err != nil {
			return "", "", err
		}
		if o.fromDir {
			srcs[v] = src
		}
		bundle := filepath.Join(dir, "bundle-"+v+".tar.gz")
		if out, err := exec.Command(o.drover, "release", "build", src, "--version", v, "-o", bundle).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("drover release build: %v\n%s", err, out)
		}
		return v, bundle, nil
	}

	_, first, err := next(sf.WriteRelease)
	if err != nil {
		return err
	}
	sshFirst, err := b.drover(sf.Config, first)
	if err != nil {
		return err
	}
	firstRSS, firstFDs := b.lastRSS, b.lastFDs
	if o.onlyDrover {
		var ups []time.Duration
		var rss int64
		fds := 0
		for range o.runs {
			_, bundle, err := next(sf.WriteRelease)
			if err != nil {
				return err
			}
			took, err := b.drover(sf.Config, bundle)
			if err != nil {
				return err
			}
			ups = append(ups, took)
			rss, fds = max(rss, b.lastRSS), max(fds, b.lastFDs)
		}
		if err := b.checkVersions(sf, fmt.Sprintf("%d.0.0", version)); err != nil {
			return err
		}
		up := median(ups)
		fmt.Printf("drover only: %d sshd hosts on loopback, batches of %d, payload %d MB, load average %s\n", o.hosts, o.batch, o.payloadMB, loadavg())
		fmt.Printf("  first deploy:   %s (%s per host), controller peak RSS %.0f MB, peak open fds %d\n", sshFirst.Round(time.Millisecond), (sshFirst / time.Duration(o.hosts)).Round(100*time.Microsecond), float64(firstRSS)/1e6, firstFDs)
		fmt.Printf("  later deploys:  %s (%s per host)%s, controller peak RSS %.0f MB, peak open fds %d\n", up.Round(time.Millisecond), (up / time.Duration(o.hosts)).Round(100*time.Microsecond), runsNote(ups), float64(rss)/1e6, fds)
		return nil
	}
	if o.hold {
		for _, v := range []string{"2.0.0", "3.0.0", "4.0.0", "5.0.0"} {
			src, err := sf.WriteRelease(v, true)
			if err != nil {
				return err
			}
			if err := writePayload(src, o.payloadMB); err != nil {
				return err
			}
		}
		fmt.Printf("fleet up: %s (releases in %s); interrupt to stop it\n", sf.Config, filepath.Join(sf.Dir, "src"))
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return nil
	}
	var sshUpgrades, ansibleUpgrades []time.Duration
	var lastBundle string
	for range o.runs {
		_, bundle, err := next(sf.WriteRelease)
		if err != nil {
			return err
		}
		took, err := b.drover(sf.Config, bundle)
		if err != nil {
			return err
		}
		sshUpgrades = append(sshUpgrades, took)
		lastBundle = bundle
		if o.ansible != "" {
			v, bundle, err := next(sf.WriteRelease)
			if err != nil {
				return err
			}
			took, err := b.ansiblePlaybook(sf, v, bundle)
			if err != nil {
				return err
			}
			ansibleUpgrades = append(ansibleUpgrades, took)
		}
	}
	if err := b.checkVersions(sf, fmt.Sprintf("%d.0.0", version)); err != nil {
		return err
	}
	fi, _ := os.Stat(o.drover)
	batches := (o.hosts + o.batch - 1) / o.batch
	sshUpgrade := median(sshUpgrades)

	if o.ansible != "" {
		stage, promote, err := b.floor(sf, lastBundle)
		if err != nil {
			return err
		}
		ans := median(ansibleUpgrades)
		pipe := "off"
		if o.pipelining {
			pipe = "on"
		}
		fmt.Printf("drover vs Ansible: %d sshd hosts on loopback, batches of %d (%d batches), same bundle, steps and checks; login shell reads ~/.bashrc: %v\n", o.hosts, o.batch, batches, o.shellRC)
		fmt.Printf("  payload %d MB per release (bundle %.1f MB), load average %s\n", o.payloadMB, fileMB(lastBundle), loadavg())
		fmt.Printf("  drover, first deploy (uploads drover too):     %s\n", sshFirst.Round(time.Millisecond))
		fmt.Printf("  drover deploy (ssh, rolling upgrade):          %s%s\n", sshUpgrade.Round(time.Millisecond), runsNote(sshUpgrades))
		fmt.Printf("  ansible-playbook (forks %d, serial %d, ControlPersist, pipelining %s): %s%s\n", o.batch, o.batch, pipe, ans.Round(time.Millisecond), runsNote(ansibleUpgrades))
		fmt.Printf("  ratio (Ansible / drover):                      %.1fx\n", float64(ans)/float64(sshUpgrade))
		fmt.Printf("  floor: %s = stage %s (every host: one ssh session streaming the bundle into tar) + promote %s (per batch: restart over ssh, poll /health every 5 ms)\n", (stage + promote).Round(time.Millisecond), stage.Round(time.Millisecond), promote.Round(time.Millisecond))
		if o.keep {
			fmt.Println("  kept:", dir)
		}
		return nil
	}

	sshNoop, err := b.drover(sf.Config, lastBundle)
	if err != nil {
		return err
	}
	lf, err := localfleet.New(localfleet.Options{Dir: filepath.Join(dir, "local"), Hosts: o.hosts, Groups: groups})
	if err != nil {
		return err
	}
	defer lf.Stop()
	version = 0
	_, lfirst, err := next(lf.WriteRelease)
	if err != nil {
		return err
	}
	if _, err := b.drover(lf.Config, lfirst); err != nil {
		return err
	}
	_, lup, err := next(lf.WriteRelease)
	if err != nil {
		return err
	}
	localUpgrade, err := b.drover(lf.Config, lup)
	if err != nil {
		return err
	}
	fmt.Printf("ssh deploy: %d sshd hosts, batches of %d (%d batches), drover binary %.1f MB, login shell reads ~/.bashrc: %v\n", o.hosts, o.batch, batches, float64(fi.Size())/1e6, o.shellRC)
	fmt.Printf("  first deploy (uploads drover to every host): %s\n", sshFirst.Round(time.Millisecond))
	fmt.Printf("  rolling upgrade over ssh:                     %s%s\n", sshUpgrade.Round(time.Millisecond), runsNote(sshUpgrades))
	fmt.Printf("  same release again (nothing to do):           %s\n", sshNoop.Round(time.Millisecond))
	fmt.Printf("  same upgrade, transport local:                %s\n", localUpgrade.Round(time.Millisecond))
	over := (sshUpgrade - localUpgrade) / time.Duration(o.hosts)
	fmt.Printf("  ssh overhead per host (upgrade, vs local):    %s\n", over.Round(time.Millisecond))
	fmt.Printf("  upload per host (first deploy - upgrade):     %s\n", ((sshFirst - sshUpgrade) / time.Duration(o.hosts)).Round(time.Millisecond))
	if o.keep {
		fmt.Println("  kept:", dir)
	}
	return nil
}

type bench struct {
	o    options
	dir  string
	srcs map[string]string // version -> source directory, with -from-dir

	// Of the last drover deploy: peak RSS (getrusage) and the most open
	// file descriptors seen (sampled from /proc every 20 ms).
	lastRSS int64
	lastFDs int
}

// floor measures what the job costs the hosts with no tool around it:
// every host at once receives the bundle over one SSH session and unpacks
// it (tar), then, batch by batch, every host of the batch restarts the
// service over one SSH session and the batch is done when every host's
// /health answers 200 (polled every 5 ms). No config render, no state,
// no checks beyond health: a lower bound for any tool.
func (b *bench) floor(sf *sshfleet.Fleet, bundle string) (stage, promote time.Duration, err error) {
	drover, err := filepath.Abs(b.o.drover)
	if err != nil {
		return 0, 0, err
	}
	ssh := func(h *sshfleet.Host, script string, stdin string) error {
		cmd := exec.Command("ssh", "-i", sf.Identity, "-o", "UserKnownHostsFile="+sf.KnownHosts, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-p", strconv.Itoa(h.SSHPort), currentUser()+"@127.0.0.1", script)
		if stdin != "" {
			f, err := os.Open(stdin)
			if err != nil {
				return err
			}
			defer f.Close()
			cmd.Stdin = f
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("floor on %s: %v\n%s", h.Name, err, out)
		}
		return nil
	}
	all := func(hosts []*sshfleet.Host, f func(h *sshfleet.Host) error) error {
		errs := make(chan error, len(hosts))
		for _, h := range hosts {
			go func() { errs <- f(h) }()
		}
		var first error
		for range hosts {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	start := time.Now()
	err = all(sf.Hosts, func(h *sshfleet.Host) error {
		d := strconv.Quote(filepath.Join(h.Root, "floor"))
		return ssh(h, "rm -rf "+d+" && mkdir -p "+d+" && tar xzf - -C "+d+" && rm -rf "+d, bundle)
	})
	stage = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	start = time.Now()
	for i := 0; i < len(sf.Hosts); i += b.o.batch {
		err := all(sf.Hosts[i:min(i+b.o.batch, len(sf.Hosts))], func(h *sshfleet.Host) error {
			if err := ssh(h, "DROVER_BIN="+strconv.Quote(drover)+" "+strconv.Quote(filepath.Join(h.Root, "current", "bin", "restart"))+" "+strconv.Quote(h.Root), ""); err != nil {
				return err
			}
			url := fmt.Sprintf("http://127.0.0.1:%d/health", h.Port)
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := http.Get(url)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return nil
					}
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("floor: %s not healthy after restart", h.Name)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return stage, time.Since(start), nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func fileMB(p string) float64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return float64(fi.Size()) / 1e6
}

// writePayload adds an mb MB file of random bytes to release source
// dir: incompressible, as a compiled binary nearly is.
func writePayload(dir string, mb int) error {
	if mb <= 0 {
		return nil
	}
	buf := make([]byte, mb<<20)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "payload.bin"), buf, 0o644)
}

// drover times `drover deploy` of bundle with config.
func (b *bench) drover(config, bundle string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rel := bundle
	if b.o.fromDir {
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(bundle), "bundle-"), ".tar.gz")
		if src, ok := b.srcs[v]; ok {
			rel = src
		}
	}
	cmd := exec.CommandContext(ctx, b.o.drover, "deploy", "-c", config, "--release", rel)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		done, stop := make(chan struct{}), make(chan struct{})
		peak := 0
		go func() {
			defer close(done)
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			fdDir := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
			for {
				if ents, err := os.ReadDir(fdDir); err == nil && len(ents) > peak {
					peak = len(ents)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		err = cmd.Wait()
		close(stop)
		<-done
		b.lastFDs = peak
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			b.lastRSS = ru.Maxrss << 10
		}
	}
	took := time.Since(start)
	out := buf.Bytes()
	if err != nil {
		return took, fmt.Errorf("drover deploy -c %s: %v\n%s", config, err, out)
	}
	return took, nil
}

// ansiblePlaybook times ansible-playbook rolling version (bundle) over
// the fleet, with an inventory written from the fleet's hosts.
func (b *bench) ansiblePlaybook(sf *sshfleet.Fleet, version, bundle string) (time.Duration, error) {
	adir := filepath.Join(b.dir, "ansible")
	cp := filepath.Join(adir, "cp")
	if err := os.MkdirAll(cp, 0o700); err != nil {
		return 0, err
	}
	inv := filepath.Join(adir, "inventory.ini")
	var w strings.Builder
	w.WriteString("[fleet]\n")
	for _, h := range sf.Hosts {
		fmt.Fprintf(&w, "%s ansible_host=127.0.0.1 ansible_port=%d root=%s port=%d\n", h.Name, h.SSHPort, strconv.Quote(h.Root), h.Port)
	}
	fmt.Fprintf(&w, "[fleet:vars]\nansible_user=%s\nansible_ssh_private_key_file=%s\n", currentUser(), strconv.Quote(sf.Identity))
	fmt.Fprintf(&w, "ansible_ssh_common_args=\"-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes\"\n", sf.KnownHosts)
	if err := os.WriteFile(inv, []byte(w.String()), 0o600); err != nil {
		return 0, err
	}
	playbook, err := filepath.Abs(filepath.Join(b.o.ansible, "deploy.yml"))
	if err != nil {
		return 0, err
	}
	drover, err := filepath.Abs(b.o.drover)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ansible-playbook", "-i", inv, playbook,
		"-e", "bundle="+bundle, "-e", "version="+version, "-e", "release_id=ansible-"+version, "-e", "drover_bin="+drover)
	cmd.Env = append(os.Environ(),
		"ANSIBLE_CONFIG="+filepath.Join(filepath.Dir(playbook), "ansible.cfg"),
		"ANSIBLE_SSH_CONTROL_PATH_DIR="+cp,
		"ANSIBLE_HOME="+filepath.Join(adir, "home"),
		"ANSIBLE_PIPELINING="+strconv.FormatBool(b.o.pipelining),
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	// The ControlPersist masters outlive the run by design; stop them so
	// the fleet stops cleanly.
	for _, h := range sf.Hosts {
		exec.Command("ssh", "-o", "ControlPath="+cp+"/%C", "-p", strconv.Itoa(h.SSHPort), "-O", "exit", currentUser()+"@127.0.0.1").Run()
	}
	if err != nil {
		return took, fmt.Errorf("ansible-playbook: %v\n%s", err, tail(string(out), 40))
	}
	return took, nil
}

// checkVersions fails unless every host serves version.
func (b *bench) checkVersions(sf *sshfleet.Fleet, version string) error {
	for name, v := range sf.Versions(context.Background()) {
		if v != version {
			return fmt.Errorf("host %s serves %q after the last upgrade, want %s", name, v, version)
		}
	}
	return nil
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		return "root"
	}
	return strings.TrimSpace(string(out))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func runsNote(d []time.Duration) string {
	if len(d) < 2 {
		return ""
	}
	var parts []string
	for _, x := range d {
		parts = append(parts, x.Round(10*time.Millisecond).String())
	}
	return fmt.Sprintf(" (median of %d: %s)", len(d), strings.Join(parts, ", "))
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
