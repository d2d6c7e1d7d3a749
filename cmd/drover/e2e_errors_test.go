package main

// Each failure once (issue 17 point 3): a validate command that fails
// with several lines of output on every host — `nginx -t` does — is
// printed whole, once per host, and summed up once in the verdict.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/internal/localfleet"
)

// nginxCheck is a bin/hello whose -check fails as `nginx -t` does: two
// lines on stderr, the useful part past where a terminal line ends.
const nginxCheck = `#!/bin/sh
if [ "$1" = -check ]; then
  echo 'nginx: [emerg] unknown directive "sever_name" in /etc/nginx/sites-enabled/default-with-a-long-name.conf:12' >&2
  echo 'nginx: configuration file /etc/nginx/nginx.conf test failed' >&2
  exit 1
fi
exec drover sample-service "$@"
`

func TestE2EValidateErrorOnce(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 4, ExtraYAML: "stage_parallelism: 1\n",
		Groups: "groups:\n  - name: default\n    hosts: [\"h*\"]\n    batch: 1\n    failure_limit: 3\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	src := writeRelease(t, f, "1.0.0", true)
	if err := os.WriteFile(filepath.Join(src, "bin", "hello"), []byte(nginxCheck), 0o755); err != nil {
		t.Fatal(err)
	}

	r := deploy(t, f, src, "--no-progress")
	mustExit(t, r, 1)
	out := strings.ReplaceAll(normalize(r.stdout), f.Dir, "FLEET")
	out = regexp.MustCompile(`\d\d:\d\d:\d\d`).ReplaceAllString(out, "HH:MM:SS")
	out = regexp.MustCompile(`\(\d+(\.\d+)?(ns|µs|ms|s)\)`).ReplaceAllString(out, "(T)")
	out = regexp.MustCompile(`in \d+(\.\d+)?(ns|µs|ms|s)\b`).ReplaceAllString(out, "in T")
	out = stagePath.ReplaceAllString(out, ".stage-X")
	golden(t, "deploy_validate_fails", out)
	// Once per host, once in the summary: not 13 copies.
	if n := strings.Count(r.stdout, "unknown directive"); n != 5 {
		t.Errorf("the error is printed %d times, want 5 (once per host, once summed up):\n%s", n, r.stdout)
	}
	if n := strings.Count(r.stdout, "test failed"); n != 4 {
		t.Errorf("the error's second line is printed %d times, want 4 (once per host):\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stdout, `4 hosts (h01 h02 h03 h04): stage: nginx: [emerg] unknown directive "sever_name"`) {
		t.Errorf("no summary of the one error the four hosts share:\n%s", r.stdout)
	}

	// The live view, 80 columns wide, fed the same deploy's events: each
	// host's error whole (wrapped, not cut), once.
	r = deploy(t, f, src, "--output", "json")
	mustExit(t, r, 1)
	var buf bytes.Buffer
	v := newLiveView(&buf, -1, style{})
	v.manual = true
	v.size = func() (int, int) { return 80, 30 }
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e drover.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == "" || e.Kind == "result" {
			continue
		}
		v.Emit(e)
		v.now = func() time.Time { return e.Time }
		v.tick()
	}
	v.close()
	screen := stripANSI(buf.String())
	for _, l := range strings.Split(screen, "\n") {
		if visibleWidth(strings.TrimPrefix(l, "\r\x1b[2K")) > 80+8 {
			t.Errorf("a line wider than the terminal: %q", l)
		}
	}
	// Wrapped lines joined again: no whitespace at all.
	flat := regexp.MustCompile(`\s+`).ReplaceAllString(regexp.MustCompile(`\r|\x1b\[[0-9;]*[A-Za-z]`).ReplaceAllString(screen, ""), "")
	if n := strings.Count(flat, "default-with-a-long-name.conf:12"); n != 4 {
		t.Errorf("the live view shows the error's end %d times, want 4 (once per host, whole):\n%s", n, screen)
	}
	if n := strings.Count(flat, "testfailed"); n != 4 {
		t.Errorf("the live view shows the error's second line %d times, want 4:\n%s", n, screen)
	}
}
