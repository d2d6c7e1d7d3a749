package main

// End-to-end test of the host lock (hostops/lock.go): one actor per host
// at a time, also when drover dies while a hook runs.

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/config"
	"drover/internal/localfleet"
	"drover/internal/sshfleet"
	sshtransport "drover/transport/ssh"
)

// pinnedRestart is a restart hook like many real ones: it resolves the
// release it will start when it begins (here: pins it in a directory of
// its own), then stops the old process and starts that release. While
// the file slow exists in the fleet directory it takes its time first:
// 4s, the window in which the test kills drover and starts resume, which
// must still find the hook running. (It was 2s while stopping the old
// race-built service took another second; on a busy machine 2s alone was
// sometimes gone before resume looked.)
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
	sleep 4
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

// TestE2ESSHDroppedSessionKeepsHostLocked: over real sshd, a hook runs in
// a `drover host serve` session that then goes away.
//
//   - The connection closes (the controller died, the network dropped it
//     and sshd noticed): serve reads EOF and kills the hook's process
//     group, as it did before the host lock; the host is free once the
//     hook is gone, never while it runs.
//   - serve itself is killed (SIGKILL, the session torn down without
//     EOF being seen): the orphaned hook keeps the inherited lock, and
//     the next actor waits for it, saying what it waits for.
func TestE2ESSHDroppedSessionKeepsHostLocked(t *testing.T) {
	t.Parallel()
	f := startSSHFleet(t, droverHeld(sshfleet.Options{Dir: t.TempDir(), Hosts: 2}))
	spec, err := config.LoadConfig(f.Config, "")
	if err != nil {
		t.Fatal(err)
	}
	h := spec.Hosts[0]
	root := f.Hosts[0].Root
	cfg := spec.SSH
	var mu sync.Mutex
	var notices []string
	newTransport := func() *sshtransport.Transport {
		return &sshtransport.Transport{Config: cfg, Self: droverBin, AgentSocket: "/nonexistent", Notice: func(host, msg string) {
			mu.Lock()
			notices = append(notices, host+": "+msg)
			mu.Unlock()
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := []string{"DROVER_HOOK=restart", "DROVER_DEPLOY=d-dropped"}
	// The hook runs until the test releases it (30 s at most), so the
	// next actor finds it running however slowly its connection comes up.
	hook := func(name string) string {
		return "echo $$ > " + name + ".pid; touch " + name + ".started; i=0; while [ ! -e " + name + ".release ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; touch " + name + ".done"
	}
	waiting := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(notices, "\n"), "h01: a restart hook of d-dropped is still running (pid")
	}
	startHook := func(tr *sshtransport.Transport, name string) {
		c, err := tr.Open(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, drover.ExecRequest{Command: hook(name), Dir: ".", Env: env, Timeout: time.Minute})
			errc <- err
		}()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(root, name+".started")); err == nil {
				return
			}
			select {
			case err := <-errc:
				t.Fatalf("%s hook ended before it started: %v (%s)", name, err, drover.ErrorHint(err))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s hook never started", name)
			}
		}
	}
	// The next actor: an exec that records whether the hook was over.
	next := func(name string, release bool) {
		if release {
			// Once the next actor says it waits, the hook may end.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for !waiting() {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
				os.WriteFile(filepath.Join(root, name+".release"), nil, 0o644)
			}()
		}
		tr := newTransport()
		defer tr.Close()
		c, err := tr.Open(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		cmd := "if [ -e " + name + ".done ] || ! kill -0 $(cat " + name + ".pid) 2>/dev/null; then echo over; else echo running; fi"
		res, err := c.Exec(ctx, drover.ExecRequest{Command: cmd, Dir: ".", Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(res.Output) != "over" {
			t.Fatalf("%s: the next actor ran while the dropped session's hook was %s", name, res.Output)
		}
	}

	// 1. The connection closes: the hook is killed, then the host is free.
	tr := newTransport()
	startHook(tr, "eof")
	tr.Close()
	next("eof", false)
	if _, err := os.Stat(filepath.Join(root, "eof.done")); err == nil {
		t.Error("the hook of a closed session ran to its end: it was not killed")
	}

	// 2. serve is killed: the hook runs on, and keeps the host locked.
	tr = newTransport()
	defer tr.Close()
	startHook(tr, "kill")
	out, err := exec.Command("pgrep", "-f", "host serve --root "+root).Output()
	if err != nil {
		t.Fatalf("no drover host serve for %s: %v", root, err)
	}
	for _, p := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(p)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	next("kill", true)
	if _, err := os.Stat(filepath.Join(root, "kill.done")); err != nil {
		t.Error("the orphaned hook did not run to its end")
	}
	if !waiting() {
		t.Errorf("the next actor did not say what it waited for: %q", notices)
	}
}
