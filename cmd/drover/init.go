package main

// drover init writes a commented drover.yaml to start from. It asks only
// on a terminal and only for what no flag gave; everywhere else (a script,
// CI) it takes the flags and the defaults. What it writes is validated with
// config.Parse before the file is created, so init never leaves a config
// that the next command rejects.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"drover"
	"drover/config"
)

type initFlags struct {
	path       string
	service    string
	hosts      string
	host       []string
	transport  string
	deployRoot string
	portVar    string
	force      bool
	yes        bool
}

// initHost is one host of the file init writes.
type initHost struct {
	name, address string
	port          int // 0: no port var
}

// initAnswers is everything the file is made from.
type initAnswers struct {
	service, transport, deployRoot string
	hosts                          []initHost
	portVar                        string
}

func (a *app) initCmd() *cobra.Command {
	var f initFlags
	c := &cobra.Command{
		Use:   "init",
		Short: "Write a commented drover.yaml for the current directory",
		Long: `init writes a drover.yaml to start from: the service, its hosts, a canary
group and a default group, the restart hook and a health check, each with a
comment saying what it is for. On a terminal it asks for what the flags did
not give (--yes takes the defaults); elsewhere it never asks. The file is
validated before it is written, and an existing file is never replaced
without --force.`,
		Example: `  drover init                                         # asks, on a terminal
  drover init --service hello --hosts h01,h02,h03 --port-var port=18001
  drover init --service api --transport ssh --host web1=10.0.0.11 --host web2=10.0.0.12:2222
  drover init -c staging.yaml --service api --hosts web1,web2 --force`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return a.runInit(c, &f)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&f.path, "config", "c", "drover.yaml", "the file to write")
	fl.StringVar(&f.service, "service", "", "the service name (default: this directory's name)")
	fl.StringVar(&f.hosts, "hosts", "", "comma-separated host names; the address is ./fleet/NAME for transport local, NAME for ssh")
	fl.StringArrayVar(&f.host, "host", nil, "a host as NAME=ADDRESS (repeat for more)")
	fl.StringVar(&f.transport, "transport", "", "local (a host is a directory) or ssh (default local)")
	fl.StringVar(&f.deployRoot, "deploy-root", "", "where releases live on every host (default /srv/SERVICE)")
	fl.StringVar(&f.portVar, "port-var", "", "NAME=PORT: give each host a var NAME, PORT for the first host and counting up, and check it")
	fl.BoolVar(&f.force, "force", false, "replace an existing file")
	fl.BoolVarP(&f.yes, "yes", "y", false, "take the defaults for everything the flags do not give, without asking")
	return c
}

func (a *app) runInit(c *cobra.Command, f *initFlags) error {
	if _, err := os.Lstat(f.path); err == nil && !f.force {
		return &drover.Error{Code: drover.EINVALID, Where: f.path, Message: "already exists; nothing was written",
			Hint: "pass --force to replace it, or -c OTHER.yaml to write another file"}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return drover.Errorf(drover.EINVALID, "%v", err).At(f.path).WithHint("check the path and its directory's permissions")
	}
	ans, err := a.initAnswers(c, f)
	if err != nil {
		return err
	}
	text := renderInit(ans)
	abs, err := filepath.Abs(f.path)
	if err != nil {
		return err
	}
	// Validate exactly what will be written, as the file it will be.
	spec, err := config.Parse(abs, []byte(text), "")
	if err != nil {
		return fmt.Errorf("the file init would write does not validate; nothing was written; fix the flag or answer behind: %w", err)
	}
	if err := os.WriteFile(f.path, []byte(text), 0o644); err != nil {
		return drover.Errorf(drover.EINVALID, "%v", err).At(f.path).WithHint("check the directory exists and is writable")
	}
	fmt.Fprintf(a.stdout, "wrote %s: service %s, %s, transport %s\n", f.path, ans.service, plural(len(ans.hosts), "host"), ans.transport)
	if spec.Transport == "local" {
		a.makeLocalHosts(spec)
	}
	fmt.Fprintf(a.stdout, "next: edit the hooks and checks for your service, then `drover plan -c %s --release DIR`\n", f.path)
	return nil
}

// makeLocalHosts makes the directory of every host of a local fleet:
// transport local takes a missing host directory for a host that is down,
// so a newcomer's first `drover deploy` after init found every host
// unreachable (issue 17). Only the host directories are made — the deploy
// root inside is made by the first deploy, as on a real host. One that
// cannot be made is no error (the file is written): init prints the
// command to run instead.
func (a *app) makeLocalHosts(spec *drover.Spec) {
	var made, failed []string
	for _, h := range spec.Hosts {
		if fi, err := os.Stat(h.Address); err == nil && fi.IsDir() {
			continue
		}
		if err := os.MkdirAll(h.Address, 0o755); err != nil {
			failed = append(failed, h.Address)
			fmt.Fprintf(a.stderr, "drover: could not make host %s's directory: %v\n", h.Name, err)
			continue
		}
		made = append(made, h.Address)
	}
	if len(made) > 0 {
		what := "host directories"
		if len(made) == 1 {
			what = "host directory"
		}
		fmt.Fprintf(a.stdout, "made %s (transport local: a host is a directory): %s\n", what, strings.Join(made, " "))
	}
	if len(failed) > 0 {
		quoted := make([]string, len(failed))
		for i, d := range failed {
			quoted[i] = drover.ShellQuote(d)
		}
		fmt.Fprintf(a.stdout, "make them before deploying: mkdir -p %s\n", strings.Join(quoted, " "))
	}
}

var initName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// initAnswers merges flags, prompts (on a terminal only) and defaults.
func (a *app) initAnswers(c *cobra.Command, f *initFlags) (initAnswers, error) {
	ask := func(question, def string) string { return def }
	if !f.yes && isTerminal(a.stdin) {
		in := bufio.NewReader(a.stdin)
		ask = func(question, def string) string {
			fmt.Fprintf(a.stdout, "%s [%s]: ", question, def)
			line, err := in.ReadString('\n')
			line = strings.TrimSpace(line)
			if line == "" || err != nil {
				return def
			}
			return line
		}
	}
	var ans initAnswers

	ans.service = f.service
	if ans.service == "" {
		def := "app"
		if wd, err := os.Getwd(); err == nil {
			if n := strings.Trim(initName.ReplaceAllString(filepath.Base(wd), "-"), "-."); n != "" {
				def = n
			}
		}
		ans.service = ask("service name", def)
	}

	ans.transport = f.transport
	if ans.transport == "" {
		ans.transport = ask("transport (local: a host is a directory; ssh)", drover.DefaultTransport)
	}
	if ans.transport != "local" && ans.transport != "ssh" {
		return ans, &usageError{fmt.Errorf("--transport %q: want local or ssh", ans.transport)}
	}

	address := func(name string) string {
		if ans.transport == "ssh" {
			return name
		}
		return "./fleet/" + name
	}
	for _, hv := range f.host {
		name, addr, ok := strings.Cut(hv, "=")
		if !ok || name == "" || addr == "" {
			return ans, &usageError{fmt.Errorf("--host %q: want NAME=ADDRESS, e.g. --host web1=10.0.0.11", hv)}
		}
		ans.hosts = append(ans.hosts, initHost{name: name, address: addr})
	}
	names := f.hosts
	if names == "" && len(ans.hosts) == 0 {
		names = ask("hosts (comma-separated names)", "h01,h02,h03")
	}
	for _, n := range strings.Split(names, ",") {
		if n = strings.TrimSpace(n); n != "" {
			ans.hosts = append(ans.hosts, initHost{name: n, address: address(n)})
		}
	}
	if len(ans.hosts) == 0 {
		return ans, &usageError{fmt.Errorf("no hosts: pass --hosts h01,h02 or --host NAME=ADDRESS")}
	}

	ans.deployRoot = f.deployRoot
	if ans.deployRoot == "" {
		ans.deployRoot = ask("deploy root on every host", "/srv/"+ans.service)
	}

	pv := f.portVar
	if pv == "" && !c.Flags().Changed("port-var") {
		pv = ask("port var for health checks, NAME=FIRST-PORT (empty: none)", "")
	}
	if pv != "" {
		name, first, ok := strings.Cut(pv, "=")
		port, err := strconv.Atoi(first)
		if !ok || name == "" || err != nil || port < 1 || port+len(ans.hosts)-1 > 65535 {
			return ans, &usageError{fmt.Errorf("--port-var %q: want NAME=PORT with a port from 1 to 65535, e.g. --port-var port=8080", pv)}
		}
		ans.portVar = name
		for i := range ans.hosts {
			ans.hosts[i].port = port + i
		}
	}
	return ans, nil
}

// renderInit writes the file. Values go out as JSON strings, which YAML
// reads as double-quoted scalars: a name or path cannot change the
// document's structure.
func renderInit(ans initAnswers) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# drover.yaml for %s, written by `drover init`.\n", ans.service)
	w("# Every key is in the README's configuration reference; unknown keys are\n")
	w("# errors, and `drover plan --release DIR` shows what a deploy would do.\n\n")
	w("# The service name: locks, history and the release bundles carry it.\n")
	w("service: %s\n", q(ans.service))
	w("# Where releases live on every host: releases/<id>/, current, state.json.\n")
	w("deploy_root: %s\n", q(ans.deployRoot))
	w("# Release directories kept per host; current and previous always are.\n")
	w("keep_releases: %d\n", drover.DefaultKeepReleases)
	if ans.transport == "ssh" {
		w("# ssh: every host is reached with OpenSSH-compatible SSH; host keys are\n")
		w("# always verified against known_hosts.\n")
		w("transport: ssh\n")
		w("ssh:\n  user: deploy\n  identity: ~/.ssh/id_ed25519\n  known_hosts: ~/.ssh/known_hosts\n")
	} else {
		w("# local: a host is a directory on this machine (its address); its deploy\n")
		w("# root lives inside it. Good for trying drover out and for tests.\n")
		w("transport: local\n")
	}
	w("\n# The fleet. vars are handed to templates as .Host.Vars.\n")
	w("hosts:\n")
	for _, h := range ans.hosts {
		w("  - name: %s\n    address: %s\n", q(h.name), q(h.address))
		if ans.portVar != "" {
			w("    vars: {%s: %d}\n", q(ans.portVar), h.port)
		}
	}
	w("\n# Groups deploy in this order; a host belongs to the first group naming it.\n")
	w("# batch: hosts switched at once (n or \"n%%\" of the group, rounded up).\n")
	w("# failure_limit: failures allowed in the group (rounded down); one more\n")
	w("# halts the deploy and rolls back every host it switched.\n")
	w("groups:\n")
	if len(ans.hosts) == 1 {
		w("  - {name: all, hosts: [\"*\"], batch: 1, failure_limit: 0}\n")
	} else {
		w("  - name: canary\n    hosts: [%s]\n    batch: 1\n    failure_limit: 0\n", q(ans.hosts[0].name))
		w("  - name: default\n    hosts: [\"*\"]\n    batch: \"25%%\"\n    failure_limit: \"10%%\"\n")
	}
	w("\n# Config files rendered per host from templates inside the release, and\n")
	w("# validated before any host switches. For example:\n")
	w("# config_files:\n")
	w("#   - template: app.conf.tmpl\n")
	w("#     dest: app.conf\n")
	w("#     validate: \"bin/app -check -config {{.Path}}\"\n")
	w("\n# Directories kept across releases (logs, pid files, uploads): made once as\n")
	w("# <deploy_root>/shared/<dir> and linked into every release before validate.\n")
	w("# shared_dirs: [logs, run]\n")
	w("\n# Commands run on the host in the release directory; values are quoted.\n")
	w("hooks:\n")
	w("  # Starts the switched release; the checks, not this hook, wait for it.\n")
	w("  restart: \"bin/restart {{.Root}}\"\n")
	w("  # Stops the service when a first-ever deploy is rolled back.\n")
	w("  stop: \"bin/stop {{.Root}}\"\n")
	w("  # depool: \"bin/depool\"    # take the host out of the load balancer\n")
	w("  # repool: \"bin/repool\"    # and put it back\n")
	w("\n# Checks run after each restart, each retried until its timeout.\n")
	if ans.portVar != "" {
		w("checks:\n")
		w("  - name: port\n    type: tcp\n    address: \"127.0.0.1:{{.Host.Vars.%s}}\"\n    timeout: 30s\n", ans.portVar)
		w("  # - name: version\n")
		w("  #   type: http\n")
		w("  #   url: \"http://127.0.0.1:{{.Host.Vars.%s}}/version\"\n", ans.portVar)
		w("  #   expect_body: \"{{.Release.Version}}\"\n")
	} else {
		w("# checks:\n")
		w("#   - {name: port, type: tcp, address: \"127.0.0.1:8080\", timeout: 30s}\n")
		w("#   - {name: health, type: http, url: \"http://127.0.0.1:8080/health\", expect_status: 200}\n")
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
