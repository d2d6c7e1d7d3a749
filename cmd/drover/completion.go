package main

// Shell completion: cobra generates the scripts; this file adds what only
// drover knows — the host and environment names in drover.yaml, the
// deploy and release IDs in its history — so `drover deploy --limit
// h0<TAB>` offers the fleet's hosts and `drover show <TAB>` its deploys.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/config"
	"drover/runner"
	"drover/store/sqlite"
)

func (a *app) completionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `completion prints a script that teaches your shell drover's commands and
flags, and the host and environment names of the drover.yaml at hand for
--limit and --env.`,
		Example: `  source <(drover completion bash)                       # this shell
  drover completion bash > /etc/bash_completion.d/drover  # every bash
  drover completion zsh > "${fpath[1]}/_drover"           # zsh (needs compinit)
  drover completion fish > ~/.config/fish/completions/drover.fish`,
		ValidArgs:             []string{"bash", "zsh", "fish"},
		DisableFlagsInUseLine: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{fmt.Errorf("completion takes one shell: bash, zsh or fish")}
			}
			root := c.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			}
			return &usageError{fmt.Errorf("completion %q: want bash, zsh or fish", args[0])}
		},
	}
}

// addFlagCompletions completes flag values on every command that has the
// flag: --limit with host names, --env with environment names, and the
// fixed choices of --output and --color.
func (a *app) addFlagCompletions(root *cobra.Command) {
	fixed := func(vals ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return vals, cobra.ShellCompDirectiveNoFileComp
		}
	}
	root.RegisterFlagCompletionFunc("color", fixed("auto", "always", "never"))
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("limit") != nil {
			c.RegisterFlagCompletionFunc("limit", completeLimit)
		}
		if c.Flags().Lookup("env") != nil {
			c.RegisterFlagCompletionFunc("env", completeEnv)
		}
		if f := c.Flags().Lookup("output"); f != nil && f.Shorthand == "" {
			c.RegisterFlagCompletionFunc("output", fixed("text", "json"))
		}
		if c.Flags().Lookup("to") != nil && c.Name() == "rollback" {
			c.RegisterFlagCompletionFunc("to", completeReleases)
		}
		if strings.Contains(c.Use, "DEPLOY-ID") && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = completeDeployIDs
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// configFlag is the -c value of the command being completed.
func configFlag(c *cobra.Command) (path, env string) {
	path = "drover.yaml"
	if f := c.Flags().Lookup("config"); f != nil {
		path = f.Value.String()
	}
	if f := c.Flags().Lookup("env"); f != nil {
		env = f.Value.String()
	}
	return path, env
}

// completeLimit offers host names for the last element of a
// comma-separated --limit, keeping what is typed before it; "!" excludes.
func completeLimit(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	path, env := configFlag(c)
	spec, err := config.Load(path, env)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	prefix := ""
	last := toComplete
	if i := strings.LastIndex(toComplete, ","); i >= 0 {
		prefix, last = toComplete[:i+1], toComplete[i+1:]
	}
	if strings.HasPrefix(last, "!") {
		prefix += "!"
		last = last[1:]
	}
	var out []string
	for _, h := range spec.Hosts {
		if strings.HasPrefix(h.Name, last) {
			out = append(out, prefix+h.Name+"\t"+h.Group)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeEnv offers the environments of drover.yaml.
func completeEnv(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	path, _ := configFlag(c)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	f, err := config.Decode(path, data)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for name := range f.Environments {
		if strings.HasPrefix(name, toComplete) {
			out = append(out, name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completionHistory is the newest deploys of the drover.yaml at hand, for
// completing their IDs and releases: nil when there is no history yet.
// A TAB creates nothing: a state directory without a database stays so.
func completionHistory(c *cobra.Command) []drover.DeployRecord {
	path, env := configFlag(c)
	spec, err := config.Load(path, env)
	if err != nil {
		return nil
	}
	dir, err := stateDir(spec)
	if err != nil {
		return nil
	}
	if spec.Store == "" || spec.Store == drover.StoreSQLite {
		if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
			return nil
		}
	}
	st, err := openStore(spec, dir)
	if err != nil {
		return nil
	}
	defer st.Close()
	// A shell waits for this: an unreachable store answers nothing, soon.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	recs, err := reader(st).Deploys(ctx, drover.DeployQuery{Key: runner.Key(spec), Limit: 50})
	if err != nil {
		return nil
	}
	return recs
}

// completeDeployIDs offers the deploy IDs of the history, newest first,
// each described by its kind, version and outcome.
func completeDeployIDs(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, r := range completionHistory(c) {
		if strings.HasPrefix(r.ID, toComplete) {
			out = append(out, r.ID+"\t"+strings.TrimSpace(orDeploy(r.Kind)+" "+r.Version+" "+r.Outcome))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// completeReleases offers the release IDs deployed before, newest first,
// each described by its version, for rollback --to.
func completeReleases(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	seen := map[string]bool{}
	var out []string
	for _, r := range completionHistory(c) {
		if r.Release == "" || seen[r.Release] || !strings.HasPrefix(r.Release, toComplete) {
			continue
		}
		seen[r.Release] = true
		out = append(out, r.Release+"\t"+r.Version)
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}
