package config

import (
	"reflect"
	"testing"
)

// shared_dirs: each entry a clean relative path inside the release, none
// inside another, no config file rendered into one; every error at the
// entry's line.
func TestConfig_Validate_SharedDirs(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	runErrCases(t, []errCase{
		{"absolute", top + fleet + "shared_dirs:\n  - logs\n  - /var/log # <-\n", "", `shared_dirs[1]: "/var/log" is absolute`},
		{"dotdot", top + fleet + "shared_dirs:\n  - ../logs # <-\n", "", `shared_dirs[0]: "../logs" leaves the release directory`},
		{"dotdot inside", top + fleet + "shared_dirs:\n  - var/../../etc # <-\n", "", "leaves the release directory"},
		{"dot", top + fleet + "shared_dirs:\n  - . # <-\n", "", "is the release directory itself"},
		{"empty", top + fleet + "shared_dirs:\n  - '' # <-\n", "", "shared_dirs[0]: empty name"},
		{"unclean", top + fleet + "shared_dirs:\n  - ./logs # <-\n", "", `write it as "logs"`},
		{"trailing slash", top + fleet + "shared_dirs:\n  - logs/ # <-\n", "", `write it as "logs"`},
		{"manifest", top + fleet + "shared_dirs:\n  - drover-release.json # <-\n", "", "a name drover keeps for itself"},
		{"duplicate", top + fleet + "shared_dirs:\n  - logs\n  - logs # <-\n", "", `shared_dirs[1]: "logs" and "logs" overlap`},
		{"nested", top + fleet + "shared_dirs:\n  - var\n  - var/log # <-\n", "", `"var" and "var/log" overlap`},
		{"config file inside", top + fleet + "shared_dirs: [run]\nconfig_files:\n  - template: a.tmpl\n    dest: run/a.conf # <-\n", "", `config_files[0].dest: "run/a.conf" is inside shared dir "run"`},
	})
}

// Several bad entries are each reported, not only the first.
func TestConfig_Validate_SharedDirsAllReported(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	doc := top + fleet + "shared_dirs:\n  - /abs\n  - ../up\n"
	_, err := Parse("drover.yaml", []byte(doc), "")
	if n := len(allErrors(err)); n != 2 {
		t.Fatalf("%d errors, want 2: %v", n, err)
	}
}

func TestConfig_Parse_SharedDirs(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	s, err := Parse("drover.yaml", []byte(top+fleet+"shared_dirs: [logs, var/run]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"logs", "var/run"}; !reflect.DeepEqual(s.SharedDirs, want) {
		t.Fatalf("SharedDirs = %q, want %q", s.SharedDirs, want)
	}
	s, err = Parse("drover.yaml", []byte(top+fleet), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.SharedDirs != nil {
		t.Fatalf("SharedDirs = %q without shared_dirs", s.SharedDirs)
	}
}
