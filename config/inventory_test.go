package config

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
)

const invBase = `service: hello
deploy_root: /srv/hello
transport: ssh
groups:
  - {name: web, hosts: ["@web"]}
  - {name: rest, hosts: ["*"]}
`

func writeInv(t *testing.T, out string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "inv.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+out), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInventoryCommandHostsAndGroups(t *testing.T) {
	inv := writeInv(t, `echo '{"hosts": [{"name": "a1", "address": "10.0.0.1", "vars": {"port": 8080, "neg": -1, "f": 1.5}, "groups": ["web"]}, {"name": "b1", "address": "10.0.0.2"}]}'`)
	s, err := Parse("drover.yaml", []byte(invBase+"inventory: {command: "+inv+"}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Hosts) != 2 || s.Hosts[0].Group != "web" || s.Hosts[1].Group != "rest" {
		t.Fatalf("hosts %+v", s.Hosts)
	}
	if v := s.Hosts[0].Vars; v["port"] != uint64(8080) || v["neg"] != int64(-1) || v["f"] != 1.5 {
		t.Fatalf("vars %#v: want YAML's number types", v)
	}
	if s.Inventory.Command != inv || s.Inventory.Timeout != drover.DefaultInventoryTimeout {
		t.Fatalf("inventory %+v", s.Inventory)
	}
}

func TestInventoryURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"hosts": [{"name": "a1", "address": "10.0.0.1", "groups": ["web"]}, {"name": "b1", "address": "10.0.0.2"}]}`))
	}))
	defer srv.Close()
	s, err := Parse("drover.yaml", []byte(invBase+"inventory: {url: "+srv.URL+"}\n"), "")
	if err != nil || len(s.Hosts) != 2 {
		t.Fatalf("%v %+v", err, s)
	}
}

// TestInventoryErrors: bad output names the source and what is wrong.
func TestInventoryErrors(t *testing.T) {
	cases := []struct{ name, out, want string }{
		{"exit", "echo boom >&2; exit 3", "exited 3; stderr: boom"},
		{"syntax", "printf '{\"hosts\": [\\n  {\"name\" \"a\"}]}'", "JSON syntax error at line 2:"},
		{"unknown key", `echo '{"hosts": [{"name": "a", "address": "x", "adress": "y"}]}'`, `unknown field "adress"`},
		{"duplicate", `echo '{"hosts": [{"name": "a", "address": "x"}, {"name": "a", "address": "y"}]}'`, `hosts[1] (a): host "a" is already defined`},
		{"no address", `echo '{"hosts": [{"name": "a"}]}'`, "hosts[0] (a): no address"},
		{"empty", "true", "printed nothing"},
		{"unknown group", `echo '{"hosts": [{"name": "a", "address": "x", "groups": ["db"]}]}'`, `"@web" names no inventory group`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := writeInv(t, c.out)
			_, err := Parse("drover.yaml", []byte(invBase+"inventory: {command: "+inv+"}\n"), "")
			if err == nil || !strings.Contains(err.Error(), c.want) || drover.ErrorCode(err) != drover.EINVALID {
				t.Fatalf("error %v, want %q (EINVALID)", err, c.want)
			}
			if !strings.Contains(err.Error(), "inventory") && c.name != "unknown group" {
				t.Fatalf("error %v does not name the inventory", err)
			}
		})
	}
}

func TestRetryAndConvergeBlocks(t *testing.T) {
	good := invBase[:strings.Index(invBase, "groups:")] + `hosts: [{name: h1, address: h1}]
groups: [{name: all, hosts: ["*"]}]
hooks: {replace: "reimage {{.Host.Name}}"}
retry:
  attempts: 3
  backoff: 2s
  on: [exit]
  steps:
    restart: {attempts: 5}
converge: {max_attempts: 4, wait: 0, replace_after: 1, boot_timeout: 90s}
`
	s, err := Parse("drover.yaml", []byte(good), "")
	if err != nil {
		t.Fatal(err)
	}
	r := s.Retry.Rule("restart")
	if r.Attempts != 5 || r.Backoff != 2e9 || len(r.On) != 1 || r.On[0] != "exit" || s.Retry.Rule("check").Attempts != 3 {
		t.Fatalf("retry %+v", s.Retry)
	}
	if s.Converge != (drover.ConvergeSpec{MaxAttempts: 4, Wait: 0, MaxWait: drover.DefaultConvergeMaxWait, ReplaceAfter: 1, BootTimeout: 90 * time.Second}) || s.Hooks.Replace == "" {
		t.Fatalf("converge %+v", s.Converge)
	}
	for _, c := range []struct{ yaml, want string }{
		{"retry: {attempts: 0}", "retry.attempts: 0 is out of range"},
		{"retry: {on: [exit, crash]}", `retry.on[1]: "crash" is not an outcome`},
		{"retry: {steps: {promote: {attempts: 2}}}", `"promote" is not a host step`},
		{"retry: {backoff: 5s, max_backoff: 1s}", "less than backoff"},
		{"converge: {max_attempts: 0}", "converge.max_attempts: 0 is out of range"},
		{"converge: {replace_after: 0}", "at least 1"},
		{"converge:\n  wait: 1s\n  boot_timeout: 0s", `drover.yaml:8: converge.boot_timeout: "0s" must be more than 0`},
		{"converge: {boot_timeout: soon}", `converge.boot_timeout: "soon" is not a duration`},
		{"inventory: {command: x, url: http://a}", "both command and url"},
		{"inventory: {ansible: hosts.ini, url: http://a}", "both url and ansible"},
		{"inventory: {url: ftp://a}", "not an http(s) URL"},
	} {
		base := good[:strings.Index(good, "hooks:")]
		_, err := Parse("drover.yaml", []byte(base+c.yaml+"\n"), "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.yaml, err, c.want)
		}
	}
}
