package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/internal/localfleet"
)

// TestE2EAnsibleInventoryBadInput: a broken Ansible inventory stops the
// command with exit 2 and the inventory's file:line, before any host is
// contacted.
func TestE2EAnsibleInventoryBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hosts.ini", "[web]\nweb[01:02].example.com\n[web:childs]\ndb\n")
	write("drover.yaml", "service: x\ndeploy_root: /srv/x\ntransport: ssh\ninventory: {ansible: hosts.ini}\ngroups: [{name: web, hosts: ['@web']}]\n")
	r := runDrover(t, "status", "-c", filepath.Join(dir, "drover.yaml"))
	mustExit(t, r, 2)
	if want := filepath.Join(dir, "hosts.ini") + `:3: section [web:childs] has unknown type "childs"`; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r)
	}
}

// TestE2EAnsibleInventoryDeploy: a local fleet whose hosts come from an
// Ansible INI inventory — addresses from ansible_host, the service's port
// from [group:vars] and host vars, drover groups naming Ansible groups —
// deploys and serves the release on every host.
func TestE2EAnsibleInventoryDeploy(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 3,
		Groups: "  - {name: canary, hosts: ['@canary'], batch: 1}\n  - {name: rest, hosts: ['@web']}\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	var ini strings.Builder
	ini.WriteString("[canary]\nh01\n\n[others]\n")
	for _, h := range f.Hosts {
		if h.Name != "h01" {
			fmt.Fprintf(&ini, "%s port=%d\n", h.Name, h.Port)
		}
	}
	h01, _ := f.Host("h01")
	fmt.Fprintf(&ini, "\n[web:children]\ncanary\nothers\n\n[canary:vars]\nport=%d\n", h01.Port)
	for _, h := range f.Hosts {
		fmt.Fprintf(&ini, "\n[%s_dir]\n%s ansible_host=%q\n", h.Name, h.Name, h.Dir)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "hosts.ini"), []byte(ini.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	start, end := strings.Index(cfg, "\nhosts:\n"), strings.Index(cfg, "\ngroups:\n")
	if start < 0 || end < start {
		t.Fatalf("fleet config has no hosts block before groups:\n%s", cfg)
	}
	cfg = cfg[:start] + "\ninventory: {ansible: hosts.ini}" + cfg[end:]
	if err := os.WriteFile(f.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := deploy(t, f, writeRelease(t, f, "1.0.0", true))
	mustExit(t, r, 0)
	wantServing(t, f, "1.0.0", nil)
	if !strings.Contains(r.stdout, "group canary") || !strings.Contains(r.stdout, "group rest") {
		t.Errorf("deploy output lacks the groups:\n%s", r.stdout)
	}
}
