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
	"context"
	"flag"
	"fmt"
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
	next := func(write func(string, bool) (string, error)) (string, string, error) {
		version++
		v := fmt.Sprintf("%d.0.0", version)
		src, err := write(v, true)
		if err != nil {
			return "", "", err
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
	if o.hold {
		for _, v := range []string{"2.0.0", "3.0.0", "4.0.0", "5.0.0"} {
			if _, err := sf.WriteRelease(v, true); err != nil {
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
		ans := median(ansibleUpgrades)
		pipe := "off"
		if o.pipelining {
			pipe = "on"
		}
		fmt.Printf("drover vs Ansible: %d sshd hosts on loopback, batches of %d (%d batches), same bundle, steps and checks; login shell reads ~/.bashrc: %v\n", o.hosts, o.batch, batches, o.shellRC)
		fmt.Printf("  drover deploy (ssh, rolling upgrade):          %s%s\n", sshUpgrade.Round(time.Millisecond), runsNote(sshUpgrades))
		fmt.Printf("  ansible-playbook (forks %d, serial %d, ControlPersist, pipelining %s): %s%s\n", o.batch, o.batch, pipe, ans.Round(time.Millisecond), runsNote(ansibleUpgrades))
		fmt.Printf("  ratio (Ansible / drover):                      %.1fx\n", float64(ans)/float64(sshUpgrade))
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
	o   options
	dir string
}

// drover times `drover deploy` of bundle with config.
func (b *bench) drover(config, bundle string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, b.o.drover, "deploy", "-c", config, "--release", bundle).CombinedOutput()
	took := time.Since(start)
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
