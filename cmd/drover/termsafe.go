package main

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"drover"
)

// This file keeps what hosts say from driving the operator's terminal.
// Event messages, failure reasons, command output and the versions in a
// host's state.json come from hosts, which may be compromised: an escape
// sequence in them could write the operator's clipboard (OSC 52), retitle
// the window, move the cursor, or hide a line behind a carriage return.
// Every text printed for a person passes termSafe; --output json needs
// nothing, encoding/json escapes control characters itself.

// termSafe returns s with every control character but newline and tab —
// C0, DEL, C1, and the bidirectional overrides that reorder what is shown
// — written out as a visible escape (\x1b, \r, \u202e), and invalid UTF-8
// as \xNN.
func termSafe(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e || r == 0x200f || r == 0x061c:
		return true
	case r == utf8.RuneError:
		return false
	}
	return false
}

// termEvent is e with every text field made safe for a terminal.
func termEvent(e drover.Event) drover.Event {
	for _, p := range []*string{&e.Deploy, &e.Group, &e.Host, &e.Step, &e.Outcome, &e.Message, &e.Operation, &e.Release, &e.Version} {
		*p = termSafe(*p)
	}
	if len(e.Groups) > 0 {
		gs := make([]drover.EventGroup, len(e.Groups))
		for i, g := range e.Groups {
			g.Name = termSafe(g.Name)
			gs[i] = g
		}
		e.Groups = gs
	}
	if len(e.Overrides) > 0 {
		os := make([]drover.Override, len(e.Overrides))
		for i, o := range e.Overrides {
			os[i] = drover.Override{Kind: termSafe(o.Kind), Name: termSafe(o.Name), Reason: termSafe(o.Reason)}
		}
		e.Overrides = os
	}
	return e
}
