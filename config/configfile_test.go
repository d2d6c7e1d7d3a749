package config

import (
	"io/fs"
	"testing"

	"drover"
)

// config_files[].mode is octal however it is written (YAML alone would
// read 640 as decimal), defaults to 0640, and owner/group pass through.
func TestConfig_ConfigFileMode(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	for _, tc := range []struct {
		mode string
		want fs.FileMode
	}{
		{"", drover.DefaultConfigFileMode},
		{"mode: 0600", 0o600},
		{"mode: '0600'", 0o600},
		{`mode: "0644"`, 0o644},
		{"mode: 600", 0o600},
		{"mode: 0o400", 0o400},
		{"mode: 0755", 0o755},
	} {
		doc := top + fleet + "config_files:\n  - template: a.tmpl\n    dest: a.conf\n    owner: app\n    group: '1001'\n    " + tc.mode + "\n"
		s, err := Parse("drover.yaml", []byte(doc), "")
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if cf := s.ConfigFiles[0]; cf.Mode != tc.want || cf.Owner != "app" || cf.Group != "1001" {
			t.Errorf("%s: got %+v, want mode %o", tc.mode, cf, tc.want)
		}
	}
}

func TestConfig_Validate_ConfigFileMode(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	cf := top + fleet + "config_files:\n  - template: a.tmpl\n    dest: a.conf\n"
	runErrCases(t, []errCase{
		{"not octal", cf + "    mode: 0680 # <-\n", "", `config_files[0].mode: "0680" is not an octal mode`},
		{"words", cf + "    mode: rw-r----- # <-\n", "", "is not an octal mode"},
		{"setuid", cf + "    mode: 04755 # <-\n", "", "has bits beyond rwxrwxrwx"},
		{"owner cannot read", cf + "    mode: 0040 # <-\n", "", "the file's owner could not read it"},
		{"bad owner", cf + "    owner: 'root; rm' # <-\n", "", `config_files[0].owner: "root; rm" is not a user or group name`},
		{"bad group", cf + "    group: 'a b' # <-\n", "", `config_files[0].group: "a b" is not a user or group name`},
	})
}
