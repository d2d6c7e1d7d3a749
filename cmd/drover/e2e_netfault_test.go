package main

// End-to-end network fault over real OpenSSH: a host whose machine stops
// answering mid-restart (its sshd and everything under it SIGSTOPped: TCP
// connections stay open, nothing answers on them) is found by the SSH
// keepalives within interval × (count+1), reported UNREACHABLE, counted
// against the failure limit, and the deploy ends instead of hanging. Once
// it answers again, `drover resume` restores it.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover/internal/sshfleet"
)

func TestE2ESSHHostHangsMidRestart(t *testing.T) {
	t.Parallel()
	const interval, count = time.Second, 2
	bound := interval * (count + 1)
	f := startSSHFleet(t, droverHeld(sshfleet.Options{
		Dir: t.TempDir(), Hosts: 3,
		Groups:   "groups:\n  - {name: canary, hosts: [h01], batch: 1, failure_limit: 0}\n  - {name: default, hosts: [h02, h03], batch: 1, failure_limit: 1}\n",
		SSHExtra: "  keepalive_interval: 1s\n  keepalive_count: 2\n",
		// h02 is frozen during this sleep, and the test needs time to see
		// it begin: 6s, not 2, so a stall of the machine (tests run in
		// parallel) does not let the restart through before the freeze.
		ExtraHooks: `before_restart: "echo x >> {{.Root}}/restarts; case {{.Host.Name}} in h02) sleep 6;; *) sleep 2;; esac"`,
	}))
	if err := f.WriteKnownHosts(); err != nil {
		t.Fatal(err)
	}
	mustExit(t, runDrover(t, "deploy", "-c", f.Config, "--release", sshRelease(t, f, "1.0.0")), 0)
	v2 := sshRelease(t, f, "2.0.0")

	d := startDrover(t, "A", "deploy", "-c", f.Config, "--release", v2)
	h02 := f.Host("h02")
	// h02's second restart (the first was 1.0.0's) has begun.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		b, _ := os.ReadFile(filepath.Join(h02.Root, "restarts"))
		if strings.Count(string(b), "x") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("h02 never began its restart:\n%s", d.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.Freeze("h02"); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	var found time.Duration
	for found == 0 {
		for _, l := range strings.Split(d.out.String(), "\n") {
			if strings.Contains(l, "h02") && strings.Contains(strings.ToLower(l), "unreachable") {
				found = time.Since(frozen)
			}
		}
		select {
		case <-d.exited:
			if found == 0 {
				t.Fatalf("the deploy ended without reporting h02 unreachable:\n%s", d.out)
			}
		case <-time.After(50 * time.Millisecond):
		}
		if found == 0 && time.Since(frozen) > bound+30*time.Second {
			t.Fatalf("h02 not reported unreachable %s after it froze (bound %s):\n%s", time.Since(frozen), bound, d.out)
		}
	}
	t.Logf("h02 froze mid-restart: reported unreachable after %s (keepalive %s × %d, bound %s)", found.Round(10*time.Millisecond), interval, count, bound)
	// The keepalive bound, plus the step's own bookkeeping.
	if found > bound+2*time.Second {
		t.Errorf("h02 reported unreachable %s after it froze, bound %s", found, bound)
	}
	code := d.wait(t, 2*time.Minute)
	res := result{code: code, stdout: d.out.String()}
	// One failure within default's limit of 1: h03 is deployed, and the
	// lost host makes the deploy need a person.
	mustExit(t, res, 3)
	if !strings.Contains(res.stdout, "UNREACHABLE") {
		t.Errorf("the verdict does not list h02 UNREACHABLE:\n%s", res)
	}
	if err := f.Thaw("h02"); err != nil {
		t.Fatal(err)
	}
	sshServing(t, f, "2.0.0", map[string]string{"h02": "1.0.0"})

	// It answers again: resume restores it, whole, on what it ran before.
	r := runDrover(t, "resume", "-c", f.Config)
	mustExit(t, r, 0)
	if !strings.Contains(r.stdout, "h02") {
		t.Errorf("resume does not name h02:\n%s", r)
	}
	sshServing(t, f, "2.0.0", map[string]string{"h02": "1.0.0"})
	// And a deploy brings it forward like any host behind.
	mustExit(t, runDrover(t, "deploy", "-c", f.Config, "--release", v2), 0)
	sshServing(t, f, "2.0.0", nil)
}
