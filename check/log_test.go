package check_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/check"
)

// logFile is a real log file the test writes to like a service would.
type logFile struct {
	t    *testing.T
	path string
}

func newLog(t *testing.T, initial string) *logFile {
	t.Helper()
	l := &logFile{t: t, path: filepath.Join(t.TempDir(), "app.log")}
	if initial != "" {
		l.append(initial)
	}
	return l
}

func (l *logFile) append(s string) {
	l.t.Helper()
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		l.t.Fatal(err)
	}
}

// mark is what the runner does just before the restart hook.
func (l *logFile) mark(c drover.CheckSpec) *drover.LogPosition {
	l.t.Helper()
	c.Mark = true
	res := check.Run(context.Background(), c, nil)
	if !res.OK || res.Position == nil {
		l.t.Fatalf("mark: %+v", res)
	}
	return res.Position
}

func logCheck(path, pattern string, absent bool) drover.CheckSpec {
	return drover.CheckSpec{Name: "log", Type: check.TypeLog, Path: path, Pattern: pattern, Absent: absent,
		Timeout: 2 * time.Second, Interval: fast, Window: 200 * time.Millisecond}
}

// runLater runs the check while write happens after a short delay, as a
// service writes its log after the restart.
func runLater(c drover.CheckSpec, write func()) drover.CheckResult {
	done := make(chan drover.CheckResult)
	go func() { done <- check.Run(context.Background(), c, nil) }()
	time.Sleep(3 * fast)
	write()
	return <-done
}

func TestLogPresentOnlyCountsLinesAfterTheMark(t *testing.T) {
	l := newLog(t, "old: listening on :8080\n")
	c := logCheck(l.path, "listening on", false)
	c.Since = l.mark(c)
	c.Timeout = 300 * time.Millisecond
	// The previous run's line is before the mark: it must not pass.
	if res := check.Run(context.Background(), c, nil); res.OK || !strings.Contains(res.Reason, `no line matching "listening on" since the restart (0 new line(s))`) {
		t.Fatalf("old line passed the check: %+v", res)
	}
	c.Timeout = 2 * time.Second
	res := runLater(c, func() { l.append("starting\nnew: listening on :8081\n") })
	if !res.OK || res.Attempts < 2 {
		t.Fatalf("appended line: %+v", res)
	}
}

func TestLogAbsentFailsAtOnceShowingBoundedLines(t *testing.T) {
	l := newLog(t, "ERROR from the previous release\n")
	c := logCheck(l.path, "ERROR", true)
	c.Window, c.Timeout = 5*time.Second, 10*time.Second
	c.Since = l.mark(c)
	long := "ERROR " + strings.Repeat("x", 5000) + "\x1b[2J\n"
	start := time.Now()
	res := runLater(c, func() {
		l.append("ok\n" + long + strings.Repeat("ERROR again\n", 10))
	})
	if res.OK {
		t.Fatalf("absent check passed with errors logged: %+v", res)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("absent check took %v to fail; it should fail as soon as a line matches", time.Since(start))
	}
	if !strings.Contains(res.Reason, `11 line(s) matching "ERROR" since the restart`) ||
		strings.Contains(res.Reason, "previous release") || strings.Contains(res.Reason, "\x1b") {
		t.Errorf("reason = %q", res.Reason)
	}
	if n := strings.Count(res.Reason, "ERROR again"); n != check.LogShowLines-1 {
		t.Errorf("reason shows %d of the short lines, want %d: %q", n, check.LogShowLines-1, res.Reason)
	}
	if len(res.Reason) > check.LogShowLines*(check.LogShowWidth+20)+200 {
		t.Errorf("reason is %d bytes: not bounded", len(res.Reason))
	}
}

func TestLogAbsentPassesAfterItsWindow(t *testing.T) {
	l := newLog(t, "ERROR before the restart\n")
	c := logCheck(l.path, "ERROR", true)
	c.Since = l.mark(c)
	l.append("fine\n")
	start := time.Now()
	res := check.Run(context.Background(), c, nil)
	if !res.OK {
		t.Fatalf("clean log: %+v", res)
	}
	if el := time.Since(start); el < c.Window {
		t.Errorf("passed after %v, before its %v window", el, c.Window)
	}
}

func TestLogRotationReadsTheNewFileFromItsStart(t *testing.T) {
	l := newLog(t, strings.Repeat("some earlier line\n", 50))
	c := logCheck(l.path, "ready", false)
	c.Since = l.mark(c)
	// logrotate's default: the file is moved away and a new, shorter one
	// is created; its first line would be skipped at the old offset.
	res := runLater(c, func() {
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			t.Error(err)
		}
		l.append("ready\n")
	})
	if !res.OK {
		t.Fatalf("rotated log: %+v", res)
	}

	// Rotated to a file as long as the old one: only the inode tells.
	l2 := newLog(t, "aaaaaaaaaa\n")
	c2 := logCheck(l2.path, "^bbbb", false)
	c2.Since = l2.mark(c2)
	res = runLater(c2, func() {
		os.Rename(l2.path, l2.path+".1")
		l2.append("bbbbbbbbbb\n")
	})
	if !res.OK {
		t.Fatalf("rotated to a file of the same size: %+v", res)
	}
}

func TestLogTruncationReadsFromTheStart(t *testing.T) {
	l := newLog(t, strings.Repeat("noise\n", 100))
	c := logCheck(l.path, "FATAL", true)
	c.Window = time.Second
	c.Since = l.mark(c)
	// copytruncate: same inode, shorter file.
	res := runLater(c, func() {
		if err := os.Truncate(l.path, 0); err != nil {
			t.Error(err)
		}
		l.append("FATAL: cannot bind\n")
	})
	if res.OK || !strings.Contains(res.Reason, `"FATAL: cannot bind"`) {
		t.Fatalf("truncated log: %+v", res)
	}
}

func TestLogMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.log")
	c := logCheck(path, "up", false)
	c.Since = (&logFile{t: t, path: path}).mark(c)
	if c.Since.Exists {
		t.Fatalf("mark of a missing file: %+v", c.Since)
	}
	c.Timeout = 200 * time.Millisecond
	if res := check.Run(context.Background(), c, nil); res.OK || !strings.Contains(res.Reason, "no such file") {
		t.Fatalf("missing file: %+v", res)
	}
	// Created after the restart: read from its start.
	c.Timeout = 2 * time.Second
	res := runLater(c, func() { (&logFile{t: t, path: path}).append("up\n") })
	if !res.OK {
		t.Fatalf("file created after the mark: %+v", res)
	}
	// An absent check on a file that never appears passes.
	c2 := logCheck(filepath.Join(t.TempDir(), "never.log"), "ERROR", true)
	if res := check.Run(context.Background(), c2, nil); !res.OK {
		t.Fatalf("absent check, no file: %+v", res)
	}
}

func TestLogPartialLineIsReadAgainWhole(t *testing.T) {
	l := newLog(t, "")
	c := logCheck(l.path, "done$", false)
	c.Since = l.mark(c)
	res := runLater(c, func() {
		l.append("still going, not done")
		time.Sleep(3 * fast)
		l.append(" yet\nall done\n")
	})
	if !res.OK {
		t.Fatalf("%+v", res)
	}
}

func TestLogBadSpec(t *testing.T) {
	for _, c := range []drover.CheckSpec{
		{Name: "l", Type: check.TypeLog, Path: "relative.log", Pattern: "x"},
		{Name: "l", Type: check.TypeLog, Path: "/x.log", Pattern: "("},
		{Name: "l", Type: check.TypeLog, Pattern: "x"},
	} {
		if res := check.Run(context.Background(), c, nil); res.OK || res.Attempts != 0 {
			t.Errorf("%+v: %+v", c, res)
		}
	}
}
