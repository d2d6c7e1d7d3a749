package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func bashRun(t *testing.T, script string) string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is missing: the completion tests need it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, bash, "--norc", "--noprofile", "-c", script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v\n%s%s", err, out, stderr.String())
	}
	return string(out)
}

// TestCompletionBashLoads: the script sources cleanly and registers
// completion for drover.
func TestCompletionBashLoads(t *testing.T) {
	t.Parallel()
	out := bashRun(t, `set -e; source <(`+shq(droverBin)+` completion bash); complete -p drover`)
	if !strings.Contains(out, "complete") || !strings.HasSuffix(strings.TrimSpace(out), " drover") {
		t.Fatalf("complete -p drover printed:\n%s", out)
	}
}

// TestCompletionBashOffersHostsForLimit drives the loaded completion the
// way bash does on TAB: `drover deploy -c FLEET --limit h0<TAB>` offers the
// hosts of the config, and `drover de<TAB>` the command.
func TestCompletionBashOffersHostsForLimit(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err != nil {
		t.Fatal("bash-completion is missing: cobra's bash script needs its helpers (Debian package bash-completion; scripts/deps.sh installs it)")
	}
	f := newFleet(t, 3)
	script := filepath.Join(t.TempDir(), "drover.bash")
	if code, out, errOut := runInProcess(t, "", "completion", "bash"); code != 0 {
		t.Fatalf("completion bash: exit %d\n%s", code, errOut)
	} else if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) []string {
		line := strings.Join(words, " ")
		var q []string
		for _, w := range words {
			q = append(q, shq(w))
		}
		script := `source /usr/share/bash-completion/bash_completion
source ` + shq(script) + `
COMP_WORDS=(` + strings.Join(q, " ") + `)
COMP_CWORD=` + strconv.Itoa(len(words)-1) + `
COMP_LINE=` + shq(line) + `
COMP_POINT=${#COMP_LINE}
__start_drover drover ` + shq(words[len(words)-1]) + ` ` + shq(words[len(words)-2]) + `
printf '%s\n' "${COMPREPLY[@]}"`
		return strings.Fields(bashRun(t, script))
	}
	hosts := complete("drover", "deploy", "-c", f.Config, "--limit", "h0")
	if strings.Join(hosts, " ") != "h01 h02 h03" {
		t.Errorf("--limit h0<TAB> offered %q, want h01 h02 h03", hosts)
	}
	// At an interactive prompt "!" is typed escaped (history expansion).
	if got := complete("drover", "deploy", "-c", f.Config, "--limit", `\!h0`); strings.Join(got, " ") != "!h01 !h02 !h03" {
		t.Errorf("--limit \\!h0<TAB> offered %q", got)
	}
	// After a comma: cobra's bash script matches the shell-escaped word
	// (h01\,...), so this is checked on the completion request itself,
	// which zsh and fish use as it is.
	code, out, errOut := runInProcess(t, "", "__complete", "deploy", "-c", f.Config, "--limit", "h01,!h0")
	if code != 0 || !strings.Contains(out, "h01,!h02\tdefault\n") || strings.Contains(out, "h01,!h01,") {
		t.Errorf("__complete --limit h01,!h0: exit %d\n%s%s", code, out, errOut)
	}
	if got := complete("drover", "deploy", "--output", ""); strings.Join(got, " ") != "text json" {
		t.Errorf("--output <TAB> offered %q", got)
	}
	if got := complete("drover", "ini"); strings.Join(got, " ") != "init" {
		t.Errorf("ini<TAB> offered %q", got)
	}
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{
		"bash": "__start_drover",
		"zsh":  "#compdef drover",
		"fish": "complete -c drover",
	} {
		code, out, errOut := runInProcess(t, "", "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, has %q: %v\n%s", shell, code, want, strings.Contains(out, want), errOut)
		}
	}
	if code, _, errOut := runInProcess(t, "", "completion", "powershell-or-so"); code != 2 || !strings.Contains(errOut, "bash, zsh or fish") {
		t.Errorf("unknown shell: exit %d\n%s", code, errOut)
	}
}

// TestCompletionHelpHasExamples: every command a person runs shows how in
// --help.
func TestCompletionHelpHasExamples(t *testing.T) {
	t.Parallel()
	a := &app{}
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no examples in --help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := a.rootCmd()
	for _, c := range root.Commands() {
		walk(c)
	}
	if n < 10 {
		t.Errorf("only %d commands checked", n)
	}
	code, out, _ := runInProcess(t, "", "status", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--no-progress") || !strings.Contains(out, "--color") {
		t.Errorf("status --help: exit %d\n%s", code, out)
	}
}

// TestHostChangingCommandsAcceptYes: every command that changes hosts
// (itself or through the deploy it steers) takes --yes/-y like deploy and
// rollback, so scripts pass it uniformly; resume runs with it.
func TestHostChangingCommandsAcceptYes(t *testing.T) {
	t.Parallel()
	root := (&app{}).rootCmd()
	for _, name := range []string{"deploy", "rollback", "converge", "finalize", "resume", "abort", "promote"} {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Fatalf("no command %s: %v", name, err)
		}
		f := c.Flags().Lookup("yes")
		if f == nil || f.Shorthand != "y" || f.Value.Type() != "bool" {
			t.Errorf("%s has no --yes/-y flag: %+v", name, f)
		}
	}
	cfg := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(cfg, []byte("service: hello\ndeploy_root: /srv/hello\nstate_dir: "+filepath.Join(filepath.Dir(cfg), "state")+"\nhosts: [{name: h01, address: "+filepath.Dir(cfg)+"}]\ngroups: [{name: all, hosts: [\"*\"]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"resume", "--yes"}, {"resume", "-y"}} {
		code, out, errOut := runInProcess(t, "", append(args, "-c", cfg)...)
		if code != 0 || !strings.Contains(out+errOut, "nothing to resume") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
}
