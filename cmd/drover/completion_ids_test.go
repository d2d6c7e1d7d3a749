package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCompletionOffersDeployAndReleaseIDs: `drover show <TAB>` (and
// approve, abort) offers the history's deploy IDs, `rollback --to <TAB>`
// the releases deployed, newest first.
func TestCompletionOffersDeployAndReleaseIDs(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	// Before any deploy: nothing offered, and nothing created.
	if code, out, errOut := runInProcess(t, "", "__complete", "show", "-c", f.Config, ""); code != 0 || strings.Contains(out, "d-") {
		t.Errorf("__complete show before any deploy: exit %d\n%s%s", code, out, errOut)
	}
	var ids, releases []string
	for _, v := range []string{"1.0.0", "2.0.0"} {
		r := deploy(t, f, writeRelease(t, f, v, true), "--output", "json")
		mustExit(t, r, 0)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var e struct{ Deploy, Release string }
		json.Unmarshal([]byte(lines[0]), &e)
		ids = append(ids, e.Deploy)
		releases = append(releases, e.Release)
	}
	for _, cmd := range []string{"show", "approve", "abort"} {
		code, out, errOut := runInProcess(t, "", "__complete", cmd, "-c", f.Config, "")
		if code != 0 || !strings.Contains(out, ids[1]+"\tdeploy 2.0.0 succeeded\n"+ids[0]+"\tdeploy 1.0.0 succeeded\n") {
			t.Errorf("__complete %s: exit %d, want %v newest first\n%s%s", cmd, code, ids, out, errOut)
		}
	}
	code, out, errOut := runInProcess(t, "", "__complete", "rollback", "-c", f.Config, "--to", "1.")
	if code != 0 || !strings.Contains(out, releases[0]+"\t1.0.0\n") || strings.Contains(out, releases[1]) {
		t.Errorf("__complete rollback --to 1.: exit %d, want %s\n%s%s", code, releases[0], out, errOut)
	}
}
