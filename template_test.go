package drover

import (
	"os/exec"
	"strings"
	"testing"
)

// A host var carrying shell syntax must reach the command as one argument,
// never as shell: that is what stops a poisoned inventory running commands.
func TestRenderCommandQuotesEveryValue(t *testing.T) {
	spec := &Spec{Service: "hello"}
	h := Host{Name: "h01", DeployRoot: "/srv/my root", Vars: map[string]any{"evil": "x; echo PWNED", "port": uint64(8080)}}
	data := NewTemplateData(spec, h, "1.0-abc", "1.0")
	cmd, err := RenderCommand("t", `printf '%s|' {{.Host.Vars.evil}} {{.Root}} {{quote .Host.Vars.evil}} {{.Host.Vars.port}}`, data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	if got, want := string(out), "x; echo PWNED|/srv/my root|x; echo PWNED|8080|"; got != want {
		t.Errorf("sh -c %q printed %q, want %q", cmd, got, want)
	}
}

func TestRenderGateCommandQuotesEveryValue(t *testing.T) {
	data := NewGateData(&Spec{Service: "hello", Env: "a b"}, "1.0-abc", "1.0'$(id)")
	cmd, err := RenderGateCommand("t", `printf '%s|' {{.Env}} {{.Release.Version}}`, data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	if got, want := string(out), "a b|1.0'$(id)|"; got != want {
		t.Errorf("sh -c %q printed %q, want %q", cmd, got, want)
	}
}

// A missing key is an error naming it, never "<no value>" in a config file.
func TestRenderMissingKeyIsAnError(t *testing.T) {
	data := NewTemplateData(&Spec{Service: "s"}, Host{Name: "h"}, "id", "v")
	for name, render := range map[string]func() error{
		"Render":        func() error { _, err := Render("t", "port = {{.Host.Vars.port}}", data); return err },
		"RenderCommand": func() error { _, err := RenderCommand("t", "run {{.Host.Vars.port}}", data); return err },
		"RenderCheck": func() error {
			_, err := RenderCheck(CheckSpec{Name: "c", URL: "http://x:{{.Host.Vars.port}}/"}, data)
			return err
		},
	} {
		err := render()
		if err == nil || ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), "port") {
			t.Errorf("%s: err = %v, want EINVALID naming port", name, err)
		}
	}
}

// A log check's path is a file name rendered plainly (no shell quoting);
// its pattern is a regexp and is never executed as a template.
func TestRenderCheckLogPathPlainPatternUntouched(t *testing.T) {
	spec := &Spec{Service: "hello"}
	h := Host{Name: "h01", DeployRoot: "/srv/my root", Vars: map[string]any{"app": "web"}}
	data := NewTemplateData(spec, h, "1.0-abc", "1.0")
	c := CheckSpec{Name: "l", Type: "log", Path: "{{.Root}}/run/{{.Host.Vars.app}}.log", Pattern: `{{x}} \d{2}`}
	got, err := RenderCheck(c, data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Path != "/srv/my root/run/web.log" || got.Pattern != c.Pattern {
		t.Fatalf("rendered %q %q", got.Path, got.Pattern)
	}
}
