package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
