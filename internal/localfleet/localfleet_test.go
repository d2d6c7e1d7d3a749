package localfleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewWritesFleet(t *testing.T) {
	dir := t.TempDir()
	f, err := New(Options{Dir: dir, Hosts: 10})
	if err != nil {
		t.Fatal(err)
	}
	if f.Config != filepath.Join(dir, "drover.yaml") || f.Service != "hello" || f.StateDir != filepath.Join(dir, "state") {
		t.Errorf("fleet = %+v", f)
	}
	if len(f.Hosts) != 10 || f.Hosts[0].Name != "h01" || f.Hosts[9].Name != "h10" {
		t.Fatalf("hosts = %+v", f.Hosts)
	}
	ports := map[int]bool{}
	for _, h := range f.Hosts {
		if h.Port < 1 || h.Port > 65535 || ports[h.Port] {
			t.Errorf("%s: port %d is out of range or taken twice", h.Name, h.Port)
		}
		ports[h.Port] = true
		if h.Dir != filepath.Join(dir, "hosts", h.Name) {
			t.Errorf("%s: dir %s", h.Name, h.Dir)
		}
		root := f.DeployRoot(h.Name)
		if root != filepath.Join(h.Dir, "srv", "hello") {
			t.Errorf("%s: deploy root %s", h.Name, root)
		}
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			t.Errorf("%s: deploy root not made: %v", h.Name, err)
		}
	}

	b, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	q := jsonString
	for _, want := range []string{
		"service: \"hello\"\n",
		"deploy_root: \"/srv/hello\"\n",
		"transport: local\n",
		"state_dir: " + q(filepath.Join(dir, "state")) + "\n",
		"  - name: h01\n    address: " + q(f.Hosts[0].Dir) + "\n    vars: {port: " + fmt.Sprint(f.Hosts[0].Port) + "}\n",
		"  - name: h10\n    address: " + q(f.Hosts[9].Dir) + "\n    vars: {port: " + fmt.Sprint(f.Hosts[9].Port) + "}\n",
		DefaultGroups,
		"config_files:\n  - template: hello.conf.tmpl\n    dest: hello.conf\n    validate: \"bin/hello -check -config {{.Path}}\"\n",
		"hooks:\n  restart: \"bin/restart {{.Root}}\"\n  stop: \"bin/stop {{.Root}}\"\n",
		"  - name: port\n    type: tcp\n    address: \"127.0.0.1:{{.Host.Vars.port}}\"\n    timeout: 10s\n    interval: 200ms\n",
		"  - name: version\n    type: http\n    url: \"http://127.0.0.1:{{.Host.Vars.port}}/version\"\n    expect_status: 200\n    expect_body: \"{{.Release.Version}}\"\n    timeout: 10s\n    interval: 200ms\n",
		"  - name: health\n    type: http\n    url: \"http://127.0.0.1:{{.Host.Vars.port}}/health\"\n    expect_status: 200\n    timeout: 3s\n    interval: 200ms\n",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("drover.yaml lacks\n%s\nin\n%s", want, y)
		}
	}
	// Every top-level key once and only the ones drover knows.
	keys := topLevelKeys(t, y)
	want := []string{"service", "deploy_root", "keep_releases", "transport", "state_dir", "hosts", "groups", "config_files", "hooks", "checks"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("top-level keys = %v, want %v", keys, want)
	}
}

// topLevelKeys is a rough reading of a YAML document: the keys of its
// unindented lines, in order, failing on a repeated key or a tab.
func topLevelKeys(t *testing.T, y string) []string {
	t.Helper()
	var keys []string
	seen := map[string]bool{}
	for i, line := range strings.Split(y, "\n") {
		if strings.Contains(line, "\t") {
			t.Errorf("line %d has a tab: %q", i+1, line)
		}
		if line == "" || line[0] == ' ' || line[0] == '#' {
			continue
		}
		k, _, ok := strings.Cut(line, ":")
		if !ok {
			t.Errorf("line %d is not a key: %q", i+1, line)
			continue
		}
		if seen[k] {
			t.Errorf("line %d repeats key %q", i+1, k)
		}
		seen[k] = true
		keys = append(keys, k)
	}
	return keys
}

func TestNewOptions(t *testing.T) {
	dir := t.TempDir()
	groups := "  - name: all\n    hosts: [\"h*\"]\n    batch: 2\n    failure_limit: 1\n"
	f, err := New(Options{
		Dir:       dir,
		Hosts:     3,
		Service:   "web",
		Groups:    groups,
		StateDir:  filepath.Join(dir, "elsewhere"),
		ExtraYAML: "keep_releases_note: x",
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Config)
	y := string(b)
	for _, want := range []string{
		"service: \"web\"\n",
		"deploy_root: \"/srv/web\"\n",
		"groups:\n" + groups,
		"state_dir: " + jsonString(filepath.Join(dir, "elsewhere")),
	} {
		if !strings.Contains(y, want) {
			t.Errorf("drover.yaml lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(y, "canary") {
		t.Error("custom groups still include the default canary")
	}
	if !strings.HasSuffix(y, "keep_releases_note: x\n") {
		t.Errorf("ExtraYAML not appended:\n%s", y)
	}
	if f.DeployRoot("h02") != filepath.Join(dir, "hosts", "h02", "srv", "web") {
		t.Errorf("deploy root %s", f.DeployRoot("h02"))
	}
	if _, err := os.Stat(filepath.Join(dir, "elsewhere")); err != nil {
		t.Errorf("state dir not made: %v", err)
	}

	// A whole groups: block is taken as it is.
	f2, err := New(Options{Dir: t.TempDir(), Hosts: 1, Groups: "groups:\n" + groups})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(f2.Config)
	if strings.Count(string(b), "groups:") != 1 {
		t.Errorf("groups block doubled:\n%s", b)
	}
}

func TestNewNamesWiderFleets(t *testing.T) {
	f, err := New(Options{Dir: t.TempDir(), Hosts: 120})
	if err != nil {
		t.Fatal(err)
	}
	if f.Hosts[0].Name != "h001" || f.Hosts[119].Name != "h120" {
		t.Errorf("names %s..%s", f.Hosts[0].Name, f.Hosts[119].Name)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Hosts: 3},
		{Dir: t.TempDir()},
		{Dir: t.TempDir(), Hosts: -1},
		{Dir: t.TempDir(), Hosts: 1, Service: "a/b"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

func TestWriteRelease(t *testing.T) {
	f, err := New(Options{Dir: t.TempDir(), Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := f.WriteRelease("1.0.0", false)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(f.Dir, "src", "1.0.0") {
		t.Errorf("dir = %s", dir)
	}
	tmpl, err := os.ReadFile(filepath.Join(dir, "hello.conf.tmpl"))
	if err != nil || !strings.Contains(string(tmpl), "health = fail") {
		t.Errorf("unhealthy release template: %v\n%s", err, tmpl)
	}
	// Writing the same version again replaces it.
	if _, err := f.WriteRelease("1.0.0", true); err != nil {
		t.Fatal(err)
	}
	tmpl, _ = os.ReadFile(filepath.Join(dir, "hello.conf.tmpl"))
	if strings.Contains(string(tmpl), "health = fail") {
		t.Error("rewritten healthy release still fails health")
	}
	for _, v := range []string{"", "..", "a/b"} {
		if _, err := f.WriteRelease(v, true); err == nil {
			t.Errorf("WriteRelease(%q) succeeded", v)
		}
	}
}

func jsonString(s string) string {
	j, _ := json.Marshal(s)
	return string(j)
}
