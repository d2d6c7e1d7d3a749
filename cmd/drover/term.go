package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// isTerminal reports whether r is a terminal. A character device is not
// enough: /dev/null is one, and a command run with </dev/null (cron, CI)
// must not wait for an answer nobody can type.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
