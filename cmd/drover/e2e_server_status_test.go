package main

// `drover status --server` (issue 17 point 2): through the server, status
// names the deploy running now and the deploys that never finished, as
// it does reading a local store.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/internal/localfleet"
	"drover/report"
)

func TestE2EServerStatusShowsRunningAndUnfinished(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 3, Groups: dashboardGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	ci := createToken(t, tokens, "ci", "deployer")
	url := startServer(t, f.Config, tokens)
	remote := []string{"-c", f.Config, "--server", url, "--token", ci}

	// A deploy through the server waits for approval, holding the lock.
	cmd := exec.Command(droverBin, append([]string{"deploy", "--release", writeRelease(t, f, "1.0.0", true), "--yes", "--output", "json"}, remote...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Until the deploy has written its record, status names it from the
	// lock alone ("a deploy ... is running", "starting (reading the
	// hosts)"), without its version: wait for the record.
	var r result
	deadline := time.Now().Add(time.Minute)
	for {
		r = runDrover(t, append([]string{"status"}, remote...)...)
		mustExit(t, r, 0)
		if strings.Contains(r.stdout, "of 1.0.0 is running") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := afterTable(r.stdout)
	for _, want := range []string{"of 1.0.0 is running: pid", "since ", "now: "} {
		if !strings.Contains(got, want) {
			t.Errorf("status --server while a deploy runs lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runDrover(t, append([]string{"status", "--json"}, remote...)...)
	var sv struct {
		Running    *report.RunningDeploy     `json:"running"`
		Unfinished []report.UnfinishedDeploy `json:"unfinished"`
		Hosts      []json.RawMessage         `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sv); err != nil {
		t.Fatalf("status --server --json: %v\n%s", err, r)
	}
	if sv.Running == nil || sv.Running.Status != report.StatusRunning || sv.Running.Version != "1.0.0" || len(sv.Hosts) != 3 {
		t.Errorf("status --server --json while a deploy runs: %+v\n%s", sv.Running, r.stdout)
	}
	// The gate comes after staging and the canary: until the deploy
	// reaches it, approve answers that it is not waiting for approval.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		r = runDrover(t, append([]string{"approve"}, remote...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "not waiting for approval") || time.Now().After(deadline) {
			break
		}
	}
	mustExit(t, r, 0)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the deploy through the server: %v", err)
	}
	r = runDrover(t, append([]string{"status"}, remote...)...)
	mustExit(t, r, 0)
	if afterTable(r.stdout) != "" {
		t.Errorf("status --server of a quiet fleet prints more than the table:\n%s", r.stdout)
	}

	// A deploy of this machine's CLI, approved at its canary gate and
	// killed after switching h02, never finished: the server reads it
	// from the same store.
	local, events := startDeploy(t, f, writeRelease(t, f, "2.0.0", true), "--yes")
	killed := false
	for e := range events {
		if e.Kind == drover.EventGateStart {
			mustExit(t, runDrover(t, "approve", "-c", f.Config), 0)
		}
		if e.Kind == drover.EventStepDone && e.Step == "switch" && e.Host == "h02" {
			local.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	if !killed {
		t.Fatal("the deploy finished before it could be killed")
	}
	local.Wait()
	r = runDrover(t, append([]string{"status"}, remote...)...)
	mustExit(t, r, 0)
	got = afterTable(r.stdout)
	for _, want := range []string{"of 2.0.0 (started", "never finished", "it left 2 hosts switched to 2.0.0: h01, h02", "run `drover resume`"} {
		if !strings.Contains(got, want) {
			t.Errorf("status --server after a kill -9 lacks %q:\n%s", want, r.stdout)
		}
	}
}
