// Command sshdeploy measures drover deploying over real SSH: it starts a
// fleet of sshd hosts on loopback (internal/sshfleet), deploys a first
// release (drover uploads itself to every host), then rolls a second one
// in batches, and does the same rolling upgrade on a local fleet
// (transport local, same hosts, same checks) to tell what SSH adds per
// host. Run it through bench/ssh-deploy.sh, which builds drover first.
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
	"path/filepath"
	"time"

	"drover/internal/localfleet"
	"drover/internal/sshfleet"
)

func main() {
	drover := flag.String("drover", "", "the drover binary to measure (required)")
	hosts := flag.Int("hosts", 20, "hosts in the fleet")
	batch := flag.Int("batch", 5, "hosts promoted at once")
	keep := flag.Bool("keep", false, "keep the fleet directory")
	flag.Parse()
	if *drover == "" {
		fmt.Fprintln(os.Stderr, "sshdeploy: -drover PATH is required (bench/ssh-deploy.sh builds it)")
		os.Exit(2)
	}
	if err := run(*drover, *hosts, *batch, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "sshdeploy:", err)
		os.Exit(1)
	}
}

func run(drover string, hosts, batch int, keep bool) error {
	dir, err := os.MkdirTemp("", "drover-bench-ssh-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	groups := fmt.Sprintf("groups:\n  - name: all\n    hosts: [\"h*\"]\n    batch: %d\n    failure_limit: 0\n", batch)

	sf, err := sshfleet.New(sshfleet.Options{Dir: filepath.Join(dir, "ssh"), Hosts: hosts, Groups: groups})
	if err != nil {
		return err
	}
	defer sf.Stop()
	lf, err := localfleet.New(localfleet.Options{Dir: filepath.Join(dir, "local"), Hosts: hosts, Groups: groups})
	if err != nil {
		return err
	}
	defer lf.Stop()

	deploy := func(config, src string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		out, err := exec.CommandContext(ctx, drover, "deploy", "-c", config, "--release", src).CombinedOutput()
		took := time.Since(start)
		if err != nil {
			return took, fmt.Errorf("drover deploy -c %s: %v\n%s", config, err, out)
		}
		return took, nil
	}
	release := func(write func(string, bool) (string, error), v string) string {
		src, err := write(v, true)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return src
	}

	sshFirst, err := deploy(sf.Config, release(sf.WriteRelease, "1.0.0"))
	if err != nil {
		return err
	}
	sshUpgrade, err := deploy(sf.Config, release(sf.WriteRelease, "2.0.0"))
	if err != nil {
		return err
	}
	sshNoop, err := deploy(sf.Config, filepath.Join(sf.Dir, "src", "2.0.0"))
	if err != nil {
		return err
	}
	if _, err := deploy(lf.Config, release(lf.WriteRelease, "1.0.0")); err != nil {
		return err
	}
	localUpgrade, err := deploy(lf.Config, release(lf.WriteRelease, "2.0.0"))
	if err != nil {
		return err
	}
	fi, _ := os.Stat(drover)
	batches := (hosts + batch - 1) / batch
	fmt.Printf("ssh deploy: %d sshd hosts, batches of %d (%d batches), drover binary %.1f MB\n", hosts, batch, batches, float64(fi.Size())/1e6)
	fmt.Printf("  first deploy (uploads drover to every host): %s\n", sshFirst.Round(time.Millisecond))
	fmt.Printf("  rolling upgrade over ssh:                     %s\n", sshUpgrade.Round(time.Millisecond))
	fmt.Printf("  same release again (nothing to do):           %s\n", sshNoop.Round(time.Millisecond))
	fmt.Printf("  same upgrade, transport local:                %s\n", localUpgrade.Round(time.Millisecond))
	over := (sshUpgrade - localUpgrade) / time.Duration(hosts)
	fmt.Printf("  ssh overhead per host (upgrade, vs local):    %s\n", over.Round(time.Millisecond))
	fmt.Printf("  upload per host (first deploy - upgrade):     %s\n", ((sshFirst - sshUpgrade) / time.Duration(hosts)).Round(time.Millisecond))
	if keep {
		fmt.Println("  kept:", dir)
	}
	return nil
}
