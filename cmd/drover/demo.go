package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/examples/hello"
	"drover/internal/localfleet"
)

func (a *app) demoCmd() *cobra.Command {
	var hosts int
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Make a local fleet, roll out a good release and a broken one that is rolled back",
		Long: `demo shows drover's main job on a fleet it makes itself in a temporary
directory: hosts are directories on this machine, each running the sample
service on a loopback port. It deploys v1, rolls v2 through the canary and
batches, then rolls a broken v3 whose health check fails on the canary, so
drover halts and rolls it back. It needs only this binary; it stops its
processes and cleans up, and exits 0 when all three went as expected.`,
		Example: `  drover demo
  drover demo --hosts 20 --keep`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ok, err := a.demo(c.Context(), hosts, keep)
			if err != nil {
				return err
			}
			if !ok {
				a.exit(1)
			}
			return nil
		},
	}
	c.Flags().IntVar(&hosts, "hosts", 8, "how many hosts")
	c.Flags().BoolVar(&keep, "keep", false, "keep the fleet directory (services are still stopped)")
	return c
}

func (a *app) demo(ctx context.Context, hosts int, keep bool) (bool, error) {
	if hosts < 2 {
		return false, &usageError{fmt.Errorf("--hosts must be at least 2")}
	}
	dir, err := os.MkdirTemp("", "drover-demo-")
	if err != nil {
		return false, err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	// The sample service's release calls `drover sample-service`: put this
	// very binary first on PATH so the demo needs nothing else.
	self, err := os.Executable()
	if err != nil {
		return false, err
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return false, err
	}
	if err := os.Symlink(self, filepath.Join(bin, "drover")); err != nil {
		return false, err
	}
	os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	fleet, err := localfleet.New(localfleet.Options{Dir: filepath.Join(dir, "fleet"), Hosts: hosts})
	if err != nil {
		return false, err
	}
	defer fleet.Stop()

	say := func(format string, args ...any) {
		fmt.Fprintf(a.stdout, "\n\033[1m# "+format+"\033[0m\n", args...)
	}
	if !isTerminal(os.Stdout) || os.Getenv("NO_COLOR") != "" {
		say = func(format string, args ...any) { fmt.Fprintf(a.stdout, "\n# "+format+"\n", args...) }
	}
	say("a fleet of %d hosts in %s (config: %s)", hosts, fleet.Dir, fleet.Config)
	// A newcomer learns drover from what the demo used: the config and
	// the release, printed, so they can write their own from them.
	if err := a.demoShowFile("the drover.yaml every deploy below uses", fleet.Config, say); err != nil {
		return false, err
	}

	type stage struct {
		version  string
		healthy  bool
		wantExit int
		wantOn   string
		story    string
	}
	stages := []stage{
		{"1.0.0", true, drover.ExitOK, "1.0.0", "first deploy of v1.0.0 to every host"},
		{"2.0.0", true, drover.ExitOK, "2.0.0", "rolling upgrade to v2.0.0: canary first, then batches of 25%"},
		{"3.0.0", false, drover.ExitRolledBack, "2.0.0", "v3.0.0 is broken (its /health answers 500): the canary fails its check, drover halts and rolls back"},
	}
	allOK := true
	var results []string
	for _, s := range stages {
		src, err := fleet.WriteRelease(s.version, s.healthy)
		if err != nil {
			return false, err
		}
		if s.version == stages[0].version {
			if err := a.demoShowRelease(src, say); err != nil {
				return false, err
			}
		}
		say("%s", s.story)
		fmt.Fprintf(a.stdout, "$ drover deploy -c %s --release %s\n", fleet.Config, src)
		start := time.Now()
		code := run(ctx, []string{"deploy", "-c", fleet.Config, "--release", src, "--message", "demo " + s.version}, strings.NewReader(""), a.stdout, a.stderr)
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		versions := fleet.Versions(vctx)
		cancel()
		wrong := []string{}
		for _, h := range fleet.Hosts {
			if v := versions[h.Name]; v != s.wantOn {
				wrong = append(wrong, fmt.Sprintf("%s serves %q", h.Name, v))
			}
		}
		good := code == s.wantExit && len(wrong) == 0
		verdict := "as expected"
		if !good {
			allOK = false
			verdict = fmt.Sprintf("NOT as expected: exit %d (want %d)", code, s.wantExit)
			if len(wrong) > 0 {
				verdict += "; want every host on " + s.wantOn + ": " + strings.Join(wrong, ", ")
			}
		}
		results = append(results, fmt.Sprintf("v%-6s exit %d in %-6s every host serving v%s: %s", s.version, code, time.Since(start).Round(100*time.Millisecond), s.wantOn, verdict))
		if ctx.Err() != nil {
			break
		}
	}
	say("what happened")
	for _, r := range results {
		fmt.Fprintln(a.stdout, "  "+r)
	}
	run(ctx, []string{"status", "-c", fleet.Config}, strings.NewReader(""), a.stdout, a.stderr)
	if allOK {
		fmt.Fprintln(a.stdout, "\ndemo: all three deploys went as expected.")
	} else {
		fmt.Fprintln(a.stdout, "\ndemo: FAILED — see above.")
	}
	if keep {
		fmt.Fprintf(a.stdout, "kept %s: drover.yaml, the release sources (src/), the hosts (hosts/) and drover's state; the services are stopped.\n", fleet.Dir)
		fmt.Fprintf(a.stdout, "look around: drover history -c %s; drover deploy -c %s --release %s\n", fleet.Config, fleet.Config, filepath.Join(fleet.Dir, "src", stages[1].version))
	} else {
		fmt.Fprintln(a.stdout, "the fleet was removed; `drover demo --keep` keeps it (config, releases, hosts, history) to try drover status, history, deploy and rollback on.")
	}
	return allOK, nil
}

// demoShowFile prints a file the demo made, indented under a heading.
func (a *app) demoShowFile(title, path string, say func(string, ...any)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	say("%s (%s)", title, path)
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Fprintln(a.stdout, "  "+l)
	}
	return nil
}

// demoShowRelease lists a release source directory and prints its config
// template: what a release is, and what drover renders per host.
func (a *app) demoShowRelease(src string, say func(string, ...any)) error {
	say("the release: a directory (drover bundles it on the fly; `drover release build` makes a bundle) — %s", src)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "  %s %6d  %s\n", fi.Mode().Perm(), fi.Size(), rel)
		return nil
	})
	if err != nil {
		return err
	}
	return a.demoShowFile("its config template, rendered per host with .Host.Vars", filepath.Join(src, hello.ConfigTemplate), say)
}

// sampleServiceCmd runs the demo's sample service (examples/hello) from
// this binary, so `drover demo` needs nothing but drover.
func (a *app) sampleServiceCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "sample-service -config FILE [-check]",
		Short:              "Run the sample service used by the demo and the tests",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			a.exit(hello.Main(c.Context(), args, a.stdout, a.stderr))
			return nil
		},
	}
}
