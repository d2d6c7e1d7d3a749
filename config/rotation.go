package config

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"drover"
)

// RotationFile is the rotation block: native load balancer integrations.
type RotationFile struct {
	HAProxy *HAProxyFile `yaml:"haproxy"`
}

// HAProxyFile is rotation.haproxy: a backend whose servers are the hosts,
// driven through HAProxy's runtime API.
type HAProxyFile struct {
	// Socket is the stats socket (level admin): a unix socket path or
	// host:port, on the machine running drover.
	Socket  string `yaml:"socket"`
	Backend string `yaml:"backend"`
	// Server is a template naming each host's server; default
	// {{.Host.Name}}.
	Server       string `yaml:"server"`
	DrainTimeout string `yaml:"drain_timeout"`
	UpTimeout    string `yaml:"up_timeout"`
}

// haproxyName is what HAProxy accepts as a proxy or server name, and what
// drover sends on its runtime API: the API splits on spaces and ';', so a
// server name from a host var must not carry either (a second command would
// run with admin rights).
var haproxyName = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

const haproxyNameRule = "HAProxy names hold letters, digits, '.', '_', ':' and '-' only"

// checkRotation validates the rotation block and returns it with defaults
// applied. The server template is executed per host by execTemplates and
// its results checked by checkServerNames.
func (f *File) checkRotation(ps *problems) drover.RotationSpec {
	var out drover.RotationSpec
	hf := f.Rotation.HAProxy
	if hf == nil {
		return out
	}
	at := p("rotation", "haproxy")
	hp := &drover.HAProxyRotation{
		Backend:      hf.Backend,
		Server:       hf.Server,
		DrainTimeout: f.duration(ps, at.with("drain_timeout"), hf.DrainTimeout, drover.DefaultDrainTimeout),
		UpTimeout:    f.duration(ps, at.with("up_timeout"), hf.UpTimeout, drover.DefaultHAProxyUpTimeout),
	}
	if hp.Server == "" {
		hp.Server = drover.DefaultHAProxyServer
	}
	switch s := hf.Socket; {
	case s == "":
		ps.add(at, "name HAProxy's stats socket, declared in haproxy.cfg as `stats socket /run/haproxy/admin.sock level admin`",
			"rotation.haproxy.socket: required")
	case isHostPort(s):
		hp.Socket = s
	default:
		hp.Socket = f.fromConfigDir(f.homePath(ps, at.with("socket"), s))
	}
	switch {
	case hf.Backend == "":
		ps.add(at, "name the backend in haproxy.cfg whose servers are the hosts, e.g. backend: web", "rotation.haproxy.backend: required")
	case !haproxyName.MatchString(hf.Backend):
		ps.add(at.with("backend"), haproxyNameRule, "rotation.haproxy.backend: %q is not an HAProxy backend name", hf.Backend)
	}
	out.HAProxy = hp
	return out
}

// isHostPort reports whether s is host:port with a numeric port, as
// opposed to a socket path.
func isHostPort(s string) bool {
	if strings.Contains(s, "/") {
		return false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}

// checkServerNames renders rotation.haproxy.server for every host of s
// and refuses names the runtime API cannot carry and names two hosts
// share: depooling one host would take the other out, and repooling it
// would put back a server that is restarting.
func (f *File) checkServerNames(ps *problems, s *drover.Spec, fl fleet) {
	hp := s.Rotation.HAProxy
	if hp == nil {
		return
	}
	at := p("rotation", "haproxy", "server")
	owner := map[string]string{}
	for _, h := range s.Hosts {
		name, err := drover.Render(at.String(), hp.Server, drover.NewTemplateData(s, h, "RELEASE-ID", "VERSION"))
		if err != nil {
			return // reported by execTemplates
		}
		if !haproxyName.MatchString(name) {
			ps.add(at, haproxyNameRule+"; the template renders the server name of each host",
				"rotation.haproxy.server: host %s gets server name %q%s, which is not an HAProxy server name", h.Name, name, fl.note(at, fl.templateNote))
			return
		}
		if other, dup := owner[name]; dup {
			ps.add(at, "make the template give each host its own server, e.g. {{.Host.Name}}",
				"rotation.haproxy.server: hosts %s and %s both get server name %q%s", other, h.Name, name, fl.note(at, fl.templateNote))
			return
		}
		owner[name] = h.Name
	}
}

// checkAllAtOnce refuses a group of more than one host whose batch is the
// whole group: every host out of rotation and restarting at once is an
// outage, and it is how a forgotten --limit or a "100%" meant for a
// canary of one takes a service down. A group that means it says
// allow_all_at_once: true.
func (f *File) checkAllAtOnce(ps *problems, fl fleet, gat keyPath, gf GroupFile, g drover.Group) {
	n := len(g.Hosts)
	if n < 2 || g.Batch < n || gf.AllowAllAtOnce {
		return
	}
	at := gat.with("batch")
	ps.add(at, fmt.Sprintf(`use a smaller batch, e.g. batch: "50%%" (%d hosts at a time), or add allow_all_at_once: true to the group if taking every host out at once is meant`, (n+1)/2),
		"%s: batch %q takes all %d hosts of group %q out at once%s", at, gf.Batch, n, gf.Name, fl.note(gat, fl.coverageNote))
}

// lifecycleHook is one lifecycle hook of the hooks block.
type lifecycleHook struct{ key, text string }

// lifecycle lists the lifecycle hooks and wait_idle, for template checks.
func (h HooksFile) lifecycle() []lifecycleHook {
	return []lifecycleHook{
		{"wait_idle", h.WaitIdle},
		{"before_stage", h.BeforeStage}, {"after_stage", h.AfterStage},
		{"before_promote", h.BeforePromote}, {"after_promote", h.AfterPromote},
		{"before_restart", h.BeforeRestart}, {"after_restart", h.AfterRestart},
		{"before_rollback", h.BeforeRollback}, {"after_rollback", h.AfterRollback},
	}
}
