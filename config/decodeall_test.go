package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestConfig_Decode_EveryUnknownKey: three unknown keys on lines 10, 11
// and 42 (and a wrong type between them) are all reported, each at its
// line, ordered by line.
func TestConfig_Decode_EveryUnknownKey(t *testing.T) {
	var b strings.Builder
	lines := []string{
		"service: x",             // 1
		"deploy_root: /srv/x",    // 2
		"hosts:",                 // 3
		"  - name: h01",          // 4
		"    address: /f",        // 5
		"groups:",                // 6
		"  - name: a",            // 7
		"    hosts: ['*']",       // 8
		"hooks:",                 // 9
		"  restrat: bin/restart", // 10
		"  before_stag: true",    // 11
		"keep_releases: many",    // 12
	}
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	for i := len(lines) + 1; i < 42; i++ {
		b.WriteString("# filler\n")
	}
	b.WriteString("deplyo_root: /srv/y\n") // 42
	_, err := Parse("drover.yaml", []byte(b.String()), "")
	var wheres, msgs []string
	for _, e := range allErrors(err) {
		wheres = append(wheres, e.Where)
		msgs = append(msgs, e.Message)
		if e.Hint == "" {
			t.Errorf("no hint: %+v", e)
		}
	}
	want := []string{"drover.yaml:10", "drover.yaml:11", "drover.yaml:12", "drover.yaml:42"}
	if !reflect.DeepEqual(wheres, want) {
		t.Fatalf("wheres %v, want %v:\n%v", wheres, want, err)
	}
	for i, m := range []string{`unknown key "restrat"`, `unknown key "before_stag"`, "keep_releases", `unknown key "deplyo_root"`} {
		if !strings.Contains(msgs[i], m) {
			t.Errorf("error %d: %q lacks %q", i, msgs[i], m)
		}
	}
}
