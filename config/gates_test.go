package config

import (
	"reflect"
	"testing"
	"time"

	"drover"
)

const gatesFleet = "hosts: [{name: h01, address: /f/1, vars: {port: 80}}]\ngroups: [{name: all, hosts: ['*']}]\n"

func TestConfig_Validate_Smoke(t *testing.T) {
	const hosts = "hosts: [{name: h01, address: /f/1}]\n"
	runErrCases(t, []errCase{
		{"name required", top + gatesFleet + "smoke:\n  - type: tcp # <-\n    address: 'lb:80'\n", "", "smoke[0].name: required"},
		{"name duplicate", top + gatesFleet + "smoke:\n  - {name: a, type: tcp, address: 'lb:1'}\n  - {name: a, type: command, command: x} # <-\n", "", `"a" is already the name of smoke[0]`},
		{"type", top + gatesFleet + "smoke:\n  - name: a\n    type: ping # <-\n", "", `smoke[0].type: "ping" is not a check type`},
		{"url needs http", top + gatesFleet + "smoke:\n  - name: a\n    type: tcp\n    address: 'lb:80'\n    url: http://lb/ # <-\n", "", "smoke[0].url: only http checks use url"},
		{"timeout", top + gatesFleet + "smoke:\n  - name: a\n    type: command\n    command: x\n    timeout: 5 # <-\n", "", `smoke[0].timeout: "5" is not a duration`},
		{"no host in templates", top + gatesFleet + "smoke:\n  - name: a\n    type: http\n    url: 'http://127.0.0.1:{{.Host.Vars.port}}/' # <-\n", "", "smoke[0].url: template fails: at <.Host.Vars.port>: can't evaluate field Host"},
		{"command template", top + gatesFleet + "smoke:\n  - name: a\n    type: command\n    command: 'bin/smoke {{.Root}}' # <-\n", "", "smoke[0].command: template fails"},
		{"template parse", top + gatesFleet + "smoke:\n  - name: a\n    type: http\n    url: 'http://lb/{{.Release.Version' # <-\n", "", "smoke[0].url: template fails"},
		{"group smoke type", top + hosts + "groups:\n  - name: all\n    hosts: ['*']\n    smoke:\n      - name: a # <-\n", "", "groups[0].smoke[0].type: required"},
		{"group smoke host", top + hosts + "groups:\n  - name: all\n    hosts: ['*']\n    smoke:\n      - name: a\n        type: tcp\n        address: '{{.Host.Name}}:80' # <-\n", "", "groups[0].smoke[0].address: template fails"},
		{"env group smoke", top + hosts + "groups: [{name: all, hosts: ['*']}]\nenvironments:\n  prod:\n    groups:\n      - name: all\n        hosts: ['*']\n        smoke:\n          - {name: a, type: http} # <-\n", "prod", "environments.prod.groups[0].smoke[0]: type http needs url"},
	})
}

func TestConfig_Validate_Invariants(t *testing.T) {
	const inv = "invariants:\n  - name: orders\n    source: {http: 'http://lb/stats'}\n"
	runErrCases(t, []errCase{
		{"name required", top + gatesFleet + "invariants:\n  - source: {http: 'http://lb/'} # <-\n    rules: [{path: $.a, op: equal}]\n", "", "invariants[0].name: required"},
		{"name charset", top + gatesFleet + "invariants:\n  - name: a b # <-\n    source: {http: 'http://lb/'}\n    rules: [{path: $.a, op: equal}]\n", "", `invariants[0].name: "a b" is not a valid name`},
		{"name duplicate", top + gatesFleet + "invariants:\n  - {name: a, source: {http: 'http://lb/'}, rules: [{path: $.a, op: equal}]}\n  - {name: a, source: {http: 'http://lb/'}, rules: [{path: $.a, op: equal}]} # <-\n", "", `"a" is already the name of invariants[0]`},
		{"source required", top + gatesFleet + "invariants:\n  - name: a # <-\n    rules: [{path: $.a, op: equal}]\n", "", "invariants[0].source: required"},
		{"source both", top + gatesFleet + "invariants:\n  - name: a\n    source: {http: 'http://lb/', command: x} # <-\n    rules: [{path: $.a, op: equal}]\n", "", "both http and command are set"},
		{"source unknown key", top + gatesFleet + "invariants:\n  - name: a\n    source: {htp: 'http://lb/'} # <-\n", "", `unknown key "htp" in invariants[0].source`},
		{"url not http", top + gatesFleet + "invariants:\n  - name: a\n    source:\n      http: 'lb/stats' # <-\n    rules: [{path: $.a, op: equal}]\n", "", `invariants[0].source.http: "lb/stats" is not an http(s) URL`},
		{"url host template", top + gatesFleet + "invariants:\n  - name: a\n    source:\n      http: 'http://{{.Host.Address}}/' # <-\n    rules: [{path: $.a, op: equal}]\n", "", "invariants[0].source.http: template fails"},
		{"command template", top + gatesFleet + "invariants:\n  - name: a\n    source:\n      command: 'stats {{.Root}}' # <-\n    rules: [{path: $.a, op: equal}]\n", "", "invariants[0].source.command: template fails"},
		{"rules required", top + gatesFleet + "invariants:\n  - name: a # <-\n    source: {http: 'http://lb/'}\n", "", "invariants[0].rules: required"},
		{"path required", top + gatesFleet + inv + "    rules:\n      - op: equal # <-\n", "", "invariants[0].rules[0].path: required"},
		{"path syntax", top + gatesFleet + inv + "    rules:\n      - path: orders.count # <-\n        op: equal\n", "", "must start with $"},
		{"path wildcard", top + gatesFleet + inv + "    rules:\n      - path: $.orders[*] # <-\n        op: equal\n", "", "is not an index"},
		{"op required", top + gatesFleet + inv + "    rules:\n      - path: $.a # <-\n", "", "invariants[0].rules[0].op: required"},
		{"op unknown", top + gatesFleet + inv + "    rules:\n      - path: $.a\n        op: ge # <-\n", "", `invariants[0].rules[0].op: "ge" is not an operator`},
		{"within needs percent", top + gatesFleet + inv + "    rules:\n      - path: $.a # <-\n        op: within\n", "", "op within needs percent"},
		{"percent only within", top + gatesFleet + inv + "    rules:\n      - path: $.a\n        op: gte\n        percent: 5 # <-\n", "", "only op within uses percent"},
		{"percent negative", top + gatesFleet + inv + "    rules:\n      - path: $.a\n        op: within\n        percent: -5 # <-\n", "", "is negative"},
		{"value type", top + gatesFleet + inv + "    rules:\n      - path: $.a\n        op: lte\n        value: lots # <-\n", "", "value"},
		{"after", top + gatesFleet + inv + "    after: batch # <-\n    rules: [{path: $.a, op: equal}]\n", "", `invariants[0].after: "batch" is not group or deploy`},
		{"timeout", top + gatesFleet + inv + "    timeout: 10 # <-\n    rules: [{path: $.a, op: equal}]\n", "", `invariants[0].timeout: "10" is not a duration`},
	})
}

func TestConfig_Parse_Gates(t *testing.T) {
	doc := top + `hosts: [{name: h01, address: /f/1}, {name: h02, address: /f/2}]
groups:
  - name: canary
    hosts: [h01]
    smoke:
      - {name: lb, type: http, url: 'http://lb/version', expect_body: '{{.Release.Version}}', timeout: 20s}
  - {name: rest, hosts: ['*']}
smoke:
  - {name: e2e, type: command, command: 'bin/e2e {{.Env}} {{.Release.ID}}'}
invariants:
  - name: orders
    source: {http: 'http://lb/stats?env={{.Env}}'}
    rules:
      - {path: $.orders.count, op: gte}
      - {path: $.errors.rate, op: lte, value: 0.01}
      - {path: $.queue.depth, op: within, percent: 50}
  - name: rows
    source: {command: 'psql -c "select json_agg(x)"'}
    after: deploy
    timeout: 1m
    rules: [{path: '$[0].n', op: equal}]
`
	s, err := Parse("drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	wantGroup := []drover.CheckSpec{{Name: "lb", Type: "http", URL: "http://lb/version", ExpectStatus: 200, ExpectBody: "{{.Release.Version}}", Timeout: 20 * time.Second, Interval: drover.DefaultCheckInterval}}
	if !reflect.DeepEqual(s.Groups[0].Smoke, wantGroup) {
		t.Errorf("canary smoke %+v, want %+v", s.Groups[0].Smoke, wantGroup)
	}
	if s.Groups[1].Smoke != nil {
		t.Errorf("rest smoke %+v, want none", s.Groups[1].Smoke)
	}
	wantTop := []drover.CheckSpec{{Name: "e2e", Type: "command", Command: "bin/e2e {{.Env}} {{.Release.ID}}", Timeout: drover.DefaultCheckTimeout, Interval: drover.DefaultCheckInterval}}
	if !reflect.DeepEqual(s.Smoke, wantTop) {
		t.Errorf("smoke %+v, want %+v", s.Smoke, wantTop)
	}
	v := 0.01
	wantInv := []drover.Invariant{
		{Name: "orders", URL: "http://lb/stats?env={{.Env}}", After: drover.InvariantAfterGroup, Timeout: drover.DefaultInvariantTimeout, Rules: []drover.InvariantRule{
			{Path: "$.orders.count", Op: drover.OpGTE},
			{Path: "$.errors.rate", Op: drover.OpLTE, Value: &v},
			{Path: "$.queue.depth", Op: drover.OpWithin, Percent: 50},
		}},
		{Name: "rows", Command: `psql -c "select json_agg(x)"`, After: drover.InvariantAfterDeploy, Timeout: time.Minute, Rules: []drover.InvariantRule{{Path: "$[0].n", Op: drover.OpEqual}}},
	}
	if !reflect.DeepEqual(s.Invariants, wantInv) {
		t.Errorf("invariants\n%+v\nwant\n%+v", s.Invariants, wantInv)
	}
}
