package config

import (
	"reflect"
	"testing"
	"time"

	"drover"
)

func TestConfig_Validate_Rotation(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1, vars: {lb: web-1}}, {name: h02, address: /f/2, vars: {lb: web-2}}]\ngroups: [{name: all, hosts: ['*']}]\n"
	runErrCases(t, []errCase{
		{"socket required", top + fleet + "rotation:\n  haproxy: # <-\n    backend: web\n", "", "rotation.haproxy.socket: required"},
		{"backend required", top + fleet + "rotation:\n  haproxy: # <-\n    socket: /run/haproxy/admin.sock\n", "", "rotation.haproxy.backend: required"},
		{"backend name", top + fleet + "rotation:\n  haproxy:\n    socket: /run/haproxy/admin.sock\n    backend: 'web; shutdown' # <-\n", "", `rotation.haproxy.backend: "web; shutdown" is not an HAProxy backend name`},
		{"drain_timeout", top + fleet + "rotation:\n  haproxy:\n    socket: /s\n    backend: web\n    drain_timeout: 30 # <-\n", "", `rotation.haproxy.drain_timeout: "30" is not a duration`},
		{"up_timeout", top + fleet + "rotation:\n  haproxy:\n    socket: /s\n    backend: web\n    up_timeout: -1s # <-\n", "", "must be more than 0"},
		{"server parse", top + fleet + "rotation:\n  haproxy:\n    socket: /s\n    backend: web\n    server: '{{.Host.Name' # <-\n", "", "rotation.haproxy.server: template does not parse"},
		{"server missing var", top + "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\nrotation:\n  haproxy:\n    socket: /s\n    backend: web\n    server: '{{.Host.Vars.lb}}' # <-\n", "", "rotation.haproxy.server: template fails for host h01"},
		{"server name injection", top + "hosts: [{name: h01, address: /f/1, vars: {lb: 'x;shutdown'}}]\ngroups: [{name: all, hosts: ['*']}]\nrotation:\n  haproxy:\n    socket: /s\n    backend: web\n    server: '{{.Host.Vars.lb}}' # <-\n", "", `host h01 gets server name "x;shutdown"`},
		{"server shared", top + fleet + "rotation:\n  haproxy:\n    socket: /s\n    backend: web\n    server: 'web' # <-\n", "", `hosts h01 and h02 both get server name "web"`},
		{"unknown key", top + fleet + "rotation:\n  haproxy:\n    socket: /s\n    backend: web\n    drain: 3s # <-\n", "", `unknown key "drain" in rotation.haproxy`},
	})
}

func TestConfig_Validate_LifecycleHooks(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	var cases []errCase
	for _, key := range []string{"wait_idle", "before_stage", "after_stage", "before_promote", "after_promote", "before_restart", "after_restart", "before_rollback", "after_rollback"} {
		cases = append(cases,
			errCase{key + " parse", top + fleet + "hooks:\n  " + key + ": 'x {{.Root' # <-\n", "", "hooks." + key + ": template does not parse"},
			errCase{key + " missing var", top + fleet + "hooks:\n  " + key + ": 'x {{.Host.Vars.nope}}' # <-\n", "", "hooks." + key + ": template fails for host h01"},
		)
	}
	cases = append(cases, errCase{"misspelt", top + fleet + "hooks:\n  before_promte: x # <-\n", "", `unknown key "before_promte" in hooks`})
	runErrCases(t, cases)
}

// TestConfig_Validate_AllAtOnce: a batch that takes a whole group of more
// than one host out at once is refused at the batch's line, unless the
// group says allow_all_at_once.
func TestConfig_Validate_AllAtOnce(t *testing.T) {
	const hosts = "hosts: [{name: h01, address: /f/1}, {name: h02, address: /f/2}, {name: h03, address: /f/3}]\n"
	runErrCases(t, []errCase{
		{"100%", top + hosts + "groups:\n  - name: all\n    hosts: ['*']\n    batch: 100% # <-\n", "", `groups[0].batch: batch "100%" takes all 3 hosts of group "all" out at once`},
		{"equal number", top + hosts + "groups:\n  - name: all\n    hosts: ['*']\n    batch: 3 # <-\n", "", "takes all 3 hosts"},
		{"more than the group", top + hosts + "groups:\n  - {name: canary, hosts: [h01]}\n  - name: rest\n    hosts: ['*']\n    batch: 5 # <-\n", "", `takes all 2 hosts of group "rest"`},
		{"rounded up to all", top + hosts + "groups:\n  - {name: canary, hosts: [h01]}\n  - name: rest\n    hosts: ['*']\n    batch: 60% # <-\n", "", `batch "60%" takes all 2 hosts`},
		{"env groups", top + hosts + "groups: [{name: all, hosts: ['*']}]\nenvironments:\n  prod:\n    groups:\n      - name: all\n        hosts: ['*']\n        batch: 100% # <-\n", "prod", "environments.prod.groups[0].batch"},
		{"allow is false", top + hosts + "groups:\n  - name: all\n    hosts: ['*']\n    allow_all_at_once: false\n    batch: 100% # <-\n", "", "out at once"},
	})

	for _, doc := range []string{
		// One host is never "all at once" of more than one.
		top + hosts + "groups:\n  - {name: canary, hosts: [h01], batch: 100%}\n  - {name: rest, hosts: ['*'], batch: 1}\n",
		// Said on purpose.
		top + hosts + "groups:\n  - {name: all, hosts: ['*'], batch: 100%, allow_all_at_once: true}\n",
		// 50% of 3 is 2: one stays in rotation.
		top + hosts + "groups:\n  - {name: all, hosts: ['*'], batch: 50%}\n",
	} {
		if _, err := Parse("drover.yaml", []byte(doc), ""); err != nil {
			t.Errorf("refused:\n%s\n%v", doc, err)
		}
	}
}

func TestConfig_Parse_RotationHooksInterlocks(t *testing.T) {
	doc := top + `hosts:
  - {name: h01, address: /f/1, vars: {lb: web-1}}
  - {name: h02, address: /f/2, vars: {lb: web-2}}
groups:
  - {name: canary, hosts: [h01], confirm: true}
  - {name: rest, hosts: ['*'], batch: 100%, allow_all_at_once: true}
hooks:
  depool: lb out
  wait_idle: lb wait-idle
  repool: lb in
  before_stage: a
  after_stage: b
  before_promote: c
  after_promote: d
  before_restart: e
  after_restart: f
  before_rollback: g
  after_rollback: h
  timeout: 7s
rotation:
  haproxy:
    socket: 127.0.0.1:9999
    backend: web
    server: '{{.Host.Vars.lb}}'
    drain_timeout: 5s
`
	s, err := Parse("/etc/drover/drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	want := drover.Hooks{Depool: "lb out", WaitIdle: "lb wait-idle", Repool: "lb in", BeforeStage: "a", AfterStage: "b", BeforePromote: "c", AfterPromote: "d",
		BeforeRestart: "e", AfterRestart: "f", BeforeRollback: "g", AfterRollback: "h", Timeout: 7 * time.Second}
	if s.Hooks != want {
		t.Errorf("hooks\n got %+v\nwant %+v", s.Hooks, want)
	}
	wantHP := drover.HAProxyRotation{Socket: "127.0.0.1:9999", Backend: "web", Server: "{{.Host.Vars.lb}}", DrainTimeout: 5 * time.Second, UpTimeout: drover.DefaultHAProxyUpTimeout}
	if s.Rotation.HAProxy == nil || *s.Rotation.HAProxy != wantHP {
		t.Errorf("haproxy\n got %+v\nwant %+v", s.Rotation.HAProxy, wantHP)
	}
	if s.DrainTimeout() != 5*time.Second {
		t.Errorf("drain timeout %s", s.DrainTimeout())
	}
	if !s.Groups[0].Confirm || s.Groups[0].AllowAllAtOnce || s.Groups[1].Confirm || !s.Groups[1].AllowAllAtOnce || s.Groups[1].Batch != 1 {
		t.Errorf("groups %+v", s.Groups)
	}

	// A socket path is made absolute next to the config file; defaults.
	doc = top + "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\nrotation:\n  haproxy: {socket: run/admin.sock, backend: web}\n"
	s, err = Parse("/etc/drover/drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	wantHP = drover.HAProxyRotation{Socket: "/etc/drover/run/admin.sock", Backend: "web", Server: drover.DefaultHAProxyServer, DrainTimeout: drover.DefaultDrainTimeout, UpTimeout: drover.DefaultHAProxyUpTimeout}
	if !reflect.DeepEqual(*s.Rotation.HAProxy, wantHP) {
		t.Errorf("haproxy\n got %+v\nwant %+v", *s.Rotation.HAProxy, wantHP)
	}
	if s.DrainTimeout() != drover.DefaultDrainTimeout || !s.HasRotation() {
		t.Errorf("drain timeout %s, rotation %v", s.DrainTimeout(), s.HasRotation())
	}
}
