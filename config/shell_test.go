package config

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover"
)

// Every command template is parsed as shell when the file loads: one that
// puts a value inside quotes (where $(...) in a host var would run) is
// refused at its line with what to write instead, whichever command it is.
func TestConfig_Validate_CommandShape(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1, vars: {label: x}}]\ngroups: [{name: all, hosts: ['*']}]\n"
	const dq = `"echo \"label: {{.Host.Vars.label}}\""`
	runErrCases(t, []errCase{
		{"restart", top + fleet + "hooks:\n  restart: " + dq + " # <-\n", "", "hooks.restart: {{.Host.Vars.label}} is inside double quotes"},
		{"lifecycle hook", top + fleet + "hooks:\n  before_promote: \"echo '{{.Host.Name}}'\" # <-\n", "", "hooks.before_promote: {{.Host.Name}} is inside single quotes"},
		{"rotation hook", top + fleet + "hooks:\n  depool: \"lb-ctl out \\\"{{.Host.Name}}\\\"\" # <-\n", "", "hooks.depool: {{.Host.Name}} is inside double quotes"},
		{"replace hook", top + fleet + "hooks:\n  replace: \"cloud replace \\\"{{.Host.Name}}\\\"\" # <-\n", "", "hooks.replace: {{.Host.Name}} is inside double quotes"},
		{"validate", top + fleet + "config_files:\n  - template: a.tmpl\n    dest: a\n    validate: \"check <<EOF\\n{{.Path}}\\nEOF\" # <-\n", "", "config_files[0].validate: {{.Path}} is in a here-document"},
		{"check command", top + fleet + "checks:\n  - name: c\n    type: command\n    command: \"test \\\"$(cat v)\\\" = \\\"{{.Release.Version}}\\\"\" # <-\n", "", "checks[0].command: {{.Release.Version}} is inside double quotes"},
		{"smoke command", top + fleet + "smoke:\n  - name: c\n    type: command\n    command: \"e2e '{{.Release.ID}}'\" # <-\n", "", "smoke[0].command: {{.Release.ID}} is inside single quotes"},
		{"invariant command", top + fleet + "invariants:\n  - name: a\n    source:\n      command: \"stats ${X:-{{.Env}}}\" # <-\n    rules: [{path: $.a, op: equal}]\n", "", "invariants[0].source.command: {{.Env}} is inside a parameter expansion"},
		{"shell syntax", top + fleet + "hooks:\n  restart: \"bin/restart {{.Root}} \\\"\" # <-\n", "", "hooks.restart: not a valid shell command"},
	})
}

// The hint says how to write it: the value outside the quotes.
func TestConfig_CommandShapeHint(t *testing.T) {
	const doc = top + "hosts: [{name: h01, address: /f/1, vars: {label: x}}]\ngroups: [{name: all, hosts: ['*']}]\nhooks:\n  restart: 'echo \"label: {{.Host.Vars.label}}\"'\n"
	_, err := Parse("drover.yaml", []byte(doc), "")
	if h := drover.ErrorHint(err); !strings.Contains(h, `write "label: "{{.Host.Vars.label}} instead of "label: {{.Host.Vars.label}}"`) {
		t.Fatalf("hint %q (err %v), want the value outside quotes", h, err)
	}
}

// The reported attack: vars from an inventory URL, a hook with the value in
// single quotes. The file is refused at the hook's line before any host
// var reaches a shell, whatever the inventory serves.
func TestConfig_InventoryVarsCannotReachQuotedValue(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"hosts": [{"name": "a1", "address": "10.0.0.1", "groups": ["web"], "vars": {"label": "'; touch ` + pwned + `; echo '"}}]}`))
	}))
	defer srv.Close()
	doc := invBase + "inventory: {url: " + srv.URL + "}\nhooks:\n  restart: \"echo 'label: {{.Host.Vars.label}}'\" # <-\n"
	_, err := Parse("drover.yaml", []byte(doc), "")
	assertErrAt(t, err, markedLine(t, doc), "hooks.restart: {{.Host.Vars.label}} is inside single quotes")
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("the inventory's var ran")
	}
}
