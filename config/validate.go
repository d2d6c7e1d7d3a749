package config

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"drover"
)

// validName is the shape of service, host, group and environment names:
// they end up in paths, lock keys and journal lines, so nothing a shell or
// a file system would read twice.
var validName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

const nameRule = "use letters, digits, '.', '_' and '-' only"

// Validate checks the file: every key on its own, and every fleet it
// describes (the top-level hosts and groups, and each environment applied
// on top of them) resolved and with every template executed for every host.
// It returns nil, one *drover.Error, or several joined with errors.Join,
// ordered by line.
func (f *File) Validate() error {
	_, err := f.check()
	return err
}

// Spec validates the file and returns the spec for environment env ("" for
// none).
func (f *File) Spec(env string) (*drover.Spec, error) {
	if err := f.checkEnv(env); err != nil {
		return nil, err
	}
	specs, err := f.check()
	if err != nil {
		return nil, err
	}
	s, ok := specs[env]
	if !ok {
		// Only the top-level fleet can be missing: it is not a target when
		// environments supply the hosts or groups it lacks.
		return nil, &drover.Error{
			Code:    drover.EINVALID,
			Where:   f.where(f.loc.line(p("environments"))),
			Message: "the top level has no hosts or no groups of its own: choose an environment with --env (" + strings.Join(f.envNames(), ", ") + ")",
			Hint:    "pass --env, or add top-level hosts and groups to deploy without one",
		}
	}
	return s, nil
}

// checkEnv refuses an --env the file does not define, before anything else:
// deploying prod's hosts because "prd" was not found would be the worst
// possible fallback.
func (f *File) checkEnv(env string) error {
	if env == "" {
		return nil
	}
	if len(f.Environments) == 0 {
		return &drover.Error{
			Code:    drover.EINVALID,
			Where:   f.where(f.loc.line(nil)),
			Message: fmt.Sprintf("--env %s given, but the file defines no environments", env),
			Hint:    "drop --env, or add an environments: block with " + env + " to the file",
		}
	}
	if _, ok := f.Environments[env]; !ok {
		return &drover.Error{
			Code:    drover.EINVALID,
			Where:   f.where(f.loc.line(p("environments"))),
			Message: fmt.Sprintf("unknown environment %q", env),
			Hint:    "known environments: " + strings.Join(f.envNames(), ", "),
		}
	}
	return nil
}

func (f *File) envNames() []string {
	names := make([]string, 0, len(f.Environments))
	for name := range f.Environments {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// check validates everything and returns the resolved spec of every fleet
// that is a deploy target, keyed by environment ("" = top level).
func (f *File) check() (map[string]*drover.Spec, error) {
	ps := &problems{f: f}
	base := f.checkScalars(ps)
	f.checkHosts(ps, p("hosts"), f.Hosts)
	f.checkGroups(ps, p("groups"), f.Groups)
	tmpls := f.checkTemplates(ps)

	var fleets []fleet
	if len(f.Environments) == 0 || (len(f.Hosts) > 0 && len(f.Groups) > 0) {
		if len(f.Hosts) == 0 {
			ps.add(p("hosts"), "list the hosts to deploy to under hosts:", "hosts: required, at least one host")
		}
		if len(f.Groups) == 0 {
			ps.add(p("groups"), `add a group, e.g. groups: [{name: all, hosts: ["*"]}]`, "groups: required, at least one group")
		}
		fleets = append(fleets, f.fleet(""))
	}
	for _, name := range f.envNames() {
		env := f.Environments[name]
		at := p("environments", name)
		if !validName.MatchString(name) {
			ps.add(at, nameRule, "environment name %q is not valid", name)
		}
		if env.DeployRoot != "" {
			f.checkRoot(ps, at.with("deploy_root"), env.DeployRoot)
		}
		f.checkHosts(ps, at.with("hosts"), env.Hosts)
		f.checkGroups(ps, at.with("groups"), env.Groups)
		fl := f.fleet(name)
		switch {
		case env.Hosts != nil && len(env.Hosts) == 0:
			ps.add(at.with("hosts"), "list the environment's hosts, or remove the key to use the top-level hosts",
				"environments.%s.hosts: empty; an environment's hosts replace the top-level ones", name)
		case len(fl.hosts) == 0:
			ps.add(fl.hostsAt, "list hosts under environments."+name+".hosts or at the top level",
				"environment %s has no hosts: neither environments.%s.hosts nor the top-level hosts are set", name, name)
		}
		switch {
		case env.Groups != nil && len(env.Groups) == 0:
			ps.add(at.with("groups"), "list the environment's groups, or remove the key to use the top-level groups",
				"environments.%s.groups: empty; an environment's groups replace the top-level ones", name)
		case len(fl.groups) == 0:
			ps.add(fl.groupsAt, "list groups under environments."+name+".groups or at the top level",
				"environment %s has no groups: neither environments.%s.groups nor the top-level groups are set", name, name)
		}
		fleets = append(fleets, fl)
	}

	reqs := f.checkRequires(ps)
	specs := map[string]*drover.Spec{}
	for _, fl := range fleets {
		specs[fl.env] = f.resolve(base, fl, ps, tmpls)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	withRequires(specs, reqs)
	return specs, nil
}

// checkScalars validates the top-level settings, hooks, checks and config
// files and returns a spec holding them with defaults applied.
func (f *File) checkScalars(ps *problems) drover.Spec {
	s := drover.Spec{
		Source:           f.filename,
		Service:          f.Service,
		DeployRoot:       f.DeployRoot,
		KeepReleases:     drover.DefaultKeepReleases,
		Transport:        drover.DefaultTransport,
		StageParallelism: drover.DefaultStageParallelism,
		StepTimeout:      drover.DefaultStepTimeout,
		StageRetries:     drover.DefaultStageRetries,
		Seed:             f.Seed,
	}
	switch {
	case f.Service == "":
		ps.add(p("service"), "name the service, e.g. service: hello", "service: required")
	case !validName.MatchString(f.Service) || f.Service == "." || f.Service == "..":
		ps.add(p("service"), nameRule, "service: %q is not a valid name", f.Service)
	}
	if f.DeployRoot == "" {
		ps.add(p("deploy_root"), "set the directory releases live in on every host, e.g. deploy_root: /srv/hello", "deploy_root: required")
	} else {
		f.checkRoot(ps, p("deploy_root"), f.DeployRoot)
	}
	s.PruneForeign = f.PruneForeign
	if f.KeepReleases != nil {
		s.KeepReleases = *f.KeepReleases
		if *f.KeepReleases < 2 {
			ps.add(p("keep_releases"), "use 2 or more; leave it out for the default of "+strconv.Itoa(drover.DefaultKeepReleases),
				"keep_releases: %d is too small: the current and the previous release are always kept", *f.KeepReleases)
		}
	}
	switch f.Transport {
	case "":
	case "local", "ssh":
		s.Transport = f.Transport
	default:
		ps.add(p("transport"), `use "local" (directories on this machine) or "ssh"`, "transport: %q is not a transport", f.Transport)
	}
	s.SSH = f.checkSSH(ps)
	if f.StateDir != "" {
		dir := f.homePath(ps, p("state_dir"), f.StateDir)
		s.StateDir = f.fromConfigDir(dir)
	}
	if f.StageParallelism != nil {
		s.StageParallelism = *f.StageParallelism
		if *f.StageParallelism < 1 {
			ps.add(p("stage_parallelism"), "use 1 or more; leave it out for "+strconv.Itoa(drover.DefaultStageParallelism),
				"stage_parallelism: %d, must be at least 1", *f.StageParallelism)
		}
	}
	s.StepTimeout = f.duration(ps, p("step_timeout"), f.StepTimeout, drover.DefaultStepTimeout)
	if f.StageRetries != nil {
		s.StageRetries = *f.StageRetries
		if *f.StageRetries < 0 {
			ps.add(p("stage_retries"), "use 0 (no retries) or more", "stage_retries: %d is negative", *f.StageRetries)
		}
	}

	f.checkObservability(ps, &s)

	dests := map[string]int{}
	for i, c := range f.ConfigFiles {
		at := p("config_files", i)
		f.checkReleasePath(ps, at.with("template"), c.Template)
		f.checkReleasePath(ps, at.with("dest"), c.Dest)
		if j, dup := dests[c.Dest]; dup && c.Dest != "" {
			ps.add(at.with("dest"), "give each config file its own dest",
				"config_files[%d].dest: %q is already the dest of config_files[%d]", i, c.Dest, j)
		} else {
			dests[c.Dest] = i
		}
		s.ConfigFiles = append(s.ConfigFiles, drover.ConfigFile{Template: c.Template, Dest: c.Dest, Validate: c.Validate,
			Mode: checkFileMode(ps, at.with("mode"), c.Mode), Owner: checkOwner(ps, at.with("owner"), c.Owner), Group: checkOwner(ps, at.with("group"), c.Group)})
	}
	s.SharedDirs = f.checkSharedDirs(ps)

	s.Hooks = drover.Hooks{
		Restart:        f.Hooks.Restart,
		Stop:           f.Hooks.Stop,
		Depool:         f.Hooks.Depool,
		WaitIdle:       f.Hooks.WaitIdle,
		Repool:         f.Hooks.Repool,
		BeforeStage:    f.Hooks.BeforeStage,
		AfterStage:     f.Hooks.AfterStage,
		BeforePromote:  f.Hooks.BeforePromote,
		AfterPromote:   f.Hooks.AfterPromote,
		BeforeRestart:  f.Hooks.BeforeRestart,
		AfterRestart:   f.Hooks.AfterRestart,
		BeforeRollback: f.Hooks.BeforeRollback,
		AfterRollback:  f.Hooks.AfterRollback,
		Replace:        f.Hooks.Replace,
		Timeout:        f.duration(ps, p("hooks", "timeout"), f.Hooks.Timeout, drover.DefaultHookTimeout),
	}
	s.Retry = f.checkRetry(ps)
	s.Converge = f.checkConverge(ps)
	s.Inventory = f.checkInventory(ps)
	s.Rotation = f.checkRotation(ps)
	f.checkBlueGreen(ps, &s)

	names := map[string]keyPath{}
	for i, c := range f.Checks {
		s.Checks = append(s.Checks, f.checkCheck(ps, p("checks", i), c, names))
	}
	s.Smoke = f.checkSmoke(ps, p("smoke"), f.Smoke)
	s.Invariants = f.checkInvariants(ps)
	s.Analysis = f.checkAnalyses(ps, p("analysis"), f.Analysis)
	s.Distribution = f.checkDistribution(ps)
	return s
}

// checkCheck validates the check at at (checks[i], smoke[i],
// groups[g].smoke[i]) and returns it with defaults applied. names holds the
// names already taken in its list.
func (f *File) checkCheck(ps *problems, at keyPath, c CheckFile, names map[string]keyPath) drover.CheckSpec {
	out := drover.CheckSpec{
		Name:          c.Name,
		Type:          c.Type,
		Address:       c.Address,
		URL:           c.URL,
		ExpectBody:    c.ExpectBody,
		ExpectHeaders: c.ExpectHeaders,
		Command:       c.Command,
		Path:          c.Path,
		Pattern:       c.Pattern,
		Absent:        c.Absent != nil && *c.Absent,
		Timeout:       f.duration(ps, at.with("timeout"), c.Timeout, drover.DefaultCheckTimeout),
		Interval:      f.duration(ps, at.with("interval"), c.Interval, drover.DefaultCheckInterval),
	}
	switch j, dup := names[c.Name]; {
	case c.Name == "":
		ps.add(at, "name the check, e.g. name: port; names appear in events and errors", "%s.name: required", at)
	case dup:
		ps.add(at.with("name"), "give each check its own name", "%s.name: %q is already the name of %s", at, c.Name, j)
	default:
		names[c.Name] = at
	}
	// only lists the keys that belong to other types: a tcp check with a
	// url was meant to be an http check, and silently ignoring the url
	// would pass a check that tests nothing the operator asked for.
	only := func(key string, set bool, typ string) {
		if set && c.Type != typ {
			ps.add(at.with(key), fmt.Sprintf("remove %s, or make the check type %s", key, typ),
				"%s.%s: only %s checks use %s", at, key, typ, key)
		}
	}
	required := func(key, value string) {
		if value == "" {
			ps.add(at.with("type"), fmt.Sprintf("add %s to the check", key),
				"%s: type %s needs %s", at, c.Type, key)
		}
	}
	switch c.Type {
	case "tcp":
		required("address", c.Address)
		if c.Address != "" && !strings.Contains(c.Address, "{{") {
			if _, _, err := net.SplitHostPort(c.Address); err != nil {
				ps.add(at.with("address"), `write host:port, e.g. "127.0.0.1:{{.Host.Vars.port}}"`,
					"%s.address: %q is not host:port", at, c.Address)
			}
		}
	case "http":
		required("url", c.URL)
		out.ExpectStatus = 200
		if c.ExpectStatus != nil {
			out.ExpectStatus = *c.ExpectStatus
			if *c.ExpectStatus < 100 || *c.ExpectStatus > 599 {
				ps.add(at.with("expect_status"), "use an HTTP status code between 100 and 599; leave it out for 200",
					"%s.expect_status: %d is not an HTTP status", at, *c.ExpectStatus)
			}
		}
	case "command":
		required("command", c.Command)
	case "log":
		f.checkLogCheck(ps, at, c, &out)
	case "":
		ps.add(at, "add type: tcp, http, command or log", "%s.type: required", at)
	default:
		ps.add(at.with("type"), "use tcp, http, command or log", "%s.type: %q is not a check type", at, c.Type)
	}
	if c.Type == "tcp" || c.Type == "http" || c.Type == "command" || c.Type == "log" {
		only("address", c.Address != "", "tcp")
		only("url", c.URL != "", "http")
		only("expect_status", c.ExpectStatus != nil, "http")
		only("expect_body", c.ExpectBody != "", "http")
		only("expect_headers", len(c.ExpectHeaders) > 0, "http")
		only("command", c.Command != "", "command")
		only("path", c.Path != "", "log")
		only("pattern", c.Pattern != "", "log")
		only("absent", c.Absent != nil, "log")
		only("window", c.Window != "", "log")
	}
	return out
}

// checkLogCheck validates what only a log check has. The pattern is
// compiled here, so a typo in it stops the deploy before any host
// restarts instead of failing the check on the canary.
func (f *File) checkLogCheck(ps *problems, at keyPath, c CheckFile, out *drover.CheckSpec) {
	if c.Path == "" {
		ps.add(at.with("type"), `add path, e.g. path: "{{.Root}}/run/app.log"`, "%s: type log needs path", at)
	} else if !strings.Contains(c.Path, "{{") && !path.IsAbs(c.Path) {
		ps.add(at.with("path"), `write an absolute path on the host, e.g. "/var/log/app.log" or "{{.Root}}/run/app.log"`,
			"%s.path: %q is not an absolute path", at, c.Path)
	}
	if c.Pattern == "" {
		ps.add(at.with("type"), `add pattern, a Go regexp, e.g. pattern: "listening on"`, "%s: type log needs pattern", at)
	} else if _, err := regexp.Compile(c.Pattern); err != nil {
		ps.add(at.with("pattern"), "write a Go regexp (RE2 syntax: https://golang.org/s/re2syntax)",
			"%s.pattern: %q does not compile: %v", at, c.Pattern, err)
	}
	if c.Window != "" && !out.Absent {
		ps.add(at.with("window"), "remove window, or set absent: true; a check for a line that must appear waits until its timeout",
			"%s.window: only absent: true log checks watch for a window", at)
	}
	if !out.Absent {
		return
	}
	out.Window = f.duration(ps, at.with("window"), c.Window, drover.DefaultLogWindow)
	// The check retries every interval until its timeout; a window that
	// does not end well before the timeout could never pass.
	if out.Window > 0 && out.Timeout > 0 && out.Window+2*out.Interval > out.Timeout {
		ps.add(at.with("window"), fmt.Sprintf("raise timeout to at least %v, or shorten window", out.Window+2*out.Interval),
			"%s: window %v plus two intervals (%v) does not fit in timeout %v", at, out.Window, out.Interval, out.Timeout)
	}
}

// checkHosts validates host entries on their own: names, addresses, roots.
func (f *File) checkHosts(ps *problems, at keyPath, hosts []HostFile) {
	seen := map[string]int{}
	for i, h := range hosts {
		hat := at.with(i)
		switch j, dup := seen[h.Name]; {
		case h.Name == "":
			ps.add(hat, "name the host, e.g. name: h01", "%s.name: required", hat)
		case !validName.MatchString(h.Name) || h.Name == "." || h.Name == "..":
			ps.add(hat.with("name"), nameRule, "%s.name: %q is not a valid host name", hat, h.Name)
		case dup:
			ps.add(hat.with("name"), "give each host its own name",
				"%s.name: host %q is already defined at %s", hat, h.Name, at.with(j))
		default:
			seen[h.Name] = i
		}
		f.checkAddress(ps, hat, h.Address)
		if h.DeployRoot != "" {
			f.checkRoot(ps, hat.with("deploy_root"), h.DeployRoot)
		}
	}
}

func (f *File) checkAddress(ps *problems, hat keyPath, addr string) {
	if addr == "" {
		hint := "for transport local, the host's directory, e.g. address: ./fleet/h01"
		if f.Transport == "ssh" {
			hint = "for transport ssh, host or host:port, e.g. address: web01.example.com"
		}
		ps.add(hat, hint, "%s.address: required", hat)
		return
	}
	if f.Transport != "ssh" {
		f.homePath(ps, hat.with("address"), addr)
		return
	}
	bad := func(why string) {
		ps.add(hat.with("address"), "for transport ssh, write host or host:port; IPv6 as [::1]:22",
			"%s.address: %q is not host[:port]: %s", hat, addr, why)
	}
	if strings.ContainsAny(addr, " \t/@") {
		bad("it holds a space, '/' or '@' (the user goes in ssh.user)")
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if ae, ok := err.(*net.AddrError); !ok || ae.Err != "missing port in address" {
			why := err.Error()
			if ok {
				why = ae.Err
			}
			bad(why)
			return
		}
		host, port = addr, ""
	}
	if host == "" {
		bad("no host")
		return
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			bad("bad port " + strconv.Quote(port))
		}
	}
}

// checkGroups validates group entries on their own; which hosts they take
// is decided per fleet by resolve.
func (f *File) checkGroups(ps *problems, at keyPath, groups []GroupFile) {
	seen := map[string]int{}
	for i, g := range groups {
		gat := at.with(i)
		switch j, dup := seen[g.Name]; {
		case g.Name == "":
			ps.add(gat, "name the group, e.g. name: canary", "%s.name: required", gat)
		case !validName.MatchString(g.Name):
			ps.add(gat.with("name"), nameRule, "%s.name: %q is not a valid group name", gat, g.Name)
		case dup:
			ps.add(gat.with("name"), "give each group its own name",
				"%s.name: group %q is already defined at %s", gat, g.Name, at.with(j))
		default:
			seen[g.Name] = i
		}
		if len(g.Hosts) == 0 {
			ps.add(gat, `list host names or globs, e.g. hosts: ["web*"]`, "%s.hosts: required, at least one host name or pattern", gat)
		}
		for k, pat := range g.Hosts {
			if _, err := path.Match(pat, ""); err != nil || pat == "" {
				ps.add(gat.with("hosts", k), `use a host name or a glob like "web*" or "h0[1-4]"`,
					"%s.hosts[%d]: %q is not a valid pattern", gat, k, pat)
			}
		}
		if g.Batch != "" {
			if pt, err := parsePortion(g.Batch); err != nil {
				ps.add(gat.with("batch"), `use a number of hosts (1 or more) or a percentage of the group, e.g. batch: "25%"`,
					"%s.batch: %v", gat, err)
			} else if pt.n < 1 {
				ps.add(gat.with("batch"), `use 1 or more hosts, or a percentage from "1%" to "100%"`,
					"%s.batch: %q promotes no host at all", gat, g.Batch)
			}
		}
		if g.FailureLimit != "" {
			if _, err := parsePortion(g.FailureLimit); err != nil {
				ps.add(gat.with("failure_limit"), `use a number of hosts (0 or more) or a percentage of the group, e.g. failure_limit: "10%"`,
					"%s.failure_limit: %v", gat, err)
			}
		}
	}
}

// checkRoot validates a deploy root: an absolute, clean path on the host.
// Hosts are POSIX machines whatever runs drover, hence path, not filepath.
func (f *File) checkRoot(ps *problems, at keyPath, root string) {
	if !path.IsAbs(root) {
		ps.add(at, "use an absolute path, e.g. /srv/"+f.serviceOr("hello"), "%s: %q is not an absolute path", at, root)
		return
	}
	if c := path.Clean(root); c != root {
		ps.add(at, fmt.Sprintf("write it as %q", c), "%s: %q is not a clean path", at, root)
	}
}

// checkReleasePath validates a path inside the release directory: relative,
// clean and never climbing out with "..", so a config file can neither be
// read from nor written to outside the release.
func (f *File) checkReleasePath(ps *problems, at keyPath, rel string) {
	hint := "use a relative path inside the release, e.g. etc/hello.conf"
	switch {
	case rel == "":
		ps.add(at, hint, "%s: required", at)
	case path.IsAbs(rel):
		ps.add(at, hint, "%s: %q is absolute; it must be a path inside the release", at, rel)
	case rel == ".." || strings.HasPrefix(rel, "../") || strings.Contains(rel, "/../") || strings.HasSuffix(rel, "/.."):
		ps.add(at, hint, "%s: %q leaves the release directory", at, rel)
	case rel == ".":
		ps.add(at, hint, "%s: %q is the release directory itself, not a file in it", at, rel)
	case path.Clean(rel) != rel:
		ps.add(at, fmt.Sprintf("write it as %q", path.Clean(rel)), "%s: %q is not a clean path", at, rel)
	}
}

func (f *File) serviceOr(def string) string {
	if validName.MatchString(f.Service) {
		return f.Service
	}
	return def
}

// duration parses a Go duration that must be positive; "" is def.
func (f *File) duration(ps *problems, at keyPath, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		ps.add(at, fmt.Sprintf(`write a duration with a unit, like "30s", "2m" or "1m30s"; leave it out for %v`, def),
			"%s: %q is not a duration", at, s)
		return def
	}
	if d <= 0 {
		ps.add(at, fmt.Sprintf("use a positive duration; leave it out for %v", def), "%s: %q must be more than 0", at, s)
		return def
	}
	return d
}

// homePath expands a leading "~/" to the home directory of the user
// running drover. "~user/" is refused rather than left as a literal
// directory named "~user".
func (f *File) homePath(ps *problems, at keyPath, s string) string {
	out, err := expandHome(s)
	if err != nil {
		ps.add(at, `write "~/..." or a full path`, "%s: %q: %v", at, s, err)
		return s
	}
	return out
}

func expandHome(s string) (string, error) {
	if s != "~" && !strings.HasPrefix(s, "~/") {
		if strings.HasPrefix(s, "~") {
			return s, fmt.Errorf("only ~/ is expanded, not ~user/")
		}
		return s, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return s, fmt.Errorf("cannot expand ~: %v", err)
	}
	return home + s[1:], nil
}

// checkSSH validates the ssh block and returns it with defaults applied.
// Paths are expanded (~/) and made absolute against the config file's
// directory, so drover run from another directory reads the same keys.
func (f *File) checkSSH(ps *problems) drover.SSHConfig {
	c := drover.SSHConfig{
		User:               f.SSH.User,
		Port:               drover.DefaultSSHPort,
		TrustOnFirstUse:    f.SSH.TrustOnFirstUse,
		ConnectParallelism: drover.DefaultSSHConnectParallelism,
	}
	path := func(key, v string) string {
		if v == "" {
			return ""
		}
		return f.fromConfigDir(f.homePath(ps, p("ssh", key), v))
	}
	c.Identity = path("identity", f.SSH.Identity)
	c.KnownHosts = path("known_hosts", f.SSH.KnownHosts)
	c.HostBinary = path("host_binary", f.SSH.HostBinary)
	if f.SSH.Port != nil {
		c.Port = *f.SSH.Port
		if *f.SSH.Port < 1 || *f.SSH.Port > 65535 {
			ps.add(p("ssh", "port"), "use a TCP port between 1 and 65535; leave it out for 22", "ssh.port: %d is not a port", *f.SSH.Port)
		}
	}
	if j := f.SSH.ProxyJump; j != "" {
		c.ProxyJump = j
		if why := hostPortProblem(j); why != "" {
			ps.add(p("ssh", "proxy_jump"), "write the jump host as host or host:port, e.g. proxy_jump: bastion.example.com:22; it uses ssh.user and ssh.identity",
				"ssh.proxy_jump: %q is not host[:port]: %s", j, why)
		}
	}
	c.ConnectTimeout = f.duration(ps, p("ssh", "connect_timeout"), f.SSH.ConnectTimeout, drover.DefaultSSHConnectTimeout)
	c.KeepaliveInterval = f.duration(ps, p("ssh", "keepalive_interval"), f.SSH.KeepaliveInterval, drover.DefaultSSHKeepaliveInterval)
	c.KeepaliveCount = drover.DefaultSSHKeepaliveCount
	if f.SSH.KeepaliveCount != nil {
		c.KeepaliveCount = *f.SSH.KeepaliveCount
		if c.KeepaliveCount < 1 {
			ps.add(p("ssh", "keepalive_count"), "use 1 or more; leave it out for "+strconv.Itoa(drover.DefaultSSHKeepaliveCount),
				"ssh.keepalive_count: %d, must be at least 1", c.KeepaliveCount)
		}
	}
	if f.SSH.ConnectParallelism != nil {
		c.ConnectParallelism = *f.SSH.ConnectParallelism
		if c.ConnectParallelism < 1 {
			ps.add(p("ssh", "connect_parallelism"), "use 1 or more; leave it out for "+strconv.Itoa(drover.DefaultSSHConnectParallelism),
				"ssh.connect_parallelism: %d, must be at least 1", c.ConnectParallelism)
		}
	}
	return c
}

// hostPortProblem says why addr is not host or host:port ("" when it is).
func hostPortProblem(addr string) string {
	if strings.ContainsAny(addr, " \t/@") {
		return "it holds a space, '/' or '@' (the user goes in ssh.user)"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		ae, ok := err.(*net.AddrError)
		if !ok || ae.Err != "missing port in address" {
			if ok {
				return ae.Err
			}
			return err.Error()
		}
		host, port = addr, ""
	}
	if host == "" {
		return "no host"
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "bad port " + strconv.Quote(port)
		}
	}
	return ""
}

// checkFileMode parses a config file's mode: octal digits, with or
// without a leading 0 or 0o, permission bits only, readable by its owner
// (the service must read its config). "" is drover.DefaultConfigFileMode.
func checkFileMode(ps *problems, at keyPath, m FileMode) fs.FileMode {
	if m == "" {
		return drover.DefaultConfigFileMode
	}
	s := strings.TrimPrefix(strings.TrimPrefix(string(m), "0o"), "0O")
	n, err := strconv.ParseUint(s, 8, 32)
	const hint = `write the permission bits in octal, e.g. mode: "0640" (owner rw, group r) or "0600"; the default is 0640`
	switch {
	case err != nil:
		ps.add(at, hint, "%s: %q is not an octal mode", at, string(m))
	case n > 0o777:
		ps.add(at, hint+"; setuid, setgid and sticky bits are refused", "%s: %s has bits beyond rwxrwxrwx", at, string(m))
	case n&0o400 == 0:
		ps.add(at, hint, "%s: %s: the file's owner could not read it", at, string(m))
	default:
		return fs.FileMode(n)
	}
	return drover.DefaultConfigFileMode
}

// checkOwner accepts a user or group name, or a numeric id.
func checkOwner(ps *problems, at keyPath, name string) string {
	if name != "" && !validOwner.MatchString(name) {
		ps.add(at, "name a user or group that exists on the hosts (e.g. app), or its numeric id", "%s: %q is not a user or group name", at, name)
	}
	return name
}

var validOwner = regexp.MustCompile(`^([a-z_][a-z0-9_.-]*\$?|[0-9]+)$`)

// checkSharedDirs checks shared_dirs: each a clean relative path inside
// the release (it becomes a link there and a directory under
// <deploy_root>/shared), none inside another, and no config file rendered
// into one — it would be written through the link into the directory
// every release shares, and no rollback would take it back.
func (f *File) checkSharedDirs(ps *problems) []string {
	var out []string
	hint := "name a directory inside the release, like logs or var/run; shared_dirs: [logs, run]"
	for i, d := range f.SharedDirs {
		at := p("shared_dirs", i)
		if err := drover.CheckSharedDir(d); err != nil {
			ps.add(at, hint, "shared_dirs[%d]: %v", i, err)
			continue
		}
		if x, y, ok := drover.SharedDirsOverlap(append(out[:len(out):len(out)], d)); ok {
			ps.add(at, "list a directory once, and not also one inside it",
				"shared_dirs[%d]: %q and %q overlap", i, x, y)
			continue
		}
		out = append(out, d)
	}
	for i, c := range f.ConfigFiles {
		if c.Dest == "" {
			continue
		}
		if s := drover.InSharedDir(c.Dest, out); s != "" {
			ps.add(p("config_files", i, "dest"), "render config files into the release itself, outside the shared dirs",
				"config_files[%d].dest: %q is inside shared dir %q, which every release shares", i, c.Dest, s)
		}
	}
	return out
}
