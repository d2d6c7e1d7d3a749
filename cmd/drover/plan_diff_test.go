package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestE2EPlanDiffGolden: `plan --diff` on a fleet where one host changes
// config and release, one is already on the release and one is
// unreachable (exit 3), compared with testdata/plan_diff.golden (temp paths, ports
// and content hashes normalized). Without --diff the same plan shows a
// count of changed files per host instead of the diffs.
func TestE2EPlanDiffGolden(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 4)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	v2 := writeRelease(t, f, "2.0.0", true)
	mustExit(t, deploy(t, f, v2, "--limit", "h02"), 0)
	// h04's directory is gone: transport local cannot reach it.
	h04 := filepath.Join(f.Dir, "hosts", "h04")
	if err := os.Rename(h04, h04+".away"); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(h04+".away", h04)

	r := runDrover(t, "plan", "-c", f.Config, "--release", v2, "--diff")
	mustExit(t, r, 3) // h04 unreachable, as status
	normalize := func(s string) string {
		s = strings.ReplaceAll(s, f.Dir, "<fleet>")
		for _, h := range f.Hosts {
			s = strings.ReplaceAll(s, fmt.Sprint(h.Port), "<port-"+h.Name+">")
		}
		return regexp.MustCompile(`\b([0-9]+\.[0-9]+\.[0-9]+)-[0-9a-f]{12}\b`).ReplaceAllString(s, "$1-<hash>")
	}
	got := normalize(r.stdout)
	compareGolden(t, filepath.Join("testdata", "plan_diff.golden"), got)
	for _, want := range []string{"--- h01/current/hello.conf (live)", "-version = 1.0.0", "+version = 2.0.0", "= h02", "! h04", "Nothing was changed."} {
		if !strings.Contains(got, want) {
			t.Errorf("plan --diff lacks %q:\n%s", want, got)
		}
	}

	r = runDrover(t, "plan", "-c", f.Config, "--release", v2)
	mustExit(t, r, 3)
	if strings.Contains(r.stdout, "+version") || strings.Contains(r.stdout, "@@") {
		t.Errorf("plan without --diff shows diffs:\n%s", r.stdout)
	}
	if n := strings.Count(r.stdout, "1 config file changed (--diff shows how)"); n != 2 {
		t.Errorf("want the change count on h01 and h03, got %d:\n%s", n, r.stdout)
	}
}
