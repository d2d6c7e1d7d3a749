package config

import (
	"testing"
	"time"
)

func TestConfig_Validate_LogChecks(t *testing.T) {
	const fleetOK = "hosts: [{name: h01, address: /f/1, vars: {port: 80}}]\ngroups: [{name: all, hosts: ['*']}]\n"
	runErrCases(t, []errCase{
		{"needs path", top + fleetOK + "checks:\n  - name: l\n    type: log # <-\n    pattern: x\n", "", "type log needs path"},
		{"needs pattern", top + fleetOK + "checks:\n  - name: l\n    type: log # <-\n    path: /var/log/x.log\n", "", "type log needs pattern"},
		{"bad pattern", top + fleetOK + "checks:\n  - name: l\n    type: log\n    path: /var/log/x.log\n    pattern: 'error(' # <-\n", "", `checks[0].pattern: "error(" does not compile: error parsing regexp`},
		{"relative path", top + fleetOK + "checks:\n  - name: l\n    type: log\n    path: run/x.log # <-\n    pattern: x\n", "", `checks[0].path: "run/x.log" is not an absolute path`},
		{"path template", top + fleetOK + "checks:\n  - name: l\n    type: log\n    path: '{{.Root}/x.log' # <-\n    pattern: x\n", "", "checks[0].path: template does not parse"},
		{"path var missing", top + fleetOK + "checks:\n  - name: l\n    type: log\n    path: '/var/log/{{.Host.Vars.app}}.log' # <-\n    pattern: x\n", "", "checks[0].path: template fails for host h01"},
		{"pattern on tcp", top + fleetOK + "checks:\n  - name: l\n    type: tcp\n    address: 'a:1'\n    pattern: x # <-\n", "", "only log checks use pattern"},
		{"window without absent", top + fleetOK + "checks:\n  - name: l\n    type: log\n    path: /x.log\n    pattern: x\n    window: 3s # <-\n", "", "only absent: true log checks watch for a window"},
		{"window past timeout", top + fleetOK + "checks:\n  - name: l\n    type: log\n    path: /x.log\n    pattern: x\n    absent: true\n    timeout: 5s\n    window: 5s # <-\n", "", "does not fit in timeout 5s"},
		{"bad window", top + fleetOK + "checks:\n  - name: l\n    type: log\n    path: /x.log\n    pattern: x\n    absent: true\n    window: soon # <-\n", "", `"soon" is not a duration`},
		{"log in smoke", top + fleetOK + "smoke:\n  - name: l\n    type: log # <-\n    path: /x.log\n    pattern: x\n", "", "smoke checks run once, on this machine"},
	})
}

func TestConfig_Parse_LogCheck(t *testing.T) {
	doc := top + "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n" +
		"checks:\n  - name: up\n    type: log\n    path: '{{.Root}}/run/app.log'\n    pattern: 'listening on \\d{2,5}'\n" +
		"  - name: no-panic\n    type: log\n    path: /var/log/app.log\n    pattern: panic\n    absent: true\n"
	s, err := Parse("drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	up, np := s.Checks[0], s.Checks[1]
	if up.Path != "{{.Root}}/run/app.log" || up.Pattern != `listening on \d{2,5}` || up.Absent || up.Window != 0 {
		t.Errorf("up = %+v", up)
	}
	if !np.Absent || np.Window != 5*time.Second || np.Timeout != 30*time.Second {
		t.Errorf("no-panic = %+v", np)
	}
}
