package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/notify"
	sshtransport "drover/transport/ssh"
)

// marker marks the line a case expects its error on.
const marker = "# <-"

// errCase is one rule: the file, the line its error must name (the line
// holding marker) and a substring of the message.
type errCase struct {
	name string
	yaml string
	env  string
	msg  string
}

// runErrCases parses each case and asserts an EINVALID error at the marked
// line whose message holds msg.
func runErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Helper()
			line := markedLine(t, tc.yaml)
			_, err := Parse("drover.yaml", []byte(tc.yaml), tc.env)
			assertErrAt(t, err, line, tc.msg)
		})
	}
}

func markedLine(t *testing.T, doc string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("case has no %q marker", marker)
	return 0
}

// allErrors flattens errors.Join into its *drover.Errors.
func allErrors(err error) []*drover.Error {
	var out []*drover.Error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, allErrors(e)...)
		}
		return out
	}
	var de *drover.Error
	if errors.As(err, &de) {
		out = append(out, de)
	}
	return out
}

func assertErrAt(t *testing.T, err error, line int, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one at line %d with %q", line, msg)
	}
	if code := drover.ErrorCode(err); code != drover.EINVALID {
		t.Fatalf("code %q, want %q: %v", code, drover.EINVALID, err)
	}
	errs := allErrors(err)
	if len(errs) == 0 {
		t.Fatalf("not a *drover.Error: %T %v", err, err)
	}
	for _, e := range errs {
		if e.Code != drover.EINVALID || e.Hint == "" || e.Message == "" {
			t.Errorf("error without code, message or hint: %#v", e)
		}
	}
	where := fmt.Sprintf("drover.yaml:%d", line)
	for _, e := range errs {
		if e.Where == where && strings.Contains(e.Message, msg) {
			return
		}
	}
	t.Fatalf("want an error at %s containing %q, got:\n%v", where, msg, err)
}

func TestConfig_Validate_Top(t *testing.T) {
	const fleet = `hosts: [{name: h01, address: /f/h01}]
groups: [{name: all, hosts: ["*"]}]
`
	runErrCases(t, []errCase{
		{"service required", "deploy_root: /srv/x # <-\n" + fleet, "", "service: required"},
		{"service name", "service: hel lo # <-\ndeploy_root: /srv/x\n" + fleet, "", `service: "hel lo" is not a valid name`},
		{"deploy_root required", "service: x # <-\n" + fleet, "", "deploy_root: required"},
		{"deploy_root relative", "service: x\ndeploy_root: srv/x # <-\n" + fleet, "", `deploy_root: "srv/x" is not an absolute path`},
		{"deploy_root unclean", "service: x\ndeploy_root: /srv/x/../y # <-\n" + fleet, "", "is not a clean path"},
		{"keep_releases 1", "service: x\ndeploy_root: /srv/x\nkeep_releases: 1 # <-\n" + fleet, "", "keep_releases: 1 is too small"},
		{"keep_releases 0", "service: x\ndeploy_root: /srv/x\nkeep_releases: 0 # <-\n" + fleet, "", "keep_releases: 0 is too small"},
		{"transport", "service: x\ndeploy_root: /srv/x\ntransport: ftp # <-\n" + fleet, "", `transport: "ftp" is not a transport`},
		{"ssh port", "service: x\ndeploy_root: /srv/x\nssh:\n  port: 70000 # <-\n" + fleet, "", "ssh.port: 70000 is not a port"},
		{"ssh identity ~user", "service: x\ndeploy_root: /srv/x\nssh: {identity: ~bob/id} # <-\n" + fleet, "", "only ~/ is expanded"},
		{"ssh proxy_jump user", "service: x\ndeploy_root: /srv/x\nssh:\n  proxy_jump: me@bastion # <-\n" + fleet, "", `ssh.proxy_jump: "me@bastion" is not host[:port]`},
		{"ssh proxy_jump port", "service: x\ndeploy_root: /srv/x\nssh:\n  proxy_jump: 'bastion:0' # <-\n" + fleet, "", "bad port"},
		{"ssh connect_timeout", "service: x\ndeploy_root: /srv/x\nssh:\n  connect_timeout: 5 # <-\n" + fleet, "", `ssh.connect_timeout: "5" is not a duration`},
		{"ssh keepalive_interval", "service: x\ndeploy_root: /srv/x\nssh:\n  keepalive_interval: 0s # <-\n" + fleet, "", "must be more than 0"},
		{"ssh connect_parallelism", "service: x\ndeploy_root: /srv/x\nssh:\n  connect_parallelism: 0 # <-\n" + fleet, "", "ssh.connect_parallelism: 0, must be at least 1"},
		{"ssh keepalive_count", "service: x\ndeploy_root: /srv/x\nssh:\n  keepalive_count: 0 # <-\n" + fleet, "", "ssh.keepalive_count: 0, must be at least 1"},
		{"ssh trust_on_first_use", "service: x\ndeploy_root: /srv/x\nssh:\n  trust_on_first_use: maybe # <-\n" + fleet, "", "trust_on_first_use"},
		{"ssh host_binary ~user", "service: x\ndeploy_root: /srv/x\nssh: {host_binary: ~bob/drover} # <-\n" + fleet, "", "only ~/ is expanded"},
		{"state_dir ~user", "service: x\ndeploy_root: /srv/x\nstate_dir: ~bob/s # <-\n" + fleet, "", "state_dir"},
		{"stage_parallelism 0", "service: x\ndeploy_root: /srv/x\nstage_parallelism: 0 # <-\n" + fleet, "", "stage_parallelism: 0, must be at least 1"},
		{"step_timeout no unit", "service: x\ndeploy_root: /srv/x\nstep_timeout: 10 # <-\n" + fleet, "", `step_timeout: "10" is not a duration`},
		{"step_timeout zero", "service: x\ndeploy_root: /srv/x\nstep_timeout: 0s # <-\n" + fleet, "", "must be more than 0"},
		{"step_timeout negative", "service: x\ndeploy_root: /srv/x\nstep_timeout: -1m # <-\n" + fleet, "", "must be more than 0"},
		{"stage_retries negative", "service: x\ndeploy_root: /srv/x\nstage_retries: -1 # <-\n" + fleet, "", "stage_retries: -1 is negative"},
		{"hosts required", "service: x # <-\ndeploy_root: /srv/x\ngroups: [{name: all, hosts: ['*']}]\n", "", "hosts: required"},
		{"groups required", "service: x # <-\ndeploy_root: /srv/x\nhosts: [{name: h01, address: /f}]\n", "", "groups: required"},
		{"groups empty", "service: x\ndeploy_root: /srv/x\nhosts: [{name: h01, address: /f}]\ngroups: [] # <-\n", "", "groups: required"},
	})
}

const top = "service: x\ndeploy_root: /srv/x\n"

func TestConfig_Validate_Hosts(t *testing.T) {
	const groups = "groups: [{name: all, hosts: ['*']}]\n"
	runErrCases(t, []errCase{
		{"name required", top + "hosts:\n  - address: /f/a # <-\n" + groups, "", "hosts[0].name: required"},
		{"name charset", top + "hosts:\n  - name: h/1 # <-\n    address: /f/a\n" + groups, "", `hosts[0].name: "h/1" is not a valid host name`},
		{"name dotdot", top + "hosts:\n  - {name: .., address: /f/a} # <-\n" + groups, "", "is not a valid host name"},
		{"duplicate", top + "hosts:\n  - name: h01\n    address: /f/a\n  - name: h01 # <-\n    address: /f/b\n" + groups, "", `host "h01" is already defined at hosts[0]`},
		{"address required", top + "hosts:\n  - name: h01 # <-\n" + groups, "", "hosts[0].address: required"},
		{"address ssh path", top + "transport: ssh\nhosts:\n  - name: h01\n    address: /srv/h01 # <-\n" + groups, "", "is not host[:port]"},
		{"address ssh user", top + "transport: ssh\nhosts:\n  - {name: h01, address: deploy@web1} # <-\n" + groups, "", "is not host[:port]"},
		{"address ssh port", top + "transport: ssh\nhosts:\n  - {name: h01, address: 'web1:99999'} # <-\n" + groups, "", "bad port"},
		{"address ssh bare ipv6", top + "transport: ssh\nhosts:\n  - {name: h01, address: '::1'} # <-\n" + groups, "", "is not host[:port]"},
		{"deploy_root relative", top + "hosts:\n  - name: h01\n    address: /f\n    deploy_root: srv # <-\n" + groups, "", `hosts[0].deploy_root: "srv" is not an absolute path`},
		{"in no group", top + "hosts:\n  - {name: h01, address: /f/1}\n  - {name: db1, address: /f/2} # <-\ngroups: [{name: web, hosts: ['h*']}]\n", "", `host "db1" is in no group`},
	})
}

func TestConfig_Validate_Groups(t *testing.T) {
	const hosts = "hosts: [{name: h01, address: /f/1}, {name: h02, address: /f/2}]\n"
	runErrCases(t, []errCase{
		{"name required", top + hosts + "groups:\n  - hosts: ['*'] # <-\n", "", "groups[0].name: required"},
		{"name charset", top + hosts + "groups:\n  - name: a b # <-\n    hosts: ['*']\n", "", "is not a valid group name"},
		{"duplicate", top + hosts + "groups:\n  - {name: a, hosts: [h01]}\n  - {name: a, hosts: [h02]} # <-\n", "", `group "a" is already defined at groups[0]`},
		{"hosts required", top + hosts + "groups:\n  - name: a # <-\n", "", "groups[0].hosts: required"},
		{"bad pattern", top + hosts + "groups:\n  - name: a\n    hosts:\n      - '*'\n      - 'h[' # <-\n", "", `"h[" is not a valid pattern`},
		{"pattern matches nothing", top + hosts + "groups:\n  - name: a\n    hosts:\n      - h01\n      - web* # <-\n  - {name: b, hosts: ['*']}\n", "", `pattern "web*" matches no host`},
		{"group left empty", top + hosts + "groups:\n  - {name: a, hosts: ['*']}\n  - name: b\n    hosts: [h02] # <-\n", "", `group "b" ends up with no hosts`},
		{"batch 150%", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    batch: 150% # <-\n", "", "is more than 100%"},
		{"batch 0%", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    batch: 0% # <-\n", "", "promotes no host at all"},
		{"batch 0", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    batch: 0 # <-\n", "", "promotes no host at all"},
		{"batch abc", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    batch: abc # <-\n", "", `"abc" is not a whole number of hosts`},
		{"batch -1", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    batch: -1 # <-\n", "", `"-1" is not a whole number`},
		{"batch fraction", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    batch: 1.5 # <-\n", "", `"1.5" is not a whole number`},
		{"failure_limit 101%", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    failure_limit: 101% # <-\n", "", "failure_limit"},
		{"failure_limit -1", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    failure_limit: -1 # <-\n", "", "groups[0].failure_limit"},
		{"failure_limit percent only", top + hosts + "groups:\n  - name: a\n    hosts: ['*']\n    failure_limit: '%' # <-\n", "", "failure_limit"},
	})
}

func TestConfig_Validate_ConfigFiles(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	runErrCases(t, []errCase{
		{"template required", top + fleet + "config_files:\n  - dest: a.conf # <-\n", "", "config_files[0].template: required"},
		{"dest required", top + fleet + "config_files:\n  - template: a.tmpl # <-\n", "", "config_files[0].dest: required"},
		{"template absolute", top + fleet + "config_files:\n  - template: /etc/passwd # <-\n    dest: a\n", "", "is absolute"},
		{"dest dotdot", top + fleet + "config_files:\n  - template: a.tmpl\n    dest: ../../etc/cron.d/x # <-\n", "", "leaves the release directory"},
		{"dest unclean", top + fleet + "config_files:\n  - template: a.tmpl\n    dest: ./etc//a # <-\n", "", "is not a clean path"},
		{"dest dot", top + fleet + "config_files:\n  - {template: a.tmpl, dest: .} # <-\n", "", "is the release directory itself"},
		{"dest duplicate", top + fleet + "config_files:\n  - {template: a.tmpl, dest: a}\n  - {template: b.tmpl, dest: a} # <-\n", "", `"a" is already the dest of config_files[0]`},
		{"validate parse", top + fleet + "config_files:\n  - template: a.tmpl\n    dest: a\n    validate: 'bin/check {{.Path' # <-\n", "", "config_files[0].validate: template does not parse"},
	})
}

func TestConfig_Validate_Hooks(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	runErrCases(t, []errCase{
		{"restart parse", top + fleet + "hooks:\n  restart: 'bin/restart {{.Root' # <-\n", "", "hooks.restart: template does not parse"},
		{"depool unknown func", top + fleet + "hooks:\n  depool: 'x {{shout .Root}}' # <-\n", "", `function "shout" not defined`},
		{"repool missing var", top + fleet + "hooks:\n  repool: 'lb add {{.Host.Vars.pool}}' # <-\n", "", `hooks.repool: template fails for host h01`},
		{"timeout", top + fleet + "hooks:\n  timeout: soon # <-\n", "", `hooks.timeout: "soon" is not a duration`},
	})
}

func TestConfig_Validate_Checks(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1, vars: {port: 80}}, {name: h02, address: /f/2}, {name: h03, address: /f/3}]\ngroups: [{name: all, hosts: ['*']}]\n"
	const fleetOK = "hosts: [{name: h01, address: /f/1, vars: {port: 80}}]\ngroups: [{name: all, hosts: ['*']}]\n"
	runErrCases(t, []errCase{
		{"name required", top + fleetOK + "checks:\n  - type: tcp # <-\n    address: 'a:1'\n", "", "checks[0].name: required"},
		{"name duplicate", top + fleetOK + "checks:\n  - {name: a, type: tcp, address: 'a:1'}\n  - {name: a, type: command, command: x} # <-\n", "", `"a" is already the name of checks[0]`},
		{"type required", top + fleetOK + "checks:\n  - name: a # <-\n", "", "checks[0].type: required"},
		{"type unknown", top + fleetOK + "checks:\n  - name: a\n    type: ping # <-\n", "", `"ping" is not a check type`},
		{"tcp needs address", top + fleetOK + "checks:\n  - name: a\n    type: tcp # <-\n", "", "type tcp needs address"},
		{"tcp address shape", top + fleetOK + "checks:\n  - name: a\n    type: tcp\n    address: localhost # <-\n", "", "is not host:port"},
		{"http needs url", top + fleetOK + "checks:\n  - name: a\n    type: http # <-\n", "", "type http needs url"},
		{"command needs command", top + fleetOK + "checks:\n  - name: a\n    type: command # <-\n", "", "type command needs command"},
		{"url on tcp", top + fleetOK + "checks:\n  - name: a\n    type: tcp\n    address: 'a:1'\n    url: http://x/ # <-\n", "", "only http checks use url"},
		{"expect_status on command", top + fleetOK + "checks:\n  - name: a\n    type: command\n    command: x\n    expect_status: 200 # <-\n", "", "only http checks use expect_status"},
		{"expect_status range", top + fleetOK + "checks:\n  - name: a\n    type: http\n    url: http://x/\n    expect_status: 2000 # <-\n", "", "2000 is not an HTTP status"},
		{"timeout", top + fleetOK + "checks:\n  - name: a\n    type: command\n    command: x\n    timeout: 10 # <-\n", "", `checks[0].timeout: "10" is not a duration`},
		{"interval", top + fleetOK + "checks:\n  - name: a\n    type: command\n    command: x\n    interval: 0ms # <-\n", "", "checks[0].interval"},
		{"address parse", top + fleetOK + "checks:\n  - name: a\n    type: tcp\n    address: '127.0.0.1:{{.Host.Vars.port' # <-\n", "", "checks[0].address: template does not parse"},
		{"header parse", top + fleetOK + "checks:\n  - name: a\n    type: http\n    url: http://x/\n    expect_headers:\n      X-Id: '{{.Release.ID' # <-\n", "", "checks[0].expect_headers.X-Id: template does not parse"},
		{"body parse", top + fleetOK + "checks:\n  - name: a\n    type: http\n    url: http://x/\n    expect_body: '{{end}}' # <-\n", "", "checks[0].expect_body: template does not parse"},
		{"missing var names the host", top + fleet + "checks:\n  - name: port\n    type: tcp\n    address: '127.0.0.1:{{.Host.Vars.port}}' # <-\n", "", `checks[0].address: template fails for host h02 (and 1 more host): at <.Host.Vars.port>: map has no entry for key "port"`},
		{"typo in field", top + fleetOK + "checks:\n  - name: v\n    type: http\n    url: 'http://x/{{.Release.Verison}}' # <-\n", "", "checks[0].url: template fails for host h01"},
		{"command missing var", top + fleetOK + "checks:\n  - name: s\n    type: command\n    command: 'bin/smoke {{.Host.Vars.nope}}' # <-\n", "", "checks[0].command: template fails for host h01"},
	})
}

func TestConfig_Validate_Environments(t *testing.T) {
	const base = top + `hosts: [{name: h01, address: /f/1, vars: {port: 1}}]
groups: [{name: all, hosts: ['*']}]
`
	runErrCases(t, []errCase{
		{"unknown env", base + "environments: # <-\n  staging: {}\n  prod: {}\n", "stagin", `unknown environment "stagin"`},
		{"env without environments", "service: x # <-\ndeploy_root: /srv/x\nhosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n", "staging", "the file defines no environments"},
		{"env name", base + "environments:\n  'st aging': {} # <-\n", "", `environment name "st aging" is not valid`},
		{"env deploy_root", base + "environments:\n  staging:\n    deploy_root: srv # <-\n", "", `environments.staging.deploy_root: "srv" is not an absolute path`},
		{"env host duplicate", base + "environments:\n  staging:\n    hosts:\n      - {name: s1, address: /s/1}\n      - {name: s1, address: /s/2} # <-\n", "", `host "s1" is already defined`},
		{"env host in no group", base + "environments:\n  staging:\n    hosts:\n      - {name: h01, address: /s/1, vars: {port: 1}}\n      - {name: db1, address: /s/2, vars: {port: 1}} # <-\n    groups: [{name: web, hosts: ['h*']}]\n", "", `host "db1" is in no group`},
		{"env groups against top hosts", base + "environments:\n  staging:\n    groups:\n      - name: web\n        hosts: [web1] # <-\n", "", `environments.staging.groups[0].hosts[0]: pattern "web1" matches no host`},
		{"env batch", base + "environments:\n  staging:\n    groups:\n      - name: all\n        hosts: ['*']\n        batch: 200% # <-\n", "", "environments.staging.groups[0].batch"},
		{"env vars missing for check", top + "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\nchecks:\n  - {name: p, type: tcp, address: 'x:{{.Host.Vars.port}}'} # <-\nenvironments:\n  prod: {vars: {port: 80}}\n", "prod", "template fails for host h01"},
		{"env without hosts anywhere", top + "groups: [{name: all, hosts: ['*']}]\nenvironments:\n  staging: # <-\n    groups: [{name: all, hosts: ['*']}]\n", "staging", "environment staging has no hosts"},
		// A broken prod overlay is reported while deploying staging:
		// the file is checked as a whole.
		{"other env checked too", base + "environments:\n  staging: {}\n  prod:\n    hosts:\n      - {name: p1, address: /p/1, vars: {port: 1}}\n    groups:\n      - {name: all, hosts: ['x*']} # <-\n", "staging", `environments.prod.groups[0].hosts[0]: pattern "x*" matches no host`},
		{"env hosts empty", base + "environments:\n  staging:\n    hosts: [] # <-\n", "", "environments.staging.hosts: empty"},
		{"env groups empty", base + "environments:\n  staging:\n    groups: [] # <-\n", "", "environments.staging.groups: empty"},
		{"top level not a target", top + "environments: # <-\n  staging:\n    hosts: [{name: s1, address: /s/1}]\n    groups: [{name: all, hosts: ['*']}]\n", "", "choose an environment with --env (staging)"},
	})
}

func TestConfig_Validate_EnvHints(t *testing.T) {
	doc := top + "hosts: [{name: h01, address: /f}]\ngroups: [{name: a, hosts: ['*']}]\nenvironments: {staging: {}, prod: {}}\n"
	_, err := Parse("drover.yaml", []byte(doc), "qa")
	if got := drover.ErrorHint(err); got != "known environments: prod, staging" {
		t.Fatalf("hint %q", got)
	}
}

func TestConfig_Decode_Errors(t *testing.T) {
	runErrCases(t, []errCase{
		{"syntax", "service: x\ndeploy_root: /srv/x\nhosts: [\n  {name: h01\ngroups: [] # <-\n", "", "YAML syntax error"},
		{"unclosed quote", "service: x\ndeploy_root: \"/srv/x # <-\n", "", "YAML syntax error"},
		{"duplicate key", "service: x\ndeploy_root: /srv/x\nservice: y # <-\n", "", `"service" already defined`},
		{"unknown top key", "service: x\ndeplyo_root: /srv/x # <-\n", "", `unknown key "deplyo_root" at the top level`},
		{"unknown nested key", top + "hosts: [{name: h01, address: /f}]\ngroups: [{name: a, hosts: ['*']}]\nchecks:\n  - name: port\n    type: tcp\n    address: 'a:1'\n    tiemout: 10s # <-\n", "", `unknown key "tiemout" in checks[0]`},
		{"unknown key in flow map", top + "hosts: [{name: h01, address: /f}]\ngroups:\n  - {name: a, hosts: ['*'], batches: 2} # <-\n", "", `unknown key "batches" in groups[0]`},
		{"unknown key in env", top + "environments:\n  staging:\n    hostz: [] # <-\n", "", `unknown key "hostz" in environments.staging`},
		{"type mismatch", "service: x\nkeep_releases: five # <-\n", "", `keep_releases: expected a whole number, got "five"`},
		{"list for scalar", "service: x\ndeploy_root: [a, b] # <-\n", "", "deploy_root: expected a single value, got a list"},
		{"scalar for mapping", top + "hosts: [{name: h01, address: /f, vars: 5}] # <-\n", "", "hosts[0].vars: expected a mapping, got an int"},
		{"scalar for list", top + "hosts: [{name: h01, address: /f}]\ngroups:\n  - name: a\n    hosts: h01 # <-\n", "", "groups[0].hosts: expected a sequence, got a string"},
		{"overflow", "seed: 99999999999999999999999 # <-\n", "", "seed: number 99999999999999999999999 is too large"},
		{"duplicate nested key", top + "hosts:\n  - name: h01\n    address: /f\n    vars:\n      port: 1\n      port: 2 # <-\n", "", `"port" already defined`},
		{"sequence document", "- service: x # <-\n", "", "expected a mapping, got a sequence"},
		{"empty", "# <-\n", "", "the config file is empty"},
		{"two documents", "service: x\n---\nservice: y # <-\n", "", "a second YAML document"},
	})
}

func TestConfig_Decode_UnknownKeyHint(t *testing.T) {
	doc := top + "hosts: [{name: h01, address: /f}]\ngroups: [{name: a, hosts: ['*']}]\nchecks:\n  - {name: p, type: tcp, address: 'a:1', tiemout: 10s}\n"
	_, err := Parse("drover.yaml", []byte(doc), "")
	hint := drover.ErrorHint(err)
	if !strings.Contains(hint, `did you mean "timeout"?`) || !strings.Contains(hint, "interval") {
		t.Fatalf("hint %q", hint)
	}
}

// TestConfig_Validate_AllErrors: validation reports every problem, in line
// order, each with its own position.
func TestConfig_Validate_AllErrors(t *testing.T) {
	doc := `service: x
deploy_root: srv
keep_releases: 1
hosts: [{name: h01, address: /f}]
groups: [{name: a, hosts: ['*'], batch: 0}]
`
	_, err := Parse("drover.yaml", []byte(doc), "")
	errs := allErrors(err)
	var wheres []string
	for _, e := range errs {
		wheres = append(wheres, e.Where)
	}
	want := []string{"drover.yaml:2", "drover.yaml:3", "drover.yaml:5"}
	if !reflect.DeepEqual(wheres, want) {
		t.Fatalf("wheres %v, want %v:\n%v", wheres, want, err)
	}
	// The first line of the joined error is the first problem.
	if first, _, _ := strings.Cut(err.Error(), "\n"); !strings.HasPrefix(first, "drover.yaml:2: deploy_root") {
		t.Fatalf("first line %q", first)
	}
}

// designExample is the drover.yaml of the project's design example, with one more host.
const designExample = `service: hello
deploy_root: /srv/hello
keep_releases: 5
transport: local            # local | ssh
ssh: {user: deploy, identity: ~/.ssh/id_ed25519, known_hosts: ~/.ssh/known_hosts}
hosts:
  - name: h01
    address: /srv/fleet/h01     # local: the host's root directory; ssh: host[:port]
    deploy_root: /srv/hello      # optional: this host's own deploy root
    vars: {port: 18001}
  - name: h02
    address: fleet/h02
    vars: {port: 18002}
groups:                          # deployed in this order
  - name: canary
    hosts: [h01]                 # names or globs
    batch: 1                     # n or "n%" of the group, rounded up, at least 1
    failure_limit: 0             # n or "n%" of the group (rounded down); exceeded => halt
  - name: default
    hosts: ["h*"]                # a host belongs to the first group that names it
    batch: "25%"
    failure_limit: "10%"
config_files:
  - template: hello.conf.tmpl    # Go text/template, path inside the release
    dest: hello.conf             # path inside the release dir on the host
    validate: "bin/hello {{.Path}} -check"
hooks:
  restart: "bin/restart {{.Root}}"
checks:
  - {name: port, type: tcp, address: "127.0.0.1:{{.Host.Vars.port}}", timeout: 10s}
  - {name: version, type: http, url: "http://127.0.0.1:{{.Host.Vars.port}}/version",
     expect_status: 200, expect_body: "{{.Release.Version}}", timeout: 10s}
environments:
  staging:
    hosts:
      - {name: s01, address: /srv/staging/s01}
    groups: [{name: all, hosts: ["*"]}]
    vars: {port: 28001}
`

func TestConfig_Parse_DesignExample(t *testing.T) {
	t.Setenv("HOME", "/home/op")
	cfg, err := ParseConfig("/etc/drover/drover.yaml", []byte(designExample), "")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Spec
	wantAdapters := Adapters{
		SSH: sshtransport.Config{User: "deploy", Identity: "/home/op/.ssh/id_ed25519", KnownHosts: "/home/op/.ssh/known_hosts", Port: 22,
			ConnectTimeout: sshtransport.DefaultConnectTimeout, KeepaliveInterval: sshtransport.DefaultKeepaliveInterval, KeepaliveCount: sshtransport.DefaultKeepaliveCount, ConnectParallelism: sshtransport.DefaultConnectParallelism},
		Log: notify.LogConfig{Format: "json"},
	}
	if !reflect.DeepEqual(cfg.Adapters, wantAdapters) {
		t.Fatalf("adapters:\n got %+v\nwant %+v", cfg.Adapters, wantAdapters)
	}
	want := &drover.Spec{
		Source:       "/etc/drover/drover.yaml",
		Service:      "hello",
		DeployRoot:   "/srv/hello",
		KeepReleases: 5,
		Transport:    "local",
		Hosts: []drover.Host{
			{Name: "h01", Address: "/srv/fleet/h01", DeployRoot: "/srv/fleet/h01/srv/hello", Vars: map[string]any{"port": uint64(18001)}, Group: "canary"},
			{Name: "h02", Address: "/etc/drover/fleet/h02", DeployRoot: "/etc/drover/fleet/h02/srv/hello", Vars: map[string]any{"port": uint64(18002)}, Group: "default"},
		},
		Groups: []drover.Group{
			{Name: "canary", Hosts: []string{"h01"}, Batch: 1, FailureLimit: 0},
			{Name: "default", Hosts: []string{"h02"}, Batch: 1, FailureLimit: 0},
		},
		ConfigFiles: []drover.ConfigFile{{Template: "hello.conf.tmpl", Dest: "hello.conf", Validate: "bin/hello {{.Path}} -check", Mode: drover.DefaultConfigFileMode}},
		Hooks:       drover.Hooks{Restart: "bin/restart {{.Root}}", Timeout: drover.DefaultHookTimeout},
		Checks: []drover.CheckSpec{
			{Name: "port", Type: "tcp", Address: "127.0.0.1:{{.Host.Vars.port}}", Timeout: 10 * time.Second, Interval: drover.DefaultCheckInterval},
			{Name: "version", Type: "http", URL: "http://127.0.0.1:{{.Host.Vars.port}}/version", ExpectStatus: 200,
				ExpectBody: "{{.Release.Version}}", Timeout: 10 * time.Second, Interval: drover.DefaultCheckInterval},
		},
		StageParallelism: drover.DefaultStageParallelism,
		StepTimeout:      drover.DefaultStepTimeout,
		StageRetries:     drover.DefaultStageRetries,
		Store:            drover.DefaultStore,
		AskMessage:       true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("spec:\n got %+v\nwant %+v", got, want)
	}

	staging, err := Parse("/etc/drover/drover.yaml", []byte(designExample), "staging")
	if err != nil {
		t.Fatal(err)
	}
	if staging.Env != "staging" || len(staging.Hosts) != 1 || staging.Hosts[0].Name != "s01" ||
		staging.Hosts[0].Vars["port"] != uint64(28001) || staging.Hosts[0].Group != "all" ||
		!reflect.DeepEqual(staging.Groups, []drover.Group{{Name: "all", Hosts: []string{"s01"}, Batch: 1}}) {
		t.Fatalf("staging: %+v", staging)
	}
}

func TestConfig_Parse_Defaults(t *testing.T) {
	s, err := Parse("drover.yaml", []byte(top+"hosts: [{name: h01, address: /f}]\ngroups: [{name: a, hosts: ['*']}]\nchecks: [{name: h, type: http, url: 'http://x/'}]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	c := s.Checks[0]
	if s.KeepReleases != drover.DefaultKeepReleases || s.Transport != drover.DefaultTransport ||
		s.StageParallelism != drover.DefaultStageParallelism || s.StepTimeout != drover.DefaultStepTimeout ||
		s.StageRetries != drover.DefaultStageRetries || s.Hooks.Timeout != drover.DefaultHookTimeout ||
		c.ExpectStatus != 200 || c.Timeout != drover.DefaultCheckTimeout || c.Interval != drover.DefaultCheckInterval ||
		s.Groups[0].Batch != 1 || s.Groups[0].FailureLimit != 0 || s.StateDir != "" || s.Env != "" {
		t.Fatalf("defaults not applied: %+v", s)
	}
	// Explicit zeros that are allowed stay zero.
	s, err = Parse("drover.yaml", []byte(top+"stage_retries: 0\nseed: 42\nhosts: [{name: h01, address: /f}]\ngroups: [{name: a, hosts: ['*']}]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.StageRetries != 0 || s.Seed != 42 {
		t.Fatalf("stage_retries %d seed %d", s.StageRetries, s.Seed)
	}
}

func TestConfig_Parse_Portions(t *testing.T) {
	doc := top + `hosts:
  - {name: a1, address: /f/a1}
  - {name: a2, address: /f/a2}
  - {name: a3, address: /f/a3}
  - {name: a4, address: /f/a4}
  - {name: a5, address: /f/a5}
  - {name: a6, address: /f/a6}
  - {name: a7, address: /f/a7}
  - {name: b1, address: /f/b1}
  - {name: b2, address: /f/b2}
  - {name: b3, address: /f/b3}
  - {name: c1, address: /f/c1}
groups:
  - {name: seven, hosts: ['a*'], batch: 25%, failure_limit: 10%}
  - {name: three, hosts: ['b*'], batch: 50%, failure_limit: 50%}
  - {name: one, hosts: ['c*'], batch: 10, failure_limit: 3}
`
	s, err := Parse("drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]int{{2, 0}, {2, 1}, {1, 3}}
	for i, g := range s.Groups {
		if got := [2]int{g.Batch, g.FailureLimit}; got != want[i] {
			t.Errorf("group %s: batch, failure_limit = %v, want %v", g.Name, got, want[i])
		}
	}
}

func TestParsePortion(t *testing.T) {
	for _, tc := range []struct {
		s       string
		n       int
		roundUp bool
		want    int
		err     bool
	}{
		{"1", 7, true, 1, false},
		{"3", 7, false, 3, false},
		{"0", 7, false, 0, false},
		{"25%", 7, true, 2, false},
		{"25%", 7, false, 1, false},
		{"10%", 7, false, 0, false},
		{"10%", 7, true, 1, false},
		{"50%", 3, true, 2, false},
		{"50%", 3, false, 1, false},
		{"100%", 3, true, 3, false},
		{"100%", 3, false, 3, false},
		{"0%", 3, false, 0, false},
		{"1%", 1000, true, 10, false},
		{"33%", 100, true, 33, false},
		{" 20% ", 10, true, 2, false},
		{"150%", 3, true, 0, true},
		{"101%", 3, false, 0, true},
		{"abc", 3, true, 0, true},
		{"-1", 3, true, 0, true},
		{"+1", 3, true, 0, true},
		{"1.5", 3, true, 0, true},
		{"%", 3, true, 0, true},
		{"", 3, true, 0, true},
		{"5%%", 3, true, 0, true},
		{"99999999999999999999", 3, true, 0, true},
	} {
		got, err := ParsePortion(tc.s, tc.n, tc.roundUp)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParsePortion(%q, %d, %v) = %d, %v; want %d, error %v", tc.s, tc.n, tc.roundUp, got, err, tc.want, tc.err)
		}
	}
}

func TestConfig_Parse_GlobFirstMatch(t *testing.T) {
	doc := top + `hosts:
  - {name: h01, address: /f/1}
  - {name: h02, address: /f/2}
  - {name: h03, address: /f/3}
  - {name: h04, address: /f/4}
  - {name: h05, address: /f/5}
  - {name: db1, address: /f/6}
groups:
  - {name: canary, hosts: [h03]}
  - {name: web, hosts: ['h0[1-4]', h05]}
  - {name: rest, hosts: ['*']}
`
	s, err := Parse("drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []drover.Group{
		{Name: "canary", Hosts: []string{"h03"}, Batch: 1},
		// Hosts-list order, not pattern order; h03 stays a canary.
		{Name: "web", Hosts: []string{"h01", "h02", "h04", "h05"}, Batch: 1},
		{Name: "rest", Hosts: []string{"db1"}, Batch: 1},
	}
	if !reflect.DeepEqual(s.Groups, want) {
		t.Fatalf("groups %+v", s.Groups)
	}
	groupOf := map[string]string{}
	for _, h := range s.Hosts {
		groupOf[h.Name] = h.Group
	}
	if !reflect.DeepEqual(groupOf, map[string]string{"h01": "web", "h02": "web", "h03": "canary", "h04": "web", "h05": "web", "db1": "rest"}) {
		t.Fatalf("host groups %v", groupOf)
	}
}

func TestConfig_Parse_EnvOverlay(t *testing.T) {
	doc := top + `hosts:
  - {name: h01, address: /f/1, vars: {port: 1, region: eu}}
  - {name: h02, address: /f/2, deploy_root: /opt/x, vars: {port: 2}}
groups: [{name: all, hosts: ['*']}]
environments:
  varsonly:
    vars: {region: us, tier: gold}
    deploy_root: /srv/vo
  staging:
    hosts: [{name: s1, address: /s/1, vars: {port: 9}}]
    groups: [{name: canary, hosts: [s1], batch: 100%}]
`
	s, err := Parse("drover.yaml", []byte(doc), "varsonly")
	if err != nil {
		t.Fatal(err)
	}
	if s.Env != "varsonly" || s.DeployRoot != "/srv/vo" {
		t.Fatalf("env %q root %q", s.Env, s.DeployRoot)
	}
	h1, _ := s.Host("h01")
	h2, _ := s.Host("h02")
	// A host's own vars win; the environment's fill in the rest.
	if !reflect.DeepEqual(h1.Vars, map[string]any{"port": uint64(1), "region": "eu", "tier": "gold"}) ||
		!reflect.DeepEqual(h2.Vars, map[string]any{"port": uint64(2), "region": "us", "tier": "gold"}) {
		t.Fatalf("vars %v %v", h1.Vars, h2.Vars)
	}
	if h1.DeployRoot != "/f/1/srv/vo" || h2.DeployRoot != "/f/2/opt/x" {
		t.Fatalf("roots %q %q", h1.DeployRoot, h2.DeployRoot)
	}

	s, err = Parse("drover.yaml", []byte(doc), "staging")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Hosts) != 1 || s.Hosts[0].Name != "s1" || s.Hosts[0].DeployRoot != "/s/1/srv/x" ||
		!reflect.DeepEqual(s.Groups, []drover.Group{{Name: "canary", Hosts: []string{"s1"}, Batch: 1}}) {
		t.Fatalf("staging %+v", s)
	}

	// The top level is untouched by the overlays.
	s, err = Parse("drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Host("h01"); s.Env != "" || len(s.Hosts) != 2 || h.Vars["region"] != "eu" || h.Vars["tier"] != nil {
		t.Fatalf("top level %+v", s)
	}
}

func TestConfig_Parse_RelativePaths(t *testing.T) {
	t.Setenv("HOME", "/home/op")
	doc := top + `state_dir: ./state
hosts:
  - {name: a, address: fleet/a}
  - {name: b, address: ../shared/b}
  - {name: c, address: ~/fleet/c}
  - {name: d, address: /abs/d/}
groups: [{name: all, hosts: ['*']}]
`
	s, err := Parse("/cfg/sub/drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range s.Hosts {
		got = append(got, h.Address)
	}
	want := []string{"/cfg/sub/fleet/a", "/cfg/shared/b", "/home/op/fleet/c", "/abs/d"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	if s.StateDir != "/cfg/sub/state" {
		t.Fatalf("state_dir %q", s.StateDir)
	}

	// With ssh, addresses are host[:port] and left alone.
	doc = top + "transport: ssh\nssh: {port: 2222}\nhosts: [{name: a, address: 'web1.example.com:22'}, {name: b, address: '[::1]:22'}, {name: c, address: web3}]\ngroups: [{name: all, hosts: ['*']}]\n"
	cfg, err := ParseConfig("/cfg/drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	s = cfg.Spec
	if s.Hosts[0].Address != "web1.example.com:22" || s.Hosts[1].Address != "[::1]:22" || s.Hosts[2].Address != "web3" || cfg.SSH.Port != 2222 {
		t.Fatalf("ssh %+v", s)
	}

	// Every ssh key, with paths resolved like OpenSSH would: ~/ is the
	// home directory, relative paths are next to the config file.
	t.Setenv("HOME", "/home/op")
	doc = top + `transport: ssh
ssh:
  user: deploy
  identity: ~/.ssh/id_ed25519
  known_hosts: keys/known_hosts
  port: 2200
  proxy_jump: 'bastion.example.com:2222'
  trust_on_first_use: true
  connect_timeout: 3s
  keepalive_interval: 1m
  connect_parallelism: 8
  host_binary: bin/drover-linux-arm64
hosts: [{name: a, address: web1}]
groups: [{name: all, hosts: ['*']}]
`
	cfg, err = ParseConfig("/etc/drover/drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	wantSSH := sshtransport.Config{User: "deploy", Identity: "/home/op/.ssh/id_ed25519", KnownHosts: "/etc/drover/keys/known_hosts", Port: 2200,
		ProxyJump: "bastion.example.com:2222", TrustOnFirstUse: true, ConnectTimeout: 3 * time.Second, KeepaliveInterval: time.Minute, KeepaliveCount: sshtransport.DefaultKeepaliveCount,
		ConnectParallelism: 8, HostBinary: "/etc/drover/bin/drover-linux-arm64"}
	if cfg.SSH != wantSSH {
		t.Fatalf("ssh\n got %+v\nwant %+v", cfg.SSH, wantSSH)
	}
}

func TestConfig_Load(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drover.yaml")
	if err := os.WriteFile(path, []byte(top+"hosts: [{name: a, address: fleet/a}]\ngroups: [{name: all, hosts: ['*']}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != path || s.Hosts[0].Address != filepath.Join(dir, "fleet/a") {
		t.Fatalf("%+v", s)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"), "")
	if drover.ErrorCode(err) != drover.EINVALID || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestConfig_Validate_File: Validate works on a decoded File on its own and
// checks every environment without choosing one.
func TestConfig_Validate_File(t *testing.T) {
	f, err := Decode("drover.yaml", []byte(designExample))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	f.Environments["staging"] = Environment{Hosts: []HostFile{{Name: "s01", Address: "/s"}}, Groups: []GroupFile{{Name: "x", Hosts: []string{"nope"}}}}
	err = f.Validate()
	if err == nil || !strings.Contains(err.Error(), `environments.staging.groups[0].hosts[0]: pattern "nope" matches no host`) {
		t.Fatalf("err %v", err)
	}
}

// TestConfig_Locator_Anchors: a problem reached through an alias is
// reported where the aliased value is written.
func TestConfig_Locator_Anchors(t *testing.T) {
	doc := top + `hosts:
  - {name: h01, address: /f/1}
groups:
  - &g
    name: all # <-
    hosts: ['*']
  - *g
`
	_, err := Parse("drover.yaml", []byte(doc), "")
	assertErrAt(t, err, markedLine(t, doc), `group "all" is already defined at groups[0]`)

	doc = top + `defaults: &d {batch: 0}
`
	_, err = Parse("drover.yaml", []byte(doc), "")
	assertErrAt(t, err, 3, `unknown key "defaults"`)
}
