package ssh

import (
	"fmt"
	"unicode/utf8"

	"drover"
)

// This file bounds what a host can make the controller hold. A host may
// be compromised: whatever its drover (or a login script) prints must not
// exhaust the controller's memory — 300 lines of 1 MiB before the serve
// greeting once took 1.6 GiB — nor reach the operator's events, logs and
// webhooks as megabytes of text. Every byte from a host passes one of
// these caps; going past one is an EFAILED error naming the host (the
// caller places it) and the cap.

// Caps on what a host sends.
const (
	// MaxPreamble bounds everything before serve's greeting, in total and
	// per line: a login banner, and the probe's uname, binary sums and
	// state.json.
	MaxPreamble = 4 << 20
	// MaxRelayLine bounds relay-serve's first line (its URL).
	MaxRelayLine = 4 << 10
	// MaxHostText bounds each text field of a response that ends up in
	// events and errors: an error's message, hint, cause and place, a
	// check's reason, a state's ids.
	MaxHostText = 4 << 10
	// MaxHostOutput bounds a command's output tail (the host keeps
	// hostops.OutputTail; a host that sends more is cut to its end).
	MaxHostOutput = 64 << 10
	// MaxHostList bounds a response's lists (state history, removed
	// releases).
	MaxHostList = 10000
)

// floodError: a host sent more than a cap allows; the session is killed.
type floodError struct {
	what  string
	limit int
}

func (e *floodError) Error() string {
	return fmt.Sprintf("the host sent %s longer than %d bytes, more than drover holds; the session was closed", e.what, e.limit)
}

// clip cuts s to max bytes at a rune boundary, saying so.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes cut by drover)", len(s)-cut)
}

// clipTail keeps the last max bytes of s (output: the end tells why).
func clipTail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	start := len(s) - max
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return fmt.Sprintf("(%d bytes cut by drover) …", start) + s[start:]
}

// clipResponse bounds every host-supplied text of r that outlives the
// response: what goes into errors, events, the journal and webhooks.
func clipResponse(r *Response) {
	if e := r.Error; e != nil {
		e.Code = clip(e.Code, 64)
		e.Where, e.Message = clip(e.Where, MaxHostText), clip(e.Message, MaxHostText)
		e.Hint, e.Cause = clip(e.Hint, MaxHostText), clip(e.Cause, MaxHostText)
	}
	if x := r.Exec; x != nil {
		x.Output = clipTail(x.Output, MaxHostOutput)
	}
	if c := r.Check; c != nil {
		c.Name, c.Reason = clip(c.Name, MaxHostText), clip(c.Reason, MaxHostText)
	}
	if st := r.Stage; st != nil {
		st.Slot, st.ConfigHash = clip(st.Slot, MaxHostText), clip(st.ConfigHash, MaxHostText)
	}
	if r.State != nil {
		clipState(r.State)
	}
	if len(r.Removed) > MaxHostList {
		r.Removed = r.Removed[:MaxHostList]
	}
	for i := range r.Removed {
		r.Removed[i] = clip(r.Removed[i], MaxHostText)
	}
	r.RelayURL = clip(r.RelayURL, MaxRelayLine)
}

// clipState bounds the texts of a host's state.json, read by the probe or
// answered by State: its versions and ids end up in events and tables.
func clipState(s *drover.HostState) {
	for _, p := range []*string{&s.Current, &s.Previous, &s.Release, &s.Version, &s.ConfigHash, &s.DeployID, &s.Live} {
		*p = clip(*p, MaxHostText)
	}
	if len(s.History) > MaxHostList {
		s.History = s.History[len(s.History)-MaxHostList:]
	}
	for i := range s.History {
		h := &s.History[i]
		for _, p := range []*string{&h.Action, &h.From, &h.To, &h.Version, &h.DeployID, &h.Reason} {
			*p = clip(*p, MaxHostText)
		}
	}
}
