package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// termFd is w's file descriptor when w is a terminal, else -1.
func termFd(w any) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return -1
	}
	return int(f.Fd())
}

// style returns the colors for w under --color and NO_COLOR.
func (a *app) style(w io.Writer) (style, error) {
	on, err := colorEnabled(a.out.color, termFd(w) >= 0, os.Getenv("NO_COLOR"), os.Getenv("TERM"))
	return style{color: on, unicode: utf8Locale()}, err
}

// colorEnabled decides colors: never and always are what they say; auto
// colors a terminal unless NO_COLOR is set to anything (no-color.org) or
// TERM is dumb. Colors in a pipe end up as escape codes in CI logs.
func colorEnabled(mode string, tty bool, noColor, termName string) (bool, error) {
	switch mode {
	case "never":
		return false, nil
	case "always":
		return true, nil
	case "", "auto":
		return tty && noColor == "" && termName != "dumb", nil
	}
	return false, &usageError{fmt.Errorf("--color %q: want auto, always or never", mode)}
}

// utf8Locale reports whether the locale promises UTF-8, so the progress
// bar may use block characters; elsewhere it uses ASCII.
func utf8Locale() bool {
	for _, k := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := os.Getenv(k); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

const ansiReset = "\x1b[0m"

// style colors text for a terminal, or leaves it alone.
type style struct {
	color   bool
	unicode bool
}

func (s style) wrap(code, t string) string {
	if !s.color || t == "" {
		return t
	}
	return "\x1b[" + code + "m" + t + ansiReset
}

func (s style) bold(t string) string   { return s.wrap("1", t) }
func (s style) dim(t string) string    { return s.wrap("2", t) }
func (s style) red(t string) string    { return s.wrap("31", t) }
func (s style) green(t string) string  { return s.wrap("32", t) }
func (s style) yellow(t string) string { return s.wrap("33", t) }

// cross marks a failure.
func (s style) cross() string {
	if s.unicode {
		return "✗"
	}
	return "x"
}

// bar draws frac (0..1) of width cells, red when the group has failures.
func (s style) bar(frac float64, width int, failing bool) string {
	frac = min(max(frac, 0), 1)
	n := int(frac*float64(width) + 0.5)
	full, empty := "#", "."
	if s.unicode {
		full, empty = "█", "░"
	}
	done := strings.Repeat(full, n)
	if failing {
		done = s.red(done)
	} else {
		done = s.green(done)
	}
	return "[" + done + s.dim(strings.Repeat(empty, width-n)) + "]"
}
