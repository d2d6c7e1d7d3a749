package config

import (
	"testing"
	"time"

	"drover"
)

const bgFleet = "hosts: [{name: h01, address: /f/1, vars: {port: 1, gport: 2}}, {name: h02, address: /f/2, vars: {port: 3, gport: 4}}]\ngroups: [{name: all, hosts: ['*']}]\n"
const bgLB = "rotation:\n  haproxy:\n    socket: /s\n    backend: web\n    server: '{{.Host.Name}}-{{.Slot.Color}}'\n"

func TestConfig_BlueGreen(t *testing.T) {
	doc := top + bgFleet + bgLB + "strategy: blue-green\nblue_green:\n  ports: {blue: '{{.Host.Vars.port}}', green: '{{.Host.Vars.gport}}'}\n  start_idle: 'bin/start {{.Slot.Color}} {{.Slot.Port}}'\n  stop_idle: 'bin/stop {{.Slot.Color}}'\n  keep_old: 10m\n"
	s, err := Parse("drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Strategy != drover.StrategyBlueGreen || s.BlueGreen.KeepOld != 10*time.Minute ||
		s.BlueGreen.Ports["green"] != "{{.Host.Vars.gport}}" || s.BlueGreen.StartIdle == "" || s.BlueGreen.StopIdle == "" {
		t.Fatalf("spec: %+v %+v", s.Strategy, s.BlueGreen)
	}
	s, err = Parse("drover.yaml", []byte(top+bgFleet), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Strategy != "" {
		t.Fatalf("default strategy %q", s.Strategy)
	}
}

func TestConfig_Validate_BlueGreen(t *testing.T) {
	const hooks = "  start_idle: bin/start\n  stop_idle: bin/stop\n"
	const ports = "  ports: {blue: '{{.Host.Vars.port}}', green: '{{.Host.Vars.gport}}'}\n"
	runErrCases(t, []errCase{
		{"unknown strategy", top + bgFleet + "strategy: canary # <-\n", "", `strategy: "canary" is not a strategy`},
		{"no block", top + bgFleet + bgLB + "strategy: blue-green # <-\n", "", "strategy: blue-green needs the blue_green block"},
		{"block without strategy", top + bgFleet + "blue_green: # <-\n" + ports + hooks, "", "blue_green: set, but the strategy is rolling"},
		{"ports missing", top + bgFleet + bgLB + "strategy: blue-green\nblue_green:\n  ports: {blue: '1'} # <-\n" + hooks, "", "blue_green.ports: blue and green are both required"},
		{"same port", top + bgFleet + bgLB + "strategy: blue-green\nblue_green:\n  ports:\n    blue: '1'\n    green: '1' # <-\n" + hooks, "", "blue and green are the same"},
		{"start_idle missing", top + bgFleet + bgLB + "strategy: blue-green\nblue_green: # <-\n" + ports + "  stop_idle: bin/stop\n", "", "blue_green.start_idle: required"},
		{"stop_idle missing", top + bgFleet + bgLB + "strategy: blue-green\nblue_green: # <-\n" + ports + "  start_idle: bin/start\n", "", "blue_green.stop_idle: required"},
		{"no traffic switch", top + bgFleet + "strategy: blue-green # <-\nblue_green:\n" + ports + hooks, "", "needs a way to switch traffic"},
		{"one server for both colours", top + bgFleet + "rotation:\n  haproxy:\n    socket: /s\n    backend: web\n    server: '{{.Host.Name}}' # <-\nstrategy: blue-green\nblue_green:\n" + ports + hooks, "", "must name each colour's server"},
		{"port var missing", top + "hosts: [{name: h01, address: /f/1, vars: {port: 1}}]\ngroups: [{name: all, hosts: ['*']}]\n" + bgLB + "strategy: blue-green\nblue_green:\n  ports:\n    blue: '{{.Host.Vars.port}}'\n    green: '{{.Host.Vars.gport}}' # <-\n" + hooks, "", "blue_green.ports.green: template fails for host h01"},
		{"keep_old", top + bgFleet + bgLB + "strategy: blue-green\nblue_green:\n" + ports + hooks + "  keep_old: soon # <-\n", "", `blue_green.keep_old: "soon" is not a duration`},
		{"unknown key", top + bgFleet + bgLB + "strategy: blue-green\nblue_green:\n" + ports + hooks + "  keep: 3m # <-\n", "", `unknown key "keep" in blue_green`},
		{"unknown colour", top + bgFleet + bgLB + "strategy: blue-green\nblue_green:\n  ports:\n    blue: '1'\n    red: '2' # <-\n" + hooks, "", `unknown key "red" in blue_green.ports`},
	})
}
