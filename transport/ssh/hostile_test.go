package ssh

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/distribute/relay"
)

// A compromised host: with hostileEnv set in the test server's
// environment, the "drover" the transport runs on the host misbehaves as
// the mode says instead of serving. Each test below asserts that the
// controller stops at a cap with an error naming the host — never by
// timing, and never holding what the host sent.
const hostileEnv = "DROVER_TEST_HOSTILE"

const mib = 1 << 20

// hostile plays the compromised host's drover for op; it returns the
// exit code.
func hostile(mode, op string) int {
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	defer out.Flush()
	greet := func() { out.WriteString(`{"v":1,"ready":true}` + "\n"); out.Flush() }
	line := bytes.Repeat([]byte("A"), mib)
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	switch {
	case mode == "preamble" && op == OpServe:
		// 300 lines of 1 MiB before the greeting: the 1.6 GiB attack.
		for i := 0; i < 300; i++ {
			if _, err := out.Write(append(line, '\n')); err != nil {
				return 1
			}
		}
		greet()
	case mode == "longline" && op == OpServe:
		// One line that never ends.
		for i := 0; i < 300; i++ {
			if _, err := out.Write(line); err != nil {
				return 1
			}
		}
	case mode == "bigtext" && op == OpServe:
		greet()
		for {
			if _, err := in.ReadBytes('\n'); err != nil {
				return 0
			}
			msg := "\x1b]52;c;cm0gLXJmIH4=\x07" + strings.Repeat("B", mib)
			b, _ := json.Marshal(Response{V: ProtocolVersion, Error: &WireError{Code: drover.EFAILED, Message: msg, Hint: msg, Cause: msg},
				Exec: &drover.ExecResult{ExitCode: 1, Output: msg}})
			out.Write(append(b, '\n'))
			out.Flush()
		}
	case strings.HasPrefix(mode, "relay") && op == OpRelayServe:
		l, _ := in.ReadBytes('\n')
		var req Request
		json.Unmarshal(l, &req)
		switch mode {
		case "relay-url":
			// A relay that points children elsewhere.
			b, _ := json.Marshal(Response{V: ProtocolVersion, RelayURL: "http://10.9.9.9:8080/bundle/" + req.Relay.Release.BundleSHA256})
			out.Write(append(b, '\n'))
		case "relay-flood":
			for i := 0; i < 64; i++ {
				out.Write(line)
			}
		}
		out.Flush()
		io.Copy(io.Discard, in)
	default:
		// Every other operation (the probe's helpers) runs as usual,
		// but the mode's target op is what the tests drive.
		fmt.Fprintf(os.Stderr, "hostile: op %s not played in mode %s\n", op, mode)
		return 3
	}
	return 0
}

// heapAfterGC is the live heap, for a coarse bound on what the
// controller kept.
func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A host floods the controller before serve's greeting — 300 lines of
// 1 MiB, or one line that never ends: the controller stops at
// MaxPreamble with an error naming the host, and holds nothing of it.
func TestHostFloodBeforeGreeting(t *testing.T) {
	for _, mode := range []string{"preamble", "longline"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			f.srv.Env = []string{hostileEnv + "=" + mode}
			tr := f.transport(f.config())
			h := f.host("h01", f.srv)
			before := heapAfterGC()
			ctx := ctxT(t)
			c, err := tr.Open(ctx, h)
			if err == nil {
				defer c.Close()
				// State comes from the probe; Exec needs drover.
				_, err = c.Exec(ctx, drover.ExecRequest{Command: "true"})
			}
			if drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), "h01") || !strings.Contains(err.Error(), fmt.Sprintf("longer than %d bytes", MaxPreamble)) {
				t.Fatalf("flood: %v, want EFAILED naming h01 and the cap", err)
			}
			if grew := int64(heapAfterGC()) - int64(before); grew > 64*mib {
				t.Errorf("the heap grew by %d MiB after the flood", grew/mib)
			}
		})
	}
}

// A host answers with megabyte strings (error message, hint, cause,
// command output) carrying an OSC 52 clipboard write: what reaches the
// controller's errors and results is cut to MaxHostText/MaxHostOutput.
func TestHostBigTextIsClipped(t *testing.T) {
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	ctx := ctxT(t)
	c := open(t, tr, h) // installs the real drover first
	c.Close()
	tr.Close()

	f.srv.Env = []string{hostileEnv + "=bigtext"}
	tr = f.transport(f.config())
	c = open(t, tr, h)
	res, err := c.Exec(ctx, drover.ExecRequest{Command: "true"})
	if err == nil {
		t.Fatal("the hostile host's error was lost")
	}
	if n := len(err.Error()) + len(drover.ErrorHint(err)); n > 4*MaxHostText {
		t.Errorf("a %d-byte error from the host reached the controller", n)
	}
	if !strings.Contains(err.Error(), "h01") || !strings.Contains(err.Error(), "cut by drover") {
		t.Errorf("error does not name the host or the cut: %.300s", err)
	}
	if len(res.Output) > MaxHostOutput+100 {
		t.Errorf("output of %d bytes kept", len(res.Output))
	}
}

// relay-serve's first line is bounded; a relay URL off the host's own
// address is refused.
func TestHostileRelay(t *testing.T) {
	for _, c := range []struct{ mode, want string }{
		{"relay-url", "address other than its own"},
		{"relay-flood", fmt.Sprintf("longer than %d bytes", MaxRelayLine)},
	} {
		t.Run(c.mode, func(t *testing.T) {
			ctx := ctxT(t)
			f := newFixture(t)
			tr := f.transport(f.config())
			h := f.host("h01", f.srv)
			conn := open(t, tr, h).(drover.Fetcher)
			r := buildRelease(t, "1.0.0")
			if err := conn.Fetch(ctx, drover.FetchRequest{Release: r}); err != nil {
				t.Fatal(err)
			}
			f.srv.Env = []string{hostileEnv + "=" + c.mode}
			start := time.Now()
			srv, err := conn.Relay(ctx, drover.RelayRequest{Release: r, Token: relay.NewToken(), Timeout: time.Minute})
			if err == nil {
				srv.Close()
				t.Fatalf("a hostile relay was accepted at %s", srv.URL())
			}
			if drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), "h01") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("hostile relay: %v, want EFAILED naming h01 and %q", err, c.want)
			}
			if time.Since(start) > RelayStartTimeout {
				t.Errorf("refused only after the start timeout")
			}
		})
	}
}

// relayURL builds the children's URL from the host's address and the
// reported port, within the port range.
func TestRelayURLFromOwnAddress(t *testing.T) {
	sha := strings.Repeat("a", 64)
	rel := &drover.Release{BundleSHA256: sha}
	req := drover.RelayRequest{Release: rel, PortMin: 7000, PortMax: 7010}
	for _, c := range []struct {
		reported, address, want string
	}{
		{"http://10.0.0.5:7005/bundle/" + sha, "10.0.0.5:22", "http://10.0.0.5:7005/bundle/" + sha},
		{"http://10.0.0.5:7005/bundle/" + sha, "10.0.0.5", "http://10.0.0.5:7005/bundle/" + sha},
		{"http://192.0.2.1:7005/bundle/" + sha, "web1.example:22", "http://web1.example:7005/bundle/" + sha},
		{"http://[::1]:7001/bundle/" + sha, "[::1]:2222", "http://[::1]:7001/bundle/" + sha},
		{"http://10.0.0.6:7005/bundle/" + sha, "10.0.0.5:22", ""},     // another address
		{"http://10.0.0.5:8080/bundle/" + sha, "10.0.0.5:22", ""},     // outside the range
		{"http://10.0.0.5:7005/admin", "10.0.0.5:22", ""},             // another path
		{"https://10.0.0.5:7005/bundle/" + sha, "10.0.0.5:22", ""},    // another scheme
		{"http://u:p@10.0.0.5:7005/bundle/" + sha, "10.0.0.5:22", ""}, // credentials
	} {
		got, err := relayURL(c.reported, c.address, req)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("relayURL(%s, %s) = %q, %v; want %q", c.reported, c.address, got, err, c.want)
		}
	}
}

// A host's state.json names a megabyte version: what the probe (and
// State) hand to the runner — events, status tables — is clipped.
func TestHostStateIsClipped(t *testing.T) {
	f := newFixture(t)
	tr := f.transport(f.config())
	h := f.host("h01", f.srv)
	if err := os.MkdirAll(h.DeployRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("V", mib)
	b, _ := json.Marshal(drover.HostState{Current: "releases/x", Version: big, DeployID: big,
		History: []drover.HostHistoryEntry{{Action: "promote", Reason: big}}})
	if err := os.WriteFile(h.DeployRoot+"/"+drover.StateFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := open(t, tr, h).State(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Version) + len(st.DeployID) + len(st.History[0].Reason); n > 4*MaxHostText {
		t.Errorf("%d bytes of state.json text kept", n)
	}
}
