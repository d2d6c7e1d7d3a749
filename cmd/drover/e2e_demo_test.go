package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestE2EDemoShowsWhatItUsed: the demo prints the drover.yaml and the
// release it deployed (a newcomer writes their own from them) and says
// how to keep the fleet to look around (issue 17).
func TestE2EDemoShowsWhatItUsed(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	// The demo's fleet goes under TMPDIR: this test's, to see it removed.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, "demo", "--hosts", "2")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("drover demo: %v\n%s", err, out.String())
	}
	r := result{stdout: out.String()}
	for _, want := range []string{
		"the drover.yaml every deploy below uses",
		`  service: "hello"`, "  deploy_root: \"/srv/hello\"", `validate: "bin/hello -check -config {{.Path}}"`,
		"the release: a directory", "bin/restart", "hello.conf.tmpl",
		"  health = ok",
		"`drover demo --keep` keeps it",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("demo without --keep left %v", ents)
	}
}
