package hello

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover"
)

func TestWriteRelease(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		t.Run(fmt.Sprintf("healthy=%v", healthy), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src", "1.0.0")
			if err := WriteRelease(dir, "1.0.0", healthy); err != nil {
				t.Fatal(err)
			}
			want := map[string]fs.FileMode{
				"VERSION":      0o644,
				ConfigTemplate: 0o644,
				"bin/hello":    0o755,
				"bin/restart":  0o755,
				"bin/stop":     0o755,
				"lib/hello.sh": 0o644,
			}
			for name, mode := range want {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if fi.Mode().Perm() != mode {
					t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
				}
			}
			if v, _ := os.ReadFile(filepath.Join(dir, "VERSION")); string(v) != "1.0.0\n" {
				t.Errorf("VERSION = %q", v)
			}

			// The template must render with exactly what drover gives it
			// (missing keys are errors there) and pass the service's check.
			tmpl, err := os.ReadFile(filepath.Join(dir, ConfigTemplate))
			if err != nil {
				t.Fatal(err)
			}
			out, err := drover.Render(ConfigTemplate, string(tmpl), templateData("h07", 18007, "1.0.0", "/srv/hello"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseConfig(strings.NewReader(out), "hello.conf")
			if err != nil {
				t.Fatalf("rendered config does not parse: %v\n%s", err, out)
			}
			wantHealth := HealthOK
			if !healthy {
				wantHealth = HealthFail
			}
			wantC := Config{Port: 18007, Version: "1.0.0", Message: "hello from h07", Health: wantHealth, Listen: DefaultListen}
			if c != wantC {
				t.Errorf("rendered config = %+v, want %+v", c, wantC)
			}
		})
	}
}

func TestWriteReleaseOverwritesModes(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "restart"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteRelease(dir, "2", true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin", "restart")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/restart after overwrite: %v %v", fi.Mode(), err)
	}
}

func TestWriteReleaseRejectsBadVersion(t *testing.T) {
	for _, v := range []string{"", "1 0", "1\n"} {
		if err := WriteRelease(t.TempDir(), v, true); err == nil {
			t.Errorf("WriteRelease(version %q) succeeded", v)
		}
	}
}

func templateData(host string, port int, version, root string) drover.TemplateData {
	return drover.TemplateData{
		Host:    drover.TemplateHost{Name: host, Address: "/fleet/" + host, Vars: map[string]any{"port": port}},
		Release: drover.TemplateRelease{ID: version + "-0123456789ab", Version: version},
		Service: "hello",
		Root:    root,
	}
}
