package main

// End-to-end test of the host lock (hostops/lock.go): one actor per host
// at a time, also when drover dies while a hook runs.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover/internal/localfleet"
)

// pinnedRestart is a restart hook like many real ones: it resolves the
// release it will start when it begins (here: pins it in a directory of
// its own), then stops the old process and starts that release. While
// the file slow exists in the fleet directory it takes its time first.
const pinnedRestart = `#!/bin/sh
set -eu
root=$1
fleet=$2
rel=$(cd -P "$root/current" && pwd)
pin=$(mktemp -d "$root/.pin-XXXXXX")
mkdir -p "$root/run"
ln -s "$rel" "$pin/current"
ln -s "$root/run" "$pin/run"
if [ -e "$fleet/slow" ]; then
	touch "$root/slow-began"
	sleep 2
fi
"$rel/bin/restart" "$pin"
rm -rf "$pin"
touch "$root/hook-done"
`

// TestE2EResumeWaitsForDeadRunsHook is the reproduced bug of issue 21:
// drover SIGKILLed while h01's restart hook runs, `drover resume` at once.
// Without the host lock resume restored h01 and reported success, then the
// dead run's hook finished and started the dead run's release: state.json
// and current on 1.0.0, 2.0.0 serving. With it, resume says what it waits
// for, waits for the hook, then restores; h01 is whole on 1.0.0.
func TestE2EResumeWaitsForDeadRunsHook(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hook := filepath.Join(dir, "pinned-restart")
	if err := os.WriteFile(hook, []byte(pinnedRestart), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := localfleet.New(localfleet.Options{Dir: dir, Hosts: 3, Groups: e2eGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(cfg), `restart: "bin/restart {{.Root}}"`, `restart: "`+hook+` {{.Root}} `+dir+`"`, 1)
	if y == string(cfg) {
		t.Fatal("no restart hook to replace in drover.yaml")
	}
	if err := os.WriteFile(f.Config, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	before := readState(t, f, "h01")
	v2 := writeRelease(t, f, "2.0.0", true)

	slow := filepath.Join(dir, "slow")
	if err := os.WriteFile(slow, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root := f.DeployRoot("h01")
	cmd := exec.Command(droverBin, "deploy", "-c", f.Config, "--release", v2)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
		}
	}()
	began := filepath.Join(root, "slow-began")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(began); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("h01's restart hook never began")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	os.Remove(slow)

	r := runDrover(t, "resume", "-c", f.Config)
	if r.code != 1 && r.code != 0 {
		t.Fatalf("resume: %s", r)
	}
	if !strings.Contains(r.stderr, "host h01: a restart hook of d-") || !strings.Contains(r.stderr, "is still running (pid") ||
		!strings.Contains(r.stderr, "waiting up to") {
		t.Errorf("resume does not say what it waits for:\n%s", r)
	}
	// The dead run's hook is over before anything is checked (without the
	// lock it would still be asleep now).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if out, _ := exec.Command("pgrep", "-f", hook).Output(); len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dead run's hook still runs")
		}
	}
	if got := readState(t, f, "h01"); got != before {
		t.Errorf("h01 state.json after resume: %+v, want %+v", got, before)
	}
	link, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil || filepath.Base(link) != before.Current {
		t.Errorf("h01 current -> %q (%v), want %s", link, err, before.Current)
	}
	wantServing(t, f, "1.0.0", nil)
}
