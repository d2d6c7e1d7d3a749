package drover

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runSh runs a rendered command as hosts do and returns its stdout.
func runSh(t *testing.T, dir, cmd string) string {
	t.Helper()
	c := exec.Command("sh", "-c", cmd)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v: %s", cmd, err, out)
	}
	return string(out)
}

// The attacks of issue 15, as reported: each ran `touch pwned` through a
// host var before command templates were parsed as shell. Now the first
// two templates are refused (by the renderer itself, whatever the caller)
// and the third renders the key as one quoted word.
func TestCommandTemplateAttacks(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	for _, tc := range []struct {
		name, tmpl string
		vars       map[string]any
		refused    string // a substring of the refusal; "" when it renders
	}{
		{"value inside double quotes", `echo "label: {{.Host.Vars.label}}"`,
			map[string]any{"label": "$(touch " + pwned + ")"}, "inside double quotes"},
		{"value inside single quotes (vars from an inventory url)", `echo 'label: {{.Host.Vars.label}}'`,
			map[string]any{"label": "'; touch " + pwned + "; echo '"}, "inside single quotes"},
		{"map key ranged over", `printf '%s|' {{range $k, $v := .Host.Vars.flags}}--{{$k}}={{$v}} {{end}}`,
			map[string]any{"flags": map[string]any{"x;touch " + pwned + ";": "v"}}, ""},
		{"value after a backslash", `echo \{{.Host.Vars.label}}`,
			map[string]any{"label": "a b;touch " + pwned}, "after a backslash"},
		{"value in a here-document", "cat <<EOF\n{{.Host.Vars.label}}\nEOF",
			map[string]any{"label": "$(touch " + pwned + ")"}, "here-document"},
		{"value in backquotes", "echo `echo {{.Host.Vars.label}}`",
			map[string]any{"label": "'`touch " + pwned + "`'"}, "backquotes"},
		{"value inside ${...}", "echo ${X:-{{.Host.Vars.label}}}",
			map[string]any{"label": "$(touch " + pwned + ")"}, "parameter expansion"},
		{"value in arithmetic", "echo $(( {{.Host.Vars.n}} + 1 ))",
			map[string]any{"n": "a[$(touch " + pwned + ")]"}, "arithmetic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := NewTemplateData(&Spec{Service: "s"}, Host{Name: "h01", Vars: tc.vars}, "id", "v")
			cmd, err := RenderCommand("hooks.restart", tc.tmpl, data)
			if tc.refused != "" {
				if err == nil || ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), tc.refused) || ErrorHint(err) == "" {
					t.Fatalf("rendered %q (err %v), want EINVALID %q with a hint", cmd, err, tc.refused)
				}
				if !strings.Contains(err.Error(), "{{.Host.Vars.") {
					t.Errorf("error %q does not name the action", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out := runSh(t, dir, cmd)
			if want := "--x;touch " + pwned + ";=v|"; out != want {
				t.Errorf("sh -c %q printed %q, want %q", cmd, out, want)
			}
			if _, err := os.Stat(pwned); err == nil {
				t.Fatalf("sh -c %q created %s", cmd, pwned)
			}
		})
	}
}

// The same checks guard the commands smoke checks and invariants run on
// the controller.
func TestGateCommandTemplateRefusesQuotedValue(t *testing.T) {
	_, err := RenderGateCommand("smoke", `curl "http://lb/{{.Release.Version}}"`, NewGateData(&Spec{Service: "s"}, "id", "$(id)"))
	if err == nil || !strings.Contains(err.Error(), "inside double quotes") {
		t.Fatalf("err = %v, want a refusal", err)
	}
}

// Every shape a legitimate template uses renders, and sh sees each value
// as exactly the text it holds.
func TestCommandTemplateAcceptedShapes(t *testing.T) {
	evil := `a b'"$(id)` + "`;|&<>*?[~#{}=\\"
	vars := map[string]any{"v": evil, "port": uint64(8080), "name": "web", "kw": "fi", "m": map[string]any{"k 1": evil}, "list": []any{"x y", "z"}}
	for _, tc := range []struct{ tmpl, want string }{
		{`printf '%s|' {{.Host.Vars.v}}`, evil + "|"},
		{`printf '%s|' --name={{.Host.Vars.v}} x{{.Host.Vars.v}}y`, "--name=" + evil + "|x" + evil + "y|"},
		{`printf '%s|' "label: "{{.Host.Vars.v}}`, "label: " + evil + "|"},
		{`X={{.Host.Vars.v}}; printf '%s|' "$X"`, evil + "|"},
		{`printf '%s|' {{.Host.Vars.port}} 127.0.0.1:{{.Host.Vars.port}}`, "8080|127.0.0.1:8080|"},
		{`printf '%s|' "$(printf '%s' {{.Host.Vars.v}})"`, evil + "|"},
		{`case {{.Host.Vars.name}} in {{.Host.Vars.v}}) echo no;; web) printf '%s|' yes;; esac`, "yes|"},
		{`for x in {{.Host.Vars.v}} {{.Host.Vars.name}}; do printf '%s|' "$x"; done`, evil + "|web|"},
		{`printf '%s|' {{range .Host.Vars.list}}{{.}} {{end}}`, "x y|z|"},
		{`printf '%s|' {{range $k, $v := .Host.Vars.m}}{{$k}}={{$v}}{{end}}`, "k 1=" + evil + "|"},
		{`{{if .Host.Vars.name}}printf '%s|' {{.Host.Vars.name}}{{else}}echo none{{end}}`, "web|"},
		{`printf '%s|' {{quote .Host.Vars.v}} {{printf "%s;%s" .Host.Vars.name .Host.Vars.name}}`, evil + "|web;web|"},
		{`printf '%s|' {{.Host.Vars.v}} > out; cat out`, evil + "|"},
		{`printf '%s|' {{.Host.Vars.kw}}; if true; then printf '%s|' x{{.Host.Vars.kw}}; fi`, "fi|xfi|"},
		{`{{.Root}}/x 2>/dev/null || printf '%s|' {{.Host.Vars.port}}>out; cat out`, "8080|"},
		{`printf '%s|' {{.Host.Vars.v}} # {{.Host.Vars.v}}`, evil + "|"},
	} {
		data := NewTemplateData(&Spec{Service: "s"}, Host{Name: "h01", Vars: vars}, "id", "v")
		cmd, err := RenderCommand("t", tc.tmpl, data)
		if err != nil {
			t.Errorf("%s: %v", tc.tmpl, err)
			continue
		}
		if got := runSh(t, t.TempDir(), cmd); got != tc.want {
			t.Errorf("%s\nsh -c %q printed %q, want %q", tc.tmpl, cmd, got, tc.want)
		}
	}
}

// Templates that put a value where it cannot stay one word are refused
// with what to write instead.
func TestCheckCommandTemplateRefuses(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{`echo "label: {{.Host.Name}}"`, "inside double quotes"},
		{`echo "label: {{.Host.Name}}"`, `write "label: "{{.Host.Name}} instead of "label: {{.Host.Name}}"`},
		{`echo 'a {{.Host.Name}} b'`, `write 'a '{{.Host.Name}}' b' instead of 'a {{.Host.Name}} b'`},
		{`echo "{{.Host.Name}}"`, `write {{.Host.Name}} instead of "{{.Host.Name}}"`},
		{`echo "$(echo "{{.Host.Name}}")"`, "inside double quotes"},
		{`echo 'label: {{.Host.Name}}'`, "inside single quotes"},
		{`echo $'{{.Host.Name}}'`, "single quotes"},
		{`{{.Host.Name}}=1 cmd`, "a variable's name"},
		{`X{{.Host.Name}}=1 cmd`, "a variable's name"},
		{`{{.Host.Name}}() { :; }`, "a function's name"},
		{`for {{.Host.Name}} in a; do :; done`, "a loop variable's name"},
		{`echo ${{.Host.Name}}`, "parameter expansion"},
		{`echo ${X:-{{.Host.Name}}}`, "parameter expansion"},
		{`echo $(( {{.Host.Name}} ))`, "arithmetic"},
		{"cat <<EOF\n{{.Host.Name}}\nEOF", "here-document"},
		{"cat <<'EOF'\n{{.Host.Name}}\nEOF", "here-document"},
		{"cat <<{{.Host.Name}}\nx\n", "here-document"},
		{"echo `echo {{.Host.Name}}`", "backquotes"},
		{"echo `echo $(echo {{.Host.Name}})`", "backquotes"},
		{`echo \{{.Host.Name}}`, "after a backslash"},
		{`{{.Host.Vars.cmd}} arg`, "the name of the command to run"},
		{`X=1 {{.Host.Vars.cmd}}`, "the name of the command to run"},
		{`true && {{.Host.Vars.cmd}}`, "the name of the command to run"},
		{`export {{.Host.Name}}`, "a variable's name"},
		{`echo {{range .Host.Vars.l}}"{{end}}{{.Host.Name}}{{range .Host.Vars.l}}"{{end}}`, "not a valid shell command"},
		{`{{if .Host.Name}}"{{end}}{{.Host.Name}}"`, "inside double quotes"},
		{`{{if .Host.Name}}"{{.Host.Name}}"{{else}}{{.Host.Name}}{{end}}`, "inside double quotes"},
		{`echo "unterminated`, "not a valid shell command"},
		{`{{define "x"}}a{{end}}echo`, "{{define}}"},
		{`{{range .Host.Vars.l}}{{break}}{{end}}`, "{{break}}"},
		{`echo {{.Host.Name`, "does not parse"},
	} {
		err := CheckCommandTemplate(tc.tmpl)
		if err == nil || ErrorCode(err) != EINVALID || !strings.Contains(err.Error()+" hint: "+ErrorHint(err), tc.want) || ErrorHint(err) == "" {
			t.Errorf("%q: err = %v (hint %q), want EINVALID %q with a hint", tc.tmpl, err, ErrorHint(err), tc.want)
		}
	}
}

// A value that cannot be handed to sh portably (a control character) is
// an error naming the template, never a command.
func TestRenderCommandRefusesControlCharacters(t *testing.T) {
	data := NewTemplateData(&Spec{Service: "s"}, Host{Name: "h01", Vars: map[string]any{"v": "a\nb"}}, "id", "v")
	_, err := RenderCommand("hooks.restart", "echo {{.Host.Vars.v}}", data)
	if err == nil || ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), "control character") || !strings.Contains(err.Error(), "hooks.restart") {
		t.Fatalf("err = %v", err)
	}
}
