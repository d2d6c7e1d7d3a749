package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPromoteUsage: promote's bad command lines are exit 2 with the
// mistake named, before any config, store or host is opened.
func TestPromoteUsage(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(cfg, []byte("service: hello\ndeploy_root: /srv/hello\nstate_dir: "+filepath.Join(filepath.Dir(cfg), "state")+
		"\ngroups: [{name: all, hosts: [\"*\"]}]\nenvironments:\n  staging: {hosts: [{name: s1, address: "+filepath.Dir(cfg)+"}]}\n"+
		"  prod:\n    hosts: [{name: p1, address: "+filepath.Dir(cfg)+"}]\n    requires: {env: staging, soak: 5m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"promote", "-c", cfg, "staging"}, "two environment names"},
		{[]string{"promote", "-c", cfg, "prod", "prod"}, "the same environment"},
		{[]string{"promote", "-c", cfg, "staging", "prod", "--env", "prod"}, "no --env, --release or --version"},
		{[]string{"promote", "-c", cfg, "staging", "prod", "--release", "x.tar.gz"}, "no --env, --release or --version"},
		{[]string{"promote", "-c", cfg, "staging", "qa"}, `unknown environment "qa"`},
		{[]string{"promote", "-c", cfg, "staging", "prod", "--yes"}, "staging runs no one release"},
	} {
		code, _, errOut := runInProcess(t, "", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q:\n%s", tc.args, code, tc.want, errOut)
		}
	}
}

// TestOneRelease: diff's "the same release" needs one release on every
// host of each side; a host on none, another release or not answering
// makes it "no one release".
func TestOneRelease(t *testing.T) {
	side := func(unreachable int, rels ...string) *envSide {
		s := &envSide{Releases: map[string]int{}, Unreachable: unreachable}
		for _, r := range rels {
			s.Releases[r]++
		}
		return s
	}
	for _, tc := range []struct {
		sides map[string]*envSide
		want  string
	}{
		{map[string]*envSide{"web": side(0, "1.0-a", "1.0-a"), "db": side(0, "1.0-a")}, "1.0-a"},
		{map[string]*envSide{"web": side(0, "1.0-a"), "db": side(0, "1.0-b")}, ""},
		{map[string]*envSide{"web": side(0, "1.0-a", "-")}, ""},
		{map[string]*envSide{"web": side(1, "1.0-a")}, ""},
		{map[string]*envSide{}, ""},
	} {
		if got := oneRelease(tc.sides); got != tc.want {
			t.Errorf("oneRelease(%v) = %q, want %q", tc.sides, got, tc.want)
		}
	}
	d := envDiff{A: "staging", B: "prod", ReleaseA: "1.0-a", ReleaseB: "1.0-a", SameRelease: true}
	if got := d.sameReleaseLine(); got != "staging and prod run the same release, 1.0-a" {
		t.Errorf("same: %q", got)
	}
	d = envDiff{A: "staging", B: "prod", ReleaseA: "2.0-c"}
	if got := d.sameReleaseLine(); got != "not the same release: staging runs 2.0-c, prod runs no one release" {
		t.Errorf("differ: %q", got)
	}
}
