package main

// Ctrl-C on a terminal (issue 17 point 1): the live view keeps the
// explanation on screen — what happens now, what still runs and until
// when, what a second Ctrl-C does — instead of a stderr line the next
// frame draws over.

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"drover/internal/localfleet"
)

func TestTTYInterruptExplainsInView(t *testing.T) {
	t.Parallel()
	// A check that takes 20s of its 30s: the canary sits in it when
	// Ctrl-C comes.
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: e2eGroups,
		ExtraChecks: "- name: slow\n  type: command\n  command: \"sleep 20\"\n  timeout: 30s\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	src := writeRelease(t, f, "1.0.0", true)
	// trap: the shell around drover outlives the Ctrl-C to print its exit.
	cmd := fmt.Sprintf("trap : INT; %s deploy -c %s --release %s -m tty; echo \"[drover exited $?]\"; exec sleep 600", shq(droverBin), shq(f.Config), shq(src))
	env := []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "LC_ALL=", "NO_COLOR=", "HOME=" + os.Getenv("HOME")}
	tm := newTmux(t, 100, 30, env, cmd)
	checking := regexp.MustCompile(`(?m)^\s+h01\s+check\b`)
	tm.sample(time.Minute, func(sc string) bool { return checking.MatchString(sc) })

	tm.ctrlC()
	notice := regexp.MustCompile(`(?s)! Ctrl-C: halting: no new host starts.*still running: h01 check \(ends within ([0-9.ms]+)\).*Ctrl-C again stops at once`)
	screens := tm.sample(10*time.Second, func(sc string) bool { return notice.MatchString(sc) })
	first := notice.FindStringSubmatch(screens[len(screens)-1])
	// The countdown runs, and the explanation stays on screen while the
	// view redraws (it was drawn over within a frame before).
	time.Sleep(2500 * time.Millisecond)
	later := tm.screen()
	m := notice.FindStringSubmatch(later)
	if m == nil {
		t.Fatalf("the explanation left the screen:\n%s", later)
	}
	d0, err0 := time.ParseDuration(first[1])
	d1, err1 := time.ParseDuration(m[1])
	if err0 != nil || err1 != nil || d1 >= d0 {
		t.Errorf("the countdown did not run: %s, then %s later:\n%s", first[1], m[1], later)
	}
	if strings.Count(later, "Ctrl-C: halting") != 1 {
		t.Errorf("the explanation is on screen more than once:\n%s", later)
	}

	// The second Ctrl-C does what the view said: stops at once.
	tm.ctrlC()
	final := tm.sample(20*time.Second, func(sc string) bool { return strings.Contains(sc, "[drover exited") })
	if sc := final[len(final)-1]; !strings.Contains(sc, "[drover exited 3]") || !strings.Contains(sc, "drover resume") {
		t.Errorf("after the second Ctrl-C:\n%s", sc)
	}
}

// ctrlC types Ctrl-C: the terminal sends SIGINT to the foreground.
func (s *tmuxSession) ctrlC() {
	s.t.Helper()
	if out, err := execCommand(s.bin, "-S", s.sock, "send-keys", "-t", "drover", "C-c"); err != nil {
		s.t.Fatalf("tmux send-keys C-c: %v\n%s", err, out)
	}
}

func execCommand(bin string, args ...string) ([]byte, error) {
	return exec.Command(bin, args...).CombinedOutput()
}
