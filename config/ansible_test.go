package config

import (
	"bytes"
	"encoding/json"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"drover"
)

// ansibleList runs Debian's ansible-inventory on file and returns its
// --list document.
func ansibleList(t *testing.T, file string) map[string]any {
	t.Helper()
	bin, err := exec.LookPath("ansible-inventory")
	if err != nil {
		t.Fatalf("ansible-inventory is missing: install Debian's ansible package (scripts/deps.sh does): %v", err)
	}
	cmd := exec.Command(bin, "-i", filepath.Base(file), "--list")
	cmd.Dir = filepath.Dir(file)
	tmp := t.TempDir()
	// Hermetic: no ansible.cfg of the machine, temp files in the test's
	// directory, and an inventory Ansible cannot parse is a failure, not
	// a warning and an empty list.
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(tmp, "none.cfg"), "ANSIBLE_LOCAL_TEMP="+tmp,
		"ANSIBLE_HOME="+tmp, "ANSIBLE_INVENTORY_UNPARSED_FAILED=true", "ANSIBLE_NOCOLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ansible-inventory -i %s --list: %v\n%s", file, err, errb.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("ansible-inventory printed no JSON: %v\n%s", err, out.String())
	}
	return doc
}

// ansibleMembers resolves group -> every host in it or in a group below
// it, from an --list document.
func ansibleMembers(doc map[string]any) map[string][]string {
	var hostsOf func(g string, seen map[string]bool) []string
	hostsOf = func(g string, seen map[string]bool) []string {
		if seen[g] {
			return nil
		}
		seen[g] = true
		e, _ := doc[g].(map[string]any)
		var out []string
		out = append(out, asList(e["hosts"])...)
		for _, c := range asList(e["children"]) {
			out = append(out, hostsOf(c, seen)...)
		}
		return out
	}
	m := map[string][]string{}
	for g := range doc {
		if g == "_meta" {
			continue
		}
		if hs := hostsOf(g, map[string]bool{}); len(hs) > 0 {
			slices.Sort(hs)
			m[g] = slices.Compact(hs)
		}
	}
	return m
}

func asList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, e := range l {
		out = append(out, e.(string))
	}
	return out
}

// jsonish turns Go values into what encoding/json reads back, so drover's
// uint64 and Ansible's JSON numbers compare equal when they are.
func jsonish(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

// TestAnsibleInventoryParity: for inventories in the shapes Ansible's
// documentation shows (INI with ranges, :children, :vars, Python-literal
// values; YAML with nested children, host ports and a step range; an INI
// file without extension declaring children before the group), with
// group_vars/ and host_vars/ as files and as directories, drover's hosts,
// addresses, vars and groups are what `ansible-inventory --list` prints.
func TestAnsibleInventoryParity(t *testing.T) {
	for _, file := range []string{"ini/hosts.ini", "yaml/inventory.yml", "noext/production"} {
		t.Run(file, func(t *testing.T) {
			path, err := filepath.Abs(filepath.Join("testdata", "ansible", file))
			if err != nil {
				t.Fatal(err)
			}
			doc := ansibleList(t, path)
			meta := doc["_meta"].(map[string]any)["hostvars"].(map[string]any)
			members := ansibleMembers(doc)

			cfg := filepath.Join(t.TempDir(), "drover.yaml")
			yml := "service: x\ndeploy_root: /srv/x\ntransport: ssh\ninventory: {ansible: " + path + "}\ngroups: [{name: all, hosts: ['*']}]\n"
			if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
				t.Fatal(err)
			}
			spec, err := LoadConfig(cfg, "")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, h := range spec.Hosts {
				names = append(names, h.Name)
				want, _ := meta[h.Name].(map[string]any)
				if want == nil {
					want = map[string]any{}
				}
				if got := jsonish(t, h.Vars); !reflect.DeepEqual(got, any(want)) {
					t.Errorf("%s vars:\n drover  %v\n ansible %v", h.Name, got, want)
				}
				addr := h.Name
				if a, ok := want["ansible_host"].(string); ok {
					addr = a
				}
				if p, ok := want["ansible_port"].(float64); ok {
					addr = net.JoinHostPort(addr, strings.TrimSuffix(jsonNumber(p), ".0"))
				}
				if h.Address != addr {
					t.Errorf("%s address %q, want %q", h.Name, h.Address, addr)
				}
				if u, ok := want["ansible_user"].(string); ok && spec.SSH.User != u {
					t.Errorf("ssh user %q, want ansible_user %q", spec.SSH.User, u)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, members["all"]) {
				t.Errorf("hosts:\n drover  %v\n ansible %v", names, members["all"])
			}

			hosts, err := ansibleHosts(path, file)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, h := range hosts {
				for _, g := range h.Groups {
					got[g] = append(got[g], h.Name)
				}
			}
			for g := range got {
				slices.Sort(got[g])
			}
			for _, g := range slices.Sorted(maps.Keys(members)) {
				if !slices.Equal(got[g], members[g]) {
					t.Errorf("group %s:\n drover  %v\n ansible %v", g, got[g], members[g])
				}
			}
			for g := range got {
				if _, ok := members[g]; !ok {
					t.Errorf("drover has group %s (%v); ansible does not", g, got[g])
				}
			}
		})
	}
}

func jsonNumber(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// writeInv writes files (name -> content) into a new directory with a
// drover.yaml whose inventory is inv, and loads it.
func loadAnsible(t *testing.T, files map[string]string, extra string) error {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inv := "hosts.ini"
	if _, ok := files["hosts.yml"]; ok {
		inv = "hosts.yml"
	}
	yml := "service: x\ndeploy_root: /srv/x\ntransport: ssh\ninventory: {ansible: " + inv + "}\ngroups: [{name: all, hosts: ['*']}]\n" + extra
	cfg := filepath.Join(dir, "drover.yaml")
	os.WriteFile(cfg, []byte(yml), 0o644)
	_, err := Load(cfg, "")
	return err
}

func TestAnsibleInventoryBadInput(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		extra string
		where string // suffix of Where
		msg   string
	}{
		{"unknown section type", map[string]string{"hosts.ini": "[web]\na\n[web:kids]\nb\n"}, "", "hosts.ini:3", `section [web:kids] has unknown type "kids"`},
		{"var without =", map[string]string{"hosts.ini": "[web]\na port\n"}, "", "hosts.ini:2", `expected key=value host variable, got "port"`},
		{"child defined nowhere", map[string]string{"hosts.ini": "[web]\na\n[all2:children]\nweb\nghost\n"}, "", "hosts.ini:5", "names a group defined nowhere: ghost"},
		{"vars for no group", map[string]string{"hosts.ini": "[web]\na\n\n[ghost:vars]\nx=1\n"}, "", "hosts.ini:4", "[ghost:vars] is for a group defined nowhere"},
		{"vars line", map[string]string{"hosts.ini": "[web]\na\n[web:vars]\njust-a-word\n"}, "", "hosts.ini:4", "expected key=value in [web:vars]"},
		{"unclosed quote", map[string]string{"hosts.ini": "[web]\na x=\"open\n"}, "", "hosts.ini:2", "no closing quotation"},
		{"range without end", map[string]string{"hosts.ini": "\n[web]\nwww[1:].example.com\n"}, "", "hosts.ini:3", "has no end"},
		{"range too big", map[string]string{"hosts.ini": "[web]\nw[0:99999999]\n"}, "", "hosts.ini:2", "more than 100000 hosts"},
		{"space in section", map[string]string{"hosts.ini": "[web]\na\n[web servers]\n"}, "", "hosts.ini:3", "invalid section"},
		{"loop", map[string]string{"hosts.ini": "[a]\nh1\n[b]\nh2\n[a:children]\nb\n[b:children]\na\n"}, "", "hosts.ini:8", `adding group "a" as a child of "b" makes a loop`},
		{"yaml unknown key", map[string]string{"hosts.yml": "all:\n  children:\n    web:\n      host:\n        a:\n"}, "", "hosts.yml:4", `group web: unknown key "host"`},
		{"yaml syntax", map[string]string{"hosts.yml": "all:\n  hosts:\n    a: [1\n"}, "", "hosts.yml:", "YAML"},
		{"yaml vault", map[string]string{"hosts.yml": "all:\n  hosts:\n    a:\n      pw: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        6162\n"}, "", "hosts.yml", "Ansible Vault"},
		{"group_vars syntax", map[string]string{"hosts.ini": "[web]\na\n", "group_vars/web.yml": "x: 1\ny: [\n"}, "", "group_vars/web.yml:", "YAML"},
		{"users differ", map[string]string{"hosts.ini": "[web]\na ansible_user=alice\nb ansible_user=bob\nc\n"}, "", "hosts.ini:3", "different ansible_user values ((none): c; alice: a; bob: b)"},
		{"bad host name", map[string]string{"hosts.yml": "all:\n  hosts:\n    ok1:\n    'a/b':\n"}, "", "hosts.yml:4", `host "a/b" cannot be a drover host name`},
		{"user vs ssh.user", map[string]string{"hosts.ini": "[all:vars]\nansible_user=alice\n[web]\na\n"}, "ssh: {user: carol}\n", "hosts.ini", `ansible_user is "alice" but ssh.user is "carol" (`},
		{"missing file", map[string]string{"other.ini": ""}, "", "hosts.ini", "cannot read the Ansible inventory"},
		{"no such group", map[string]string{"hosts.ini": "[web]\na\n"}, "", "drover.yaml:8", `"@db" names no inventory group`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			extra := tc.extra
			if tc.name == "no such group" {
				extra = "environments:\n  e:\n    groups: [{name: g, hosts: ['@db']}]\n"
			}
			err := loadAnsible(t, tc.files, extra)
			if err == nil {
				t.Fatal("no error")
			}
			errs := allErrors(err)
			for _, e := range errs {
				if e.Code != drover.EINVALID {
					t.Errorf("code %v", e.Code)
				}
				if strings.HasSuffix(e.Where, tc.where) || strings.Contains(e.Where, tc.where) {
					if strings.Contains(e.Message, tc.msg) && e.Hint != "" {
						return
					}
				}
			}
			t.Fatalf("want an error at *%s containing %q, got %v", tc.where, tc.msg, err)
		})
	}
}

// A drover group names an Ansible group as "@name": its own hosts and its
// children's, in the inventory's order; the rest go to the catch-all.
func TestAnsibleGroupsInDroverGroups(t *testing.T) {
	path, _ := filepath.Abs(filepath.Join("testdata", "ansible", "ini", "hosts.ini"))
	cfg := filepath.Join(t.TempDir(), "drover.yaml")
	yml := "service: x\ndeploy_root: /srv/x\ntransport: ssh\ninventory: {ansible: " + path + "}\n" +
		"groups:\n  - {name: canary, hosts: ['@atlanta'], batch: 1}\n  - {name: usa, hosts: ['@usa']}\n  - {name: rest, hosts: ['*']}\n"
	os.WriteFile(cfg, []byte(yml), 0o644)
	spec, err := Load(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Groups[0].Hosts; !slices.Equal(got, []string{"host1", "host2"}) {
		t.Errorf("canary = %v", got)
	}
	if got := spec.Groups[1].Hosts; !slices.Equal(got, []string{"host3"}) {
		t.Errorf("usa = %v (host1 and host2 went to the canary)", got)
	}
	if got := len(spec.Groups[2].Hosts); got != 11 {
		t.Errorf("rest has %d hosts: %v", got, spec.Groups[2].Hosts)
	}
}
