package check

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"drover"
)

// A log check reads, on the host, the lines a service wrote to its log
// since drover restarted it, and judges them with a regexp:
//
//   - absent: false passes as soon as a matching line appears ("listening
//     on"), retried every interval until the timeout;
//   - absent: true fails as soon as one appears ("panic|FATAL") and passes
//     once its window (drover.DefaultLogWindow unless set) went by without
//     one. A fixed watch is what an operator expects of "no errors after
//     the restart": the timeout is how long drover may wait, not how long
//     a healthy service must be watched.
//
// "Since the restart" is the file's position taken just before the
// restart hook (CheckSpec.Since, asked for with CheckSpec.Mark). Lines
// from before it never count: the previous release's errors must not halt
// the next one, and its "listening on" must not pass it. When the inode
// changed (logrotate moved the file away) or the file is shorter than it
// was (copytruncate), the file now at the path is new and is read from its
// start. Lines written to the old file after the mark and before the
// rotation are not seen.
//
// The host's log is untrusted: each attempt reads at most LogMaxRead
// bytes, a line longer than LogMaxLine is judged in LogMaxLine pieces, and
// the reason quotes at most LogShowLines matching lines of LogShowWidth
// characters each, control characters replaced, so a hostile or runaway
// log can neither exhaust the host's memory nor the controller's.
const (
	LogMaxRead    = 8 << 20
	LogMaxLine    = 64 << 10
	LogShowLines  = 5
	LogShowWidth  = 200
	logReasonHint = "since the restart"
)

// failNow is returned by a probe whose failure no retry can undo (a log
// check with absent: true saw a matching line).
type failNow string

func (f failNow) Error() string { return string(f) }

// LogPosition returns where the file at path stands now; a missing file
// is a position with Exists false.
func LogPosition(path string) (drover.LogPosition, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return drover.LogPosition{}, nil
	}
	if err != nil {
		return drover.LogPosition{}, err
	}
	if !fi.Mode().IsRegular() {
		return drover.LogPosition{}, fmt.Errorf("%s is not a regular file", path)
	}
	return drover.LogPosition{Exists: true, Inode: inode(fi), Size: fi.Size()}, nil
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// markLog answers a Mark: the log file's position, for the runner to pass
// back as Since once the service restarted.
func markLog(c drover.CheckSpec) drover.CheckResult {
	res := drover.CheckResult{Name: c.Name, Attempts: 1}
	if c.Type != TypeLog {
		res.Reason = fmt.Sprintf("only log checks can be marked, not %q", c.Type)
		return res
	}
	if !filepath.IsAbs(c.Path) {
		res.Reason = fmt.Sprintf("log path %q is not absolute", c.Path)
		return res
	}
	pos, err := LogPosition(c.Path)
	if err != nil {
		res.Reason = fmt.Sprintf("log %s: %v", c.Path, err)
		return res
	}
	res.OK, res.Position = true, &pos
	return res
}

// logReader follows one log file across attempts.
type logReader struct {
	path   string
	re     *regexp.Regexp
	absent bool
	window time.Duration
	since  *drover.LogPosition

	started bool
	start   time.Time
	pos     drover.LogPosition // Size is the offset of the next unread byte
	lines   int
}

func newLogProbe(c drover.CheckSpec) (probe, string) {
	if c.Path == "" {
		return probe{}, "log check has no path"
	}
	if !filepath.IsAbs(c.Path) {
		return probe{}, fmt.Sprintf("log path %q is not absolute", c.Path)
	}
	if c.Pattern == "" {
		return probe{}, "log check has no pattern"
	}
	re, err := regexp.Compile(c.Pattern)
	if err != nil {
		return probe{}, fmt.Sprintf("log pattern %q: %v", c.Pattern, err)
	}
	window := c.Window
	if window <= 0 {
		window = drover.DefaultLogWindow
	}
	r := &logReader{path: c.Path, re: re, absent: c.Absent, window: window, since: c.Since}
	return probe{run: r.attempt}, ""
}

func (r *logReader) attempt(ctx context.Context, _ time.Duration) (string, error) {
	if !r.started {
		r.started, r.start = true, time.Now()
		if r.since != nil {
			r.pos = *r.since
		} else if pos, err := LogPosition(r.path); err == nil {
			// No mark (a resumed deploy): only what is written from now.
			r.pos = pos
		}
	}
	matches, total, eof, err := r.read(ctx)
	if err != nil {
		return fmt.Sprintf("log %s: %v", r.path, err), nil
	}
	if r.absent {
		if total > 0 {
			return "", failNow(fmt.Sprintf("log %s: %d line(s) matching %q %s: %s", r.path, total, r.re.String(), logReasonHint, strings.Join(matches, " | ")))
		}
		if eof && time.Since(r.start) >= r.window {
			return "", nil
		}
		return fmt.Sprintf("log %s: watching for %q for %v", r.path, r.re.String(), r.window), nil
	}
	if total > 0 {
		return "", nil
	}
	if !r.pos.Exists {
		return fmt.Sprintf("log %s: no such file", r.path), nil
	}
	return fmt.Sprintf("log %s: no line matching %q %s (%d new line(s))", r.path, r.re.String(), logReasonHint, r.lines), nil
}

// read reads what was appended since r.pos, at most LogMaxRead bytes, and
// returns up to LogShowLines matching lines (quoted for an operator), how
// many matched in all, and whether it reached the end of the file. A last
// line without its newline is judged but read again next time, complete.
func (r *logReader) read(ctx context.Context) (shown []string, total int, eof bool, err error) {
	f, err := os.Open(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		r.pos = drover.LogPosition{}
		return nil, 0, true, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	defer f.Close()
	// The inode of the file opened, not of the path stat'ed before: a
	// rotation in between must not make the new file continue at the old
	// file's offset.
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, false, errors.New("not a regular file")
	}
	ino := inode(fi)
	if !r.pos.Exists || ino != r.pos.Inode || fi.Size() < r.pos.Size {
		r.pos = drover.LogPosition{Exists: true, Inode: ino}
	}
	if _, err := f.Seek(r.pos.Size, io.SeekStart); err != nil {
		return nil, 0, false, err
	}
	br := bufio.NewReaderSize(io.LimitReader(f, LogMaxRead), LogMaxLine)
	var read, seen int64
	for ctx.Err() == nil {
		line, err := br.ReadSlice('\n')
		complete := err == nil || errors.Is(err, bufio.ErrBufferFull)
		seen += int64(len(line))
		if len(line) > 0 {
			if complete {
				read += int64(len(line))
				r.lines++
			}
			if r.re.Match(line) {
				total++
				if len(shown) < LogShowLines {
					shown = append(shown, quoteLine(line))
				}
			}
		}
		if !complete {
			if err != io.EOF {
				return shown, total, false, err
			}
			break
		}
	}
	eof = r.pos.Size+seen >= fi.Size()
	r.pos.Size += read
	return shown, total, eof, nil
}

// quoteLine makes a log line safe to show: valid UTF-8, no control
// characters (a log could otherwise repaint the operator's terminal), at
// most LogShowWidth characters.
func quoteLine(b []byte) string {
	s := strings.TrimRight(string(b), "\r\n")
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return '?'
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > LogShowWidth {
		s = string([]rune(s)[:LogShowWidth]) + "…"
	}
	return fmt.Sprintf("%q", s)
}
