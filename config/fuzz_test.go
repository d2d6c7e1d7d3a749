package config

import (
	"errors"
	"testing"

	"drover"
)

// fuzzSeed is a file using most of drover.yaml: every kind of template
// and command, environments, gates, rotation, blue/green.
const fuzzSeed = `service: hello
deploy_root: /srv/hello
hosts:
  - {name: h01, address: /f/1, vars: {port: 8001, label: "a b", m: {k: v}}}
  - {name: h02, address: /f/2, vars: {port: 8002, label: x, m: {k: w}}}
groups:
  - {name: canary, hosts: [h01], batch: 1, smoke: [{name: s, type: command, command: "bin/smoke {{.Release.Version}}"}]}
  - {name: rest, hosts: ["*"], batch: "50%", failure_limit: 1}
config_files:
  - {template: hello.conf.tmpl, dest: hello.conf, validate: "bin/hello -check -config {{.Path}}", mode: "0600"}
hooks:
  restart: "bin/restart {{.Root}} --label={{.Host.Vars.label}}"
  depool: "lb-ctl out {{.Host.Name}} {{range $k, $v := .Host.Vars.m}}--{{$k}}={{$v}} {{end}}"
  replace: "cloud replace {{.Host.Name}}"
checks:
  - {name: port, type: tcp, address: "127.0.0.1:{{.Host.Vars.port}}", timeout: 10s}
  - {name: version, type: http, url: "http://127.0.0.1:{{.Host.Vars.port}}/version", expect_body: "{{.Release.Version}}"}
  - {name: cmd, type: command, command: "test -f {{.Root}}/ok"}
invariants:
  - {name: i, source: {command: "stats {{.Env}}"}, rules: [{path: $.a, op: equal}]}
environments:
  prod: {vars: {port: 9000}}
`

// FuzzConfig feeds arbitrary bytes to the loader (without the dynamic
// inventory, which would run a command or fetch a URL). Property: no
// panic; every refusal is an EINVALID *drover.Error with a message; and a
// file that loads never holds a command template the renderer would
// refuse, so the load-time check and the render-time check agree.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(fuzzSeed))
	f.Add([]byte("service: x\ndeploy_root: /srv/x\nhosts: [{name: h, address: /a}]\ngroups: [{name: g, hosts: ['*']}]\nhooks: {restart: 'echo \"{{.Host.Name}}\"'}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("service: x\n---\nservice: y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode("drover.yaml", data)
		var s *drover.Spec
		if err == nil {
			s, err = file.Spec("")
		}
		if err != nil {
			var de *drover.Error
			if !errors.As(err, &de) || drover.ErrorCode(err) != drover.EINVALID || err.Error() == "" {
				t.Fatalf("refusal is not an EINVALID *drover.Error: %T %v", err, err)
			}
			return
		}
		for _, c := range specCommands(s) {
			if c != "" {
				if err := drover.CheckCommandTemplate(c); err != nil {
					t.Fatalf("loaded a command the renderer refuses: %q: %v", c, err)
				}
			}
		}
	})
}

func specCommands(s *drover.Spec) []string {
	h := s.Hooks
	out := []string{h.Restart, h.Stop, h.Depool, h.WaitIdle, h.Repool, h.BeforeStage, h.AfterStage, h.BeforePromote,
		h.AfterPromote, h.BeforeRestart, h.AfterRestart, h.BeforeRollback, h.AfterRollback, h.Replace,
		s.BlueGreen.StartIdle, s.BlueGreen.StopIdle}
	for _, c := range s.ConfigFiles {
		out = append(out, c.Validate)
	}
	for _, c := range s.Checks {
		out = append(out, c.Command)
	}
	for _, c := range s.Smoke {
		out = append(out, c.Command)
	}
	for _, g := range s.Groups {
		for _, c := range g.Smoke {
			out = append(out, c.Command)
		}
	}
	for _, i := range s.Invariants {
		out = append(out, i.Command)
	}
	return out
}

// FuzzInventory feeds arbitrary bytes to the parser of what an inventory
// command or URL prints (an inventory source is not trusted). Property:
// no panic, and a refusal says why.
func FuzzInventory(f *testing.F) {
	f.Add([]byte(`{"hosts": [{"name": "a1", "address": "10.0.0.1", "vars": {"port": 8080, "neg": -1, "f": 1.5, "label": "$(id)"}, "groups": ["web"]}]}`))
	f.Add([]byte(`{"hosts": [{"name": "a", "address": "x", "adress": "y"}]}`))
	f.Add([]byte("{\"hosts\": [\n  {\"name\" \"a\"}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := parseInventory(data); err != nil && err.Error() == "" {
			t.Fatal("refusal without a message")
		}
	})
}
