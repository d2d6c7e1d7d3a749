package main

// End-to-end tests of interruptions and lost hosts: Ctrl-C in the middle of
// a rolling deploy, and a host that is gone before the deploy starts.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2ESignalRollsBack: one SIGINT while the default group is switching
// halts the deploy: steps in flight finish, then every host this deploy
// switched — the canary included — goes back to exactly what it was on,
// and the command exits 1.
func TestE2ESignalRollsBack(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	mustExit(t, deploy(t, f, writeRelease(t, f, "0.9.0", true)), 0)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	before := map[string]hostState{}
	for _, h := range f.Hosts {
		before[h.Name] = readState(t, f, h.Name)
	}
	v2 := writeRelease(t, f, "2.0.0", true)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, "deploy", "-c", f.Config, "--release", v2, "--output", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read events until a host of the default group has switched, then
	// interrupt once and keep reading to the end.
	var events []map[string]any
	signalled := false
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatalf("not a JSON event: %q: %v", lines.Text(), err)
		}
		events = append(events, ev)
		if !signalled && ev["kind"] == "step_done" && ev["step"] == "switch" && ev["host"] != "h01" {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	err = cmd.Wait()
	if !signalled {
		t.Fatalf("the deploy ended before the default group switched (%v)\n%s", err, stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "halting") {
		t.Errorf("stderr does not say it is halting:\n%s", stderr.String())
	}

	// The last line is the verdict.
	res := events[len(events)-1]
	if res["kind"] != "result" || res["verdict"] != "rolled_back" || res["exit_code"] != float64(1) || !strings.Contains(res["halt_reason"].(string), "interrupt") {
		t.Errorf("result = %v", res)
	}
	// After the signal no host left rotation for the new release: every
	// depool after the halt is on the way back.
	halted := false
	for _, ev := range events {
		if ev["kind"] == "halt" {
			halted = true
		}
		if halted && ev["kind"] == "step_start" && ev["step"] == "depool" && ev["restoring"] != true {
			t.Errorf("a host was depooled for the new release after the halt: %v", ev)
		}
	}
	if !halted {
		t.Error("no halt event")
	}

	wantServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		if got := readState(t, f, h.Name); got != before[h.Name] {
			t.Errorf("%s after the interrupted deploy: %+v, want %+v", h.Name, got, before[h.Name])
		}
	}
	r := runDrover(t, "history", "-c", f.Config, "--json")
	mustExit(t, r, 0)
	var hist []struct{ Kind, Version, Outcome string }
	if err := json.Unmarshal([]byte(r.stdout), &hist); err != nil {
		t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	if len(hist) == 0 || hist[0].Kind != "deploy" || hist[0].Version != "2.0.0" || hist[0].Outcome != "rolled_back" {
		t.Errorf("history = %+v, want the 2.0.0 deploy first, rolled_back", hist)
	}
}

// TestE2EUnreachableHost: a host whose directory is gone before the deploy
// is unreachable. It is never touched, counts against its group's failure
// limit (1 of 9 here, within it), every other host is deployed, and the
// exit code says a person is needed.
func TestE2EUnreachableHost(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 10)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	h05, ok := f.Host("h05")
	if !ok {
		t.Fatal("no h05")
	}
	before := readState(t, f, "h05")
	// Moved aside rather than deleted: its service keeps running from
	// there, and the fleet's cleanup must still find its pid file.
	away := filepath.Join(filepath.Dir(h05.Dir), "h05.away")
	if err := os.Rename(h05.Dir, away); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(away, h05.Dir) })

	r := deploy(t, f, writeRelease(t, f, "2.0.0", true))
	mustExit(t, r, 3)
	for _, want := range []string{"h05", "UNREACHABLE", "does not exist"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "HALT") {
		t.Errorf("one unreachable host of nine is within the limit, yet the deploy halted:\n%s", r.stdout)
	}
	// h05 kept serving the old release and was not touched.
	wantServing(t, f, "2.0.0", map[string]string{"h05": "1.0.0"})
	if err := os.Rename(away, h05.Dir); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, f, "h05"); got != before {
		t.Errorf("h05 state changed: %+v, want %+v", got, before)
	}
	for _, h := range f.Hosts {
		if h.Name == "h05" {
			continue
		}
		if s := readState(t, f, h.Name); !strings.HasPrefix(s.Current, "2.0.0-") || !strings.HasPrefix(s.Previous, "1.0.0-") {
			t.Errorf("%s: %+v, want on 2.0.0 with 1.0.0 as previous", h.Name, s)
		}
	}
}
