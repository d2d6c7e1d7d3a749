package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/internal/localfleet"
	"drover/internal/sshfleet"
)

// logChecks: the service must say it is listening, and must log no ERROR
// for a second after its restart. Both read ROOT/run/hello.log, where the
// sample service's restart hook appends its output.
const logChecks = `
- name: started
  type: log
  path: "{{.Root}}/run/hello.log"
  pattern: 'listening on 127\.0\.0\.1:\d+'
  timeout: 10s
  interval: 100ms
- name: no-errors
  type: log
  path: "{{.Root}}/run/hello.log"
  pattern: "ERROR"
  absent: true
  window: 1s
  timeout: 5s
  interval: 100ms
`

// TestE2ELogChecks: a good release passes both log checks; a release that
// logs an ERROR at start (and is otherwise healthy: every other check
// passes) halts in the canary and is rolled back, the failure quoting the
// line; and the next good release passes although that ERROR line is still
// in the file, because only lines written since each restart count.
func TestE2ELogChecks(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 3, Groups: e2eGroups, ExtraChecks: logChecks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)

	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	wantServing(t, f, "1.0.0", nil)

	r := deploy(t, f, withStartupError(t, writeRelease(t, f, "2.0.0", true)))
	mustExit(t, r, 1)
	wantServing(t, f, "1.0.0", nil)
	out := r.stdout + r.stderr
	for _, want := range []string{"HALT", "no-errors", `1 line(s) matching "ERROR" since the restart: "hello 2.0.0: ERROR cannot open cache /var/cache/hello"`} {
		if !strings.Contains(out, want) {
			t.Errorf("halted deploy's output lacks %q:\n%s", want, out)
		}
	}
	if s := readState(t, f, "h02"); !strings.HasPrefix(s.Current, "1.0.0-") {
		t.Errorf("h02 was touched by the halted deploy: %+v", s)
	}
	log, _ := os.ReadFile(filepath.Join(f.DeployRoot("h01"), "run", "hello.log"))
	if !strings.Contains(string(log), "ERROR cannot open cache") {
		t.Fatalf("h01's log lacks the bad release's ERROR line:\n%s", log)
	}

	// The ERROR line is still in h01's log; it was written before this
	// restart and must not halt the next release.
	r = deploy(t, f, writeRelease(t, f, "3.0.0", true))
	mustExit(t, r, 0)
	wantServing(t, f, "3.0.0", nil)
}

// withStartupError makes the release in src log an ERROR line at start
// while staying healthy by every other check.
func withStartupError(t *testing.T, src string) string {
	t.Helper()
	tmpl := filepath.Join(src, "hello.conf.tmpl")
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl, append(b, "startup_error = cannot open cache /var/cache/hello\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestE2ESSHLogChecks: over real sshd the log checks run on the host, in
// `drover host check`, the mark taken there before the restart: the good
// release passes (its "listening on" line is found only because the mark
// came before the restart), the one logging an ERROR is rolled back.
func TestE2ESSHLogChecks(t *testing.T) {
	t.Parallel()
	f := startSSHFleet(t, droverHeld(sshfleet.Options{Dir: t.TempDir(), Hosts: 2, ExtraChecks: logChecks}))
	mustExit(t, runDrover(t, "deploy", "-c", f.Config, "--release", sshRelease(t, f, "1.0.0")), 0)
	sshServing(t, f, "1.0.0", nil)
	// The hosts' drover is the one placed there, not uploaded again:
	// what every test of droverHeld relies on for its speed.
	for _, h := range f.Hosts {
		heldBinaryUsed(t, h)
	}
	r := runDrover(t, "deploy", "-c", f.Config, "--release", withStartupError(t, sshRelease(t, f, "2.0.0")))
	mustExit(t, r, 1)
	sshServing(t, f, "1.0.0", nil)
	if want := `"hello 2.0.0: ERROR cannot open cache /var/cache/hello"`; !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("halted deploy's output lacks %s:\n%s", want, r)
	}
}
