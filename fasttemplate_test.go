package drover

import (
	"bytes"
	"fmt"
	"testing"
)

func fastTestData() TemplateData {
	n := 7
	return TemplateData{
		Host: TemplateHost{Name: "web-1", Address: "10.0.0.1", Vars: map[string]any{
			"port": uint64(8080), "neg": -3, "f": 1.5, "b": true, "s": "x; rm -rf /", "q": "it's", "dollar": "$(id)",
			"ctl": "a\nb", "bad": "\xff", "nested": map[string]any{"a": 1}, "list": []any{1, 2}, "nil": nil, "ptr": &n, "empty": "",
		}},
		Release: TemplateRelease{ID: "20260101-abc", Version: "2.0.0"},
		Service: "app", Env: "prod", Root: "/srv/app dir", Path: "/srv/app/releases/x/app.conf",
	}
}

// The fast path renders exactly what text/template renders, and fails
// with exactly its error, for every template: the ones it takes and the
// ones it leaves to text/template.
func TestFastTemplateMatchesTextTemplate(t *testing.T) {
	data := fastTestData()
	plain := []string{
		"port={{.Host.Vars.port}}\nversion={{.Release.Version}}\n",
		"{{.Host.Name}}", "{{.Host.Address}}:{{.Host.Vars.port}}", "{{- .Root -}} / {{ .Service }}",
		"{{.Env}}{{.Path}}{{.Release.ID}}", "{{.Host.Vars.f}} {{.Host.Vars.b}} {{.Host.Vars.neg}} {{.Host.Vars.empty}}",
		"{{.Host.Vars.s}} {{.Host.Vars.ctl}} {{.Host.Vars.bad}}", "no actions at all", "",
		"{{.Host.Vars.missing}}", "{{.Host.Vars.nested}}", "{{.Host.Vars.nested.a}}", "{{.Host.Vars.list}}",
		"{{.Host.Vars.nil}}", "{{.Host.Vars.ptr}}", "{{.Host.Vars}}", "{{.Host}}", "{{.Slot.Colour}}", "{{.Nope}}",
		"{{.Host.Name | quote}}", "{{if .Host.Name}}x{{end}}", "{{$x := .Root}}{{$x}}", "{{/* c */}}{{.Root}}",
		"{{range .Host.Vars.list}}{{.}}{{end}}", "{{define \"t\"}}x{{end}}{{.Root}}", "{{printf \"%s\" .Root}}",
	}
	commands := []string{
		"depool {{.Host.Name}}", "restart {{.Root}}", "echo {{.Host.Vars.s}}", "echo h{{.Host.Vars.q}}",
		"echo {{.Host.Vars.dollar}} {{.Host.Vars.port}}", "echo {{.Host.Vars.ctl}}", "echo {{.Host.Vars.bad}}",
		"x {{.Host.Vars.missing}}", "x {{.Host.Vars.nested}}", "x {{.Host.Vars.ptr}}", "x {{.Host.Vars.nil}}",
		"x {{.Host.Vars.empty}}", "x {{.Host.Name | quote}}", "x {{if .Root}}{{.Root}}{{end}}", "x >{{.Path}}",
		"curl -fsS http://{{.Host.Address}}:{{.Host.Vars.port}}/health", "x {{.Nope}}",
	}
	for _, text := range plain {
		sameAsTextTemplate(t, text, data)
	}
	for _, text := range commands {
		commandSameAsTextTemplate(t, text, data)
	}
	// The common shapes do take the fast path.
	for _, text := range []string{"port={{.Host.Vars.port}}\n", "{{.Host.Name}}"} {
		if parseCached("t", text).fast == nil {
			t.Errorf("%q: no fast form", text)
		}
	}
	if compileCommand("c", "depool {{.Host.Name}}").fast == nil {
		t.Errorf("depool {{.Host.Name}}: no fast form")
	}
}

// A hook command and a config file of text and field lookups render with
// a few allocations, not text/template's reflection: at 10,000 hosts these
// were 70,000 executions and ~0.8 s of CPU per deploy (bench/README.md).
func TestFastTemplateAllocs(t *testing.T) {
	data := fastTestData()
	cmd := testing.AllocsPerRun(100, func() {
		if _, err := RenderCommand("depool", "depool {{.Host.Name}} --port {{.Host.Vars.port}}", data); err != nil {
			t.Fatal(err)
		}
	})
	conf := testing.AllocsPerRun(100, func() {
		if _, err := Render("app.conf", "port={{.Host.Vars.port}}\nversion={{.Release.Version}}\n", data); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations: command %.0f, config %.0f", cmd, conf)
	if cmd > 6 || conf > 6 {
		t.Errorf("allocations per render: command %.0f, config %.0f; want ≤ 6 each", cmd, conf)
	}
}

// sameAsTextTemplate fails t unless Render gives what text/template gives
// for text and data, error included.
func sameAsTextTemplate(t *testing.T, text string, data TemplateData) {
	t.Helper()
	got, gotErr := Render("t", text, data)
	c := parseCached("t", text)
	var want string
	var wantErr error
	if c.err != nil {
		wantErr = Errorf(EINVALID, "template %s: %v", "t", c.err)
	} else {
		var b bytes.Buffer
		if err := c.t.Execute(&b, data); err != nil {
			wantErr = Errorf(EINVALID, "template %s: %v", "t", err)
		} else {
			want = b.String()
		}
	}
	if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Errorf("Render(%q) = %q, %v; text/template: %q, %v", text, got, gotErr, want, wantErr)
	}
}

// commandSameAsTextTemplate is sameAsTextTemplate for RenderCommand: the
// same words, the same refusals.
func commandSameAsTextTemplate(t *testing.T, text string, data TemplateData) {
	t.Helper()
	got, gotErr := RenderCommand("c", text, data)
	c := compileCommand("c", text)
	var want, wantErr string
	if c.err != nil {
		if gotErr == nil {
			t.Errorf("RenderCommand(%q) = %q, want the refusal %v", text, got, c.err)
		}
		return
	}
	var b bytes.Buffer
	if err := c.t.Execute(&b, data); err != nil {
		wantErr = Errorf(EINVALID, "template %s: %v", "c", err).Error()
	} else {
		want = b.String()
	}
	if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) && !(gotErr == nil && wantErr == "") {
		t.Errorf("RenderCommand(%q) = %q, %v; text/template: %q, %s", text, got, gotErr, want, wantErr)
	}
}

// FuzzFastTemplate: whatever the values — any string, bytes that are not
// UTF-8, shell syntax, numbers — the fast path renders config files and
// commands byte for byte as text/template does, and refuses what it
// refuses. A fast path that quoted one value differently would be a hook
// whose words the operator did not write.
func FuzzFastTemplate(f *testing.F) {
	// Each takes the fast path (else this would compare text/template
	// with itself).
	for _, text := range fuzzFastFiles {
		if parseCached("t", text).fast == nil {
			f.Fatalf("%q: no fast form", text)
		}
	}
	for _, text := range fuzzFastCommands {
		if compileCommand("c", text).fast == nil {
			f.Fatalf("%q: no fast form", text)
		}
	}
	f.Add("web-1", "plain", "x y", uint64(8080), false)
	f.Add("h", "$(touch /tmp/pwned)", "'; id; '", uint64(0), true)
	f.Add("\xff", "a\nb", "`id`", ^uint64(0), false)
	f.Add("", "", "~", uint64(1), true)
	f.Fuzz(func(t *testing.T, name, a, b string, n uint64, bIsNumber bool) {
		data := fastTestData()
		data.Host.Name = name
		data.Host.Vars = map[string]any{"a": a, "b": b}
		if bIsNumber {
			data.Host.Vars["b"] = n
		}
		data.Root = a
		for _, text := range fuzzFastFiles {
			sameAsTextTemplate(t, text, data)
		}
		for _, text := range fuzzFastCommands {
			commandSameAsTextTemplate(t, text, data)
		}
	})
}

var (
	fuzzFastFiles = []string{
		"{{.Host.Name}}={{.Host.Vars.a}}:{{.Host.Vars.b}}\n",
		"x{{.Root}}y{{.Host.Vars.b}}z",
	}
	fuzzFastCommands = []string{
		"depool {{.Host.Name}} --port {{.Host.Vars.b}}",
		"echo x{{.Host.Vars.a}}y {{.Root}}/bin >{{.Host.Vars.b}}",
		"X={{.Host.Vars.a}} cmd {{.Host.Vars.a}}{{.Host.Vars.b}}",
	}
)
