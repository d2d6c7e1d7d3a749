package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"drover"
	"drover/runner"
)

// hostileText is what a compromised host puts in its answers: an OSC 52
// clipboard write, a window title, a cursor move, a carriage return that
// hides the real line behind a forged one, and a bidi override.
const hostileText = "\x1b]52;c;cm0gLXJmIH4K\x07\x1b]0;pwned\x07\x1b[2Aok\rFAKE: all good\u202egnp.exe\x9b31m"

func TestTermSafe(t *testing.T) {
	t.Parallel()
	got := termSafe(hostileText)
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e", "\x9b"} {
		if strings.Contains(got, bad) {
			t.Errorf("termSafe left %q in %q", bad, got)
		}
	}
	if !strings.Contains(got, `\x1b]52;c;`) || !strings.Contains(got, `\r`) || !strings.Contains(got, `\u202e`) {
		t.Errorf("termSafe(%q) = %q: the escapes should stay visible", hostileText, got)
	}
	for _, ok := range []string{"plain", "two\nlines\tand a tab", "naïve ✓ 漢字"} {
		if termSafe(ok) != ok {
			t.Errorf("termSafe changed %q to %q", ok, termSafe(ok))
		}
	}
	if got := termSafe("bad\xffutf8"); got != `bad\xffutf8` {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

// A host's text reaches the operator's terminal — the line printer, the
// live view, the verdict and errors — without a raw control character;
// --output json carries it escaped by encoding/json, never raw.
func TestHostTextOnTerminal(t *testing.T) {
	t.Parallel()
	ev := drover.Event{Time: t0, Deploy: "d-1", Kind: drover.EventHostFailed, Host: "h01", Step: "check", Message: hostileText}
	done := drover.Event{Time: t0, Deploy: "d-1", Kind: drover.EventStepDone, Host: "h01", Step: "check", Outcome: "failed", Message: hostileText}
	out := &runner.Outcome{DeployID: "d-1", ExitCode: drover.ExitRolledBack, Summary: hostileText}

	var text bytes.Buffer
	p := &printer{w: &text, style: style{color: true}}
	p.Emit(startScript().events[0])
	p.Emit(ev)
	p.Emit(done)
	p.verdict(out)
	writeError(&text, errors.New(hostileText), style{})

	var live bytes.Buffer
	v := newLiveView(&live, -1, style{})
	v.manual = true
	v.size = func() (int, int) { return 200, 40 }
	for _, e := range startScript().events {
		v.Emit(e)
	}
	v.Emit(ev)
	v.Emit(done)
	v.tick()
	v.verdict(out)

	for name, s := range map[string]string{"printer": text.String(), "live view": live.String()} {
		// The views' own colors and cursor moves are CSI sequences
		// (ESC [); nothing else may carry ESC, BEL, CR or C1.
		rest := s
		for _, own := range []string{"\x1b[2m", "\x1b[0m", "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[K", "\x1b[J", "\r\x1b["} {
			rest = strings.ReplaceAll(rest, own, "")
		}
		for _, bad := range []string{"\x1b]", "\x07", "\x9b", "\u202e", "\rFAKE", "\x1b[2A"} {
			if strings.Contains(rest, bad) {
				t.Errorf("%s printed %q from a host: %q", name, bad, s)
			}
		}
		if !strings.Contains(s, `\x1b]52`) {
			t.Errorf("%s hid the host's text instead of showing it escaped: %q", name, s)
		}
	}

	var js bytes.Buffer
	jp := &printer{w: &js, json: true}
	jp.Emit(ev)
	if strings.ContainsAny(js.String(), "\x1b\x07\r") {
		t.Errorf("json output carries raw control characters: %q", js.String())
	}
	var back drover.Event
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || !strings.HasPrefix(back.Message, "\x1b]52;c;") || !strings.Contains(back.Message, "\rFAKE") {
		t.Errorf("json output does not round-trip the host's text: %v %q", err, back.Message)
	}
}
