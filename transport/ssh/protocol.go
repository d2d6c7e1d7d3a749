package ssh

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"drover"
)

// Operations of `drover host OP`.
const (
	OpState    = "state"
	OpStage    = "stage"
	OpPromote  = "promote"
	OpRestore  = "restore"
	OpExec     = "exec"
	OpCheck    = "check"
	OpReadFile = "read-file"
	OpPrune    = "prune"
	// OpValidate is stage up to its validate commands, in a scratch
	// directory the host removes (hostops.Validate): the bundle follows
	// the request, as for stage. A host binary without it refuses the
	// unknown operation rather than staging.
	OpValidate = "validate"
)

// Ops lists every operation `drover host` serves.
var Ops = []string{OpState, OpStage, OpValidate, OpPromote, OpRestore, OpExec, OpCheck, OpReadFile, OpPrune, OpFetch, OpStageFetched, OpRelayServe}

// Operations of relay distribution (relay.go): fetch a bundle into the
// host's cache (from another host's relay, or streamed after the request
// like stage), stage from the cache, and serve the cache to other hosts.
const (
	OpFetch        = "fetch"
	OpStageFetched = "stage-fetched"
	// OpRelayServe is long-lived and one-shot only: it answers a first
	// line with Response.Relay once it listens, serves until stdin ends
	// (or its timeout), then answers a last line.
	OpRelayServe = "relay-serve"
)

// OpServe is not an operation but a mode: `drover host serve --root ROOT`
// answers a greeting line (Response.Ready), then serves one Request line
// after another — each naming its operation in Request.Op — on the same
// stdin and stdout until stdin ends. A Request's Body bytes follow its
// line (the bundle, for stage). One SSH session, one process launch and
// one login-shell start then carry every step of a host instead of one
// each. Requests are served one at a time; EOF on stdin cancels the one
// running, as for a one-shot `drover host OP`.
const OpServe = "serve"

// ProtocolVersion is carried by every Request; a host binary speaking
// another version refuses the request rather than guessing.
const ProtocolVersion = 1

// Request is the JSON line a `drover host OP` reads from stdin. Only the
// field of the operation is set.
type Request struct {
	V int `json:"v"`
	// Op is the operation, in serve mode (a one-shot `drover host OP`
	// takes it from its argument).
	Op string `json:"op,omitempty"`
	// Body is how many bytes follow the line in serve mode (stage: the
	// bundle). A one-shot stage reads the bundle up to EOF instead.
	Body int64 `json:"body,omitempty"`
	// Host is the host's name in drover.yaml, for DROVER_HOST and errors.
	Host string `json:"host"`
	// Timeout is what is left of the step's deadline when the request was
	// sent; the host stops its own work after it, so a hook does not run
	// on after the connection that asked for it is gone.
	Timeout time.Duration `json:"timeout,omitempty"`

	Stage   *drover.StageRequest   `json:"stage,omitempty"`
	Promote *drover.PromoteRequest `json:"promote,omitempty"`
	Restore *drover.RestoreRequest `json:"restore,omitempty"`
	Exec    *drover.ExecRequest    `json:"exec,omitempty"`
	Check   *drover.CheckSpec      `json:"check,omitempty"`
	Path    string                 `json:"path,omitempty"`
	Keep    int                    `json:"keep,omitempty"`
	Protect []string               `json:"protect,omitempty"`
	// Foreign lets a prune remove foreign releases (prune_foreign); a
	// host binary that predates it ignores it and keeps them.
	Foreign bool `json:"foreign,omitempty"`
	// Fetch and Relay are the requests of relay distribution; Listen is
	// the address a relay binds to on the host (its address in
	// drover.yaml, without the SSH port).
	Fetch  *drover.FetchRequest `json:"fetch,omitempty"`
	Relay  *drover.RelayRequest `json:"relay,omitempty"`
	Listen string               `json:"listen,omitempty"`
	// Notes says the controller takes Response.Note lines before the
	// answer (serve mode): a host that must wait for its lock says what
	// it waits for. An older controller does not set it and gets none.
	Notes bool `json:"notes,omitempty"`
	// Acks asks the host for Response.Ack lines while it reads Body
	// (serve mode), so that the controller keeps at most BodyWindow bytes
	// of it unread on the host's side (see BodyWindow). A host binary
	// that predates it ignores it; the controller windows only a session
	// whose greeting set Response.Acks.
	Acks bool `json:"acks,omitempty"`
}

// BodyWindow is the most of a request's body the controller sends ahead
// of the host's Response.Ack (when the session's greeting offered acks),
// and AckEvery how often the host acks as it reads.
//
// The SSH channel's own window lets a client send 2 MB ahead (OpenSSH's
// session window), and a Go client does. sshd holds what its child has
// not read yet in buffers it grows by copying them whole, and it spent
// most of a stage's CPU doing so: 8 MB into `cat >/dev/null` cost sshd
// ~0.15 CPU-seconds sent at once, ~0.01 s sent 512 KB ahead of the
// reader (bench/README.md, "Where a stage's CPU went"). On loopback and
// on a LAN 512 KB in flight keeps the link full; over a 50 ms round trip
// it caps one host at ~10 MB/s, which the hosts staging at once share
// out (stage_parallelism).
const (
	BodyWindow = 512 << 10
	AckEvery   = 64 << 10
)

// Response is the JSON line a `drover host OP` writes to stdout.
type Response struct {
	V int `json:"v"`
	// Note, alone on a line, is not the answer: it is something the
	// operator should see while the operation goes on (what the host's
	// lock waits for), sent only when the request set Notes. The answer
	// follows. (Note is the second field: the controller spots it by the
	// line's prefix, notePrefix.)
	Note string `json:"note,omitempty"`
	// Ack, alone on a line, is not the answer either: how many bytes of
	// the request's body the host has read so far (Request.Acks). It may
	// come after the answer, when the host drains a body the operation
	// did not read (the controller skips it then). ackPrefix spots it.
	Ack int64 `json:"ack,omitempty"`
	// Ready is set on the greeting `drover host serve` writes before it
	// reads any request: a binary that does not know serve never writes
	// it, and the controller falls back to one session per operation.
	Ready bool `json:"ready,omitempty"`
	// Acks, on the greeting, says this host answers Request.Acks.
	Acks  bool                `json:"acks,omitempty"`
	Error *WireError          `json:"error,omitempty"`
	State *drover.HostState   `json:"state,omitempty"`
	Stage *drover.StageResult `json:"stage,omitempty"`
	Exec  *drover.ExecResult  `json:"exec,omitempty"`
	Check *drover.CheckResult `json:"check,omitempty"`
	// Data is a file's content (read-file); JSON carries it as base64.
	Data    []byte   `json:"data,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// RelayURL is where a relay-serve serves the bundle (its first line).
	RelayURL string `json:"relay_url,omitempty"`
}

// notePrefix starts a Note line.
const notePrefix = `{"v":1,"note":`

// ackPrefix starts an Ack line.
const ackPrefix = `{"v":1,"ack":`

// WireError is a drover.Error on the wire.
type WireError struct {
	Code    string `json:"code"`
	Where   string `json:"where,omitempty"`
	Message string `json:"message,omitempty"`
	Hint    string `json:"hint,omitempty"`
	Cause   string `json:"cause,omitempty"`
}

func toWire(err error) *WireError {
	if err == nil {
		return nil
	}
	var de *drover.Error
	if errors.As(err, &de) {
		w := &WireError{Code: de.Code, Where: de.Where, Message: de.Message, Hint: drover.ErrorHint(err)}
		if de.Err != nil {
			w.Cause = de.Err.Error()
		}
		return w
	}
	return &WireError{Code: drover.EINTERNAL, Message: err.Error()}
}

func (w *WireError) err() *drover.Error {
	e := &drover.Error{Code: w.Code, Where: w.Where, Message: w.Message, Hint: w.Hint}
	if w.Cause != "" {
		e.Err = errors.New(w.Cause)
	}
	if e.Code == "" {
		e.Code = drover.EINTERNAL
	}
	return e
}

// decodeRequest decodes a Request. Numbers in template vars come back as
// YAML decoded them on the controller — uint64 for non-negative integers,
// int64 for negative ones, float64 otherwise — not as JSON's float64: the
// host renders config files with these values and hashes the result, and
// float64(1000000) renders as "1e+06", which would make every host's
// config hash differ from the controller's and the config itself wrong.
func decodeRequest(line []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return req, drover.Errorf(drover.EINVALID, "drover host: bad request: %v", err)
	}
	if req.V != ProtocolVersion {
		return req, drover.Errorf(drover.EINVALID, "drover host: request of protocol version %d, this binary speaks %d", req.V, ProtocolVersion).
			WithHint("the controller and the host binary disagree; remove <deploy_root>/.drover/bin on the host and run drover again")
	}
	if req.Stage != nil {
		req.Stage.Data.Host.Vars = fixVars(req.Stage.Data.Host.Vars)
	}
	return req, nil
}

func fixVars(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = fixNumber(v)
	}
	return out
}

func fixNumber(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u
		}
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return s
	case map[string]any:
		return fixVars(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fixNumber(e)
		}
		return out
	}
	return v
}

// encodeRequest is the request line, newline-terminated.
func encodeRequest(req Request) ([]byte, error) {
	req.V = ProtocolVersion
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return append(b, '\n'), nil
}
