package main

// The live progress view on a real terminal: tmux gives the real binary a
// pseudo-terminal of a fixed size, the test samples the screen with
// capture-pane while a deploy of six local hosts runs, and checks that the
// view changes in place and ends with the verdict.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"drover/config"
)

// tmuxSession is a tmux server of this test's own (its own socket), so
// nothing of the user's tmux is touched.
type tmuxSession struct {
	t    *testing.T
	bin  string
	sock string
}

func newTmux(t *testing.T, width, height int, env []string, command string) *tmuxSession {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is missing: the terminal tests need it (Debian package tmux; scripts/deps.sh installs it)")
	}
	// A short path: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "drover-tmux-")
	if err != nil {
		t.Fatal(err)
	}
	s := &tmuxSession{t: t, bin: bin, sock: filepath.Join(dir, "s")}
	args := []string{"-S", s.sock, "-f", "/dev/null", "new-session", "-d", "-s", "drover",
		"-x", strconv.Itoa(width), "-y", strconv.Itoa(height)}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, command)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.Command(bin, "-S", s.sock, "kill-server").Run()
		os.RemoveAll(dir)
	})
	return s
}

// screen is what the pane shows now, without colors.
func (s *tmuxSession) screen() string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.bin, "-S", s.sock, "capture-pane", "-p", "-t", "drover").Output()
	if err != nil {
		s.t.Fatalf("tmux capture-pane: %v", err)
	}
	return string(out)
}

// sample captures the screen until done says so or the deadline passes,
// and returns every distinct screen in order.
func (s *tmuxSession) sample(deadline time.Duration, done func(screen string) bool) []string {
	s.t.Helper()
	var screens []string
	end := time.Now().Add(deadline)
	for {
		sc := s.screen()
		if len(screens) == 0 || screens[len(screens)-1] != sc {
			screens = append(screens, sc)
		}
		if done(sc) {
			return screens
		}
		if time.Now().After(end) {
			s.t.Fatalf("no screen met the condition in %s; the last:\n%s", deadline, sc)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// keys types text and Enter.
func (s *tmuxSession) keys(text string) {
	s.t.Helper()
	args := []string{"-S", s.sock, "send-keys", "-t", "drover"}
	if text != "" {
		args = append(args, "-l", text)
		if out, err := exec.Command(s.bin, args...).CombinedOutput(); err != nil {
			s.t.Fatalf("tmux send-keys: %v\n%s", err, out)
		}
		args = args[:len(args)-2]
	}
	if out, err := exec.Command(s.bin, append(args, "Enter")...).CombinedOutput(); err != nil {
		s.t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func TestTTYDeployProgress(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 6)
	src := writeRelease(t, f, "1.0.0", true)
	// A restart that takes a second keeps each batch on screen long
	// enough to be seen, without making the deploy long.
	restart := filepath.Join(src, "bin", "restart")
	b, err := os.ReadFile(restart)
	if err != nil {
		t.Fatal(err)
	}
	slow := strings.Replace(string(b), "set -eu\n", "set -eu\nsleep 1\n", 1)
	if slow == string(b) {
		t.Fatalf("bin/restart has no `set -eu` line:\n%s", b)
	}
	if err := os.WriteFile(restart, []byte(slow), 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := fmt.Sprintf("%s deploy -c %s --release %s -m 'tty test'; echo \"[drover exited $?]\"; exec sleep 600", shq(droverBin), shq(f.Config), shq(src))
	env := []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "LC_ALL=", "NO_COLOR=", "HOME=" + os.Getenv("HOME")}
	tm := newTmux(t, 110, 40, env, cmd)
	screens := tm.sample(2*time.Minute, func(sc string) bool { return strings.Contains(sc, "[drover exited") })
	final := screens[len(screens)-1]

	// While it ran: the default group's bar went up in several steps, a
	// host of the batch showed its step, and an ETA appeared once the
	// canary had finished.
	pct := regexp.MustCompile(`(?m)^\s+default\s+\[[#.]+\]\s+(\d+)%`)
	hostStep := regexp.MustCompile(`(?m)^\s+h0[2-6]\s+(depool|switch|restart|check|repool)\b`)
	var seen []int
	sawStep, sawETA := false, false
	for _, sc := range screens[:len(screens)-1] {
		if m := pct.FindStringSubmatch(sc); m != nil {
			n, _ := strconv.Atoi(m[1])
			if len(seen) == 0 || seen[len(seen)-1] != n {
				seen = append(seen, n)
			}
		}
		sawStep = sawStep || hostStep.MatchString(sc)
		sawETA = sawETA || strings.Contains(sc, "ETA ")
	}
	if len(seen) < 3 {
		t.Errorf("the default group's bar showed %v while the deploy ran; want it to advance in at least 3 steps", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Errorf("the bar ran backwards: %v", seen)
		}
	}
	if !sawStep {
		t.Errorf("no screen showed a host of the default group at its step; %d screens, e.g.:\n%s", len(screens), screens[len(screens)/2])
	}
	if !sawETA {
		t.Error("no screen showed an ETA")
	}

	if os.Getenv("DROVER_TTY_DUMP") != "" {
		t.Logf("middle:\n%s\nfinal:\n%s", screens[len(screens)/2], final)
	}
	// The end: the final state stays, drawn once (in place, not a
	// scrolled copy per frame), followed by the verdict.
	for _, want := range []string{"[drover exited 0]", "deploy succeeded", "exit 0: every targeted host", "promoted 5", "succeeded"} {
		if !strings.Contains(final, want) {
			t.Errorf("final screen lacks %q:\n%s", want, final)
		}
	}
	if m := pct.FindStringSubmatch(final); m == nil || m[1] != "100" {
		t.Errorf("final screen does not show the default group at 100%%:\n%s", final)
	}
	if n := strings.Count(final, "deploy hello 1.0.0"); n != 1 {
		t.Errorf("the progress header is on the final screen %d times, want once (redrawn in place):\n%s", n, final)
	}
	if strings.Index(final, "deploy succeeded") < strings.Index(final, "promoted 5") {
		t.Errorf("the verdict is not below the final progress:\n%s", final)
	}
	wantServing(t, f, "1.0.0", nil)
}

// TestTTYInitAsks: on a terminal, init asks for what no flag gave and
// writes a config that loads.
func TestTTYInitAsks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "drover.yaml")
	cmd := fmt.Sprintf("%s init -c %s --transport local; echo \"[drover exited $?]\"; exec sleep 600", shq(droverBin), shq(path))
	tm := newTmux(t, 120, 30, []string{"PATH=" + os.Getenv("PATH")}, cmd)
	answers := []struct{ prompt, answer string }{
		{"service name", "shop"},
		{"hosts", "web1,web2"},
		{"deploy root", ""},
		{"port var", "port=9000"},
	}
	for _, a := range answers {
		tm.sample(30*time.Second, func(sc string) bool {
			l := strings.TrimRight(sc, "\n ")
			return strings.Contains(l[strings.LastIndex(l, "\n")+1:], a.prompt)
		})
		tm.keys(a.answer)
	}
	final := tm.sample(30*time.Second, func(sc string) bool { return strings.Contains(sc, "[drover exited") })
	sc := final[len(final)-1]
	if !strings.Contains(sc, "[drover exited 0]") || strings.Contains(sc, "transport (") {
		t.Fatalf("init on a terminal (--transport given, so not asked):\n%s", sc)
	}
	spec, err := config.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Service != "shop" || len(spec.Hosts) != 2 || spec.Hosts[1].Vars["port"] != uint64(9001) || !strings.HasSuffix(spec.Hosts[0].DeployRoot, "/srv/shop") {
		t.Errorf("spec from the answers: %+v", spec)
	}
}

// TestTTYNoProgress: --no-progress on a terminal prints a line per event,
// no cursor movement.
func TestTTYNoProgress(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	src := writeRelease(t, f, "1.0.0", true)
	cmd := fmt.Sprintf("%s deploy --no-progress -c %s --release %s -m tty; echo \"[drover exited $?]\"; exec sleep 600", shq(droverBin), shq(f.Config), shq(src))
	tm := newTmux(t, 110, 60, []string{"PATH=" + os.Getenv("PATH"), "LANG=C"}, cmd)
	screens := tm.sample(2*time.Minute, func(sc string) bool { return strings.Contains(sc, "[drover exited") })
	final := screens[len(screens)-1]
	for _, want := range []string{"h01      stage     ok", "h02      check     ok", "== group default", "[drover exited 0]"} {
		if !strings.Contains(final, want) {
			t.Errorf("--no-progress screen lacks %q:\n%s", want, final)
		}
	}
	if strings.Contains(final, "ETA") || strings.Contains(final, "[###") {
		t.Errorf("--no-progress drew the live view:\n%s", final)
	}
}
