package rotation

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"drover"
)

// Runtime is a client of HAProxy's runtime API: the stats socket declared
// with `stats socket PATH level admin` (or on a TCP address). Each command
// is one connection in non-interactive mode: the command and a newline go
// out, the answer comes back and HAProxy closes the connection.
type Runtime struct {
	// Addr is a unix socket path (absolute, or starting with ./) or a
	// host:port.
	Addr string
	// Timeout bounds one command: connect, write and read. 0 means
	// DefaultRuntimeTimeout.
	Timeout time.Duration
}

// DefaultRuntimeTimeout bounds one runtime API command.
const DefaultRuntimeTimeout = 5 * time.Second

// maxAnswer bounds what one command may return: `show stat` of a large
// configuration is a few hundred kilobytes.
const maxAnswer = 16 << 20

// validName is what a backend or server name may hold on its way into a
// runtime API command. The API splits commands on ';' and words on
// spaces, so a host var that smuggled "; shutdown frontend web" into a
// server name would run a second command as admin: anything outside
// HAProxy's own identifier characters is refused, never quoted.
var validName = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// CheckName returns an EINVALID error when name cannot be a proxy or
// server name in a runtime API command.
func CheckName(what, name string) error {
	if !validName.MatchString(name) {
		return drover.Errorf(drover.EINVALID, "haproxy %s %q: only letters, digits, '.', '_', ':' and '-' can be sent to the runtime API", what, name)
	}
	return nil
}

func (r *Runtime) network() (network, addr string) {
	if strings.HasPrefix(r.Addr, "/") || strings.HasPrefix(r.Addr, "./") || strings.HasPrefix(r.Addr, "../") {
		return "unix", filepath.Clean(r.Addr)
	}
	return "tcp", r.Addr
}

// Exec sends one command and returns HAProxy's answer. Failing to reach
// the socket is EUNREACHABLE; running out of time is ETIMEOUT.
func (r *Runtime) Exec(ctx context.Context, command string) (string, error) {
	if strings.ContainsAny(command, "\n\r") {
		return "", drover.Errorf(drover.EINVALID, "haproxy runtime API: a command is one line, got %q", command)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultRuntimeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network, addr := r.network()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		code := drover.EUNREACHABLE
		if ctx.Err() != nil {
			code = drover.ETIMEOUT
		}
		return "", &drover.Error{Code: code, Message: "haproxy runtime API at " + r.Addr, Err: err,
			Hint: "check that haproxy runs and its config has `stats socket " + r.Addr + " level admin`, and that drover may open it"}
	}
	defer conn.Close()
	// ctx ends the exchange: the deadline covers a balancer that accepts
	// and never answers, cancellation an operator's interrupt.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", r.ioError(ctx, command, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxAnswer))
	if err != nil {
		return "", r.ioError(ctx, command, err)
	}
	return string(b), nil
}

func (r *Runtime) ioError(ctx context.Context, command string, err error) error {
	code := drover.EUNREACHABLE
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		code = drover.ETIMEOUT
	}
	return &drover.Error{Code: code, Message: fmt.Sprintf("haproxy runtime API at %s: %s", r.Addr, firstWord(command, 2)), Err: err}
}

func firstWord(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

// Admin states of a server, as set with SetState.
const (
	StateReady = "ready"
	StateDrain = "drain"
	StateMaint = "maint"
)

// SetState sets backend/server's administrative state: ready, drain or
// maint. An answer other than silence (HAProxy's "No such server.") is
// EFAILED.
func (r *Runtime) SetState(ctx context.Context, backend, server, state string) error {
	if err := CheckName("backend", backend); err != nil {
		return err
	}
	if err := CheckName("server", server); err != nil {
		return err
	}
	switch state {
	case StateReady, StateDrain, StateMaint:
	default:
		return drover.Errorf(drover.EINVALID, "haproxy: unknown server state %q", state)
	}
	out, err := r.Exec(ctx, fmt.Sprintf("set server %s/%s state %s", backend, server, state))
	if err != nil {
		return err
	}
	if msg := strings.TrimSpace(out); msg != "" {
		return &drover.Error{Code: drover.EFAILED, Message: fmt.Sprintf("haproxy: set server %s/%s state %s: %s", backend, server, state, msg),
			Hint: "check rotation.haproxy.backend and rotation.haproxy.server against haproxy.cfg, and that the socket has level admin"}
	}
	return nil
}

// ServerStat is one server's line of `show stat`.
type ServerStat struct {
	Backend string
	Server  string
	// Status is HAProxy's: UP, DOWN, DRAIN, MAINT, NOLB, "no check",
	// and transitional forms such as "UP 1/3" (up, failing checks) or
	// "DOWN 1/2" (down, passing checks).
	Status string
	// Sessions is scur: the sessions the server is serving now.
	Sessions int
	// Total is stot: the sessions it has served.
	Total int
	// CheckStatus is the last health check's result, e.g. L7OK, L4CON,
	// L7STS.
	CheckStatus string
	// Admin is the administrative state from `show servers state`
	// (ready, drain or maint); set by Servers only.
	Admin string
}

// Up reports whether HAProxy sends the server traffic: its health check
// passes (or it has none) and it is administratively ready.
func (s ServerStat) Up() bool { return s.Status == "UP" || s.Status == "no check" }

// Stats returns the servers of backend from `show stat`.
func (r *Runtime) Stats(ctx context.Context, backend string) ([]ServerStat, error) {
	if err := CheckName("backend", backend); err != nil {
		return nil, err
	}
	out, err := r.Exec(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	return parseStat(out, backend)
}

// parseStat reads `show stat` CSV: a header line "# pxname,svname,..."
// then one line per frontend, server and backend.
func parseStat(out, backend string) ([]ServerStat, error) {
	bad := func(why string) error {
		return drover.Errorf(drover.EFAILED, "haproxy: unexpected `show stat` answer (%s): %s", why, tail(out, 200))
	}
	out = strings.TrimPrefix(out, "# ")
	rd := csv.NewReader(strings.NewReader(out))
	rd.FieldsPerRecord = -1
	recs, err := rd.ReadAll()
	if err != nil {
		return nil, bad(err.Error())
	}
	if len(recs) == 0 {
		return nil, bad("empty")
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	for _, need := range []string{"pxname", "svname", "scur", "stot", "status", "check_status"} {
		if _, ok := col[need]; !ok {
			return nil, bad("no " + need + " column")
		}
	}
	get := func(rec []string, name string) string {
		if i := col[name]; i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var stats []ServerStat
	found := false
	for _, rec := range recs[1:] {
		if get(rec, "pxname") != backend {
			continue
		}
		found = true
		sv := get(rec, "svname")
		if sv == "FRONTEND" || sv == "BACKEND" {
			continue
		}
		scur, _ := strconv.Atoi(get(rec, "scur"))
		stot, _ := strconv.Atoi(get(rec, "stot"))
		stats = append(stats, ServerStat{Backend: backend, Server: sv, Status: get(rec, "status"), Sessions: scur, Total: stot, CheckStatus: get(rec, "check_status")})
	}
	if !found {
		return nil, &drover.Error{Code: drover.EFAILED, Message: fmt.Sprintf("haproxy has no backend %q", backend), Hint: "check rotation.haproxy.backend against haproxy.cfg"}
	}
	return stats, nil
}

// Stat returns one server's line of `show stat`. A server the backend
// does not have is EFAILED.
func (r *Runtime) Stat(ctx context.Context, backend, server string) (ServerStat, error) {
	stats, err := r.Stats(ctx, backend)
	if err != nil {
		return ServerStat{}, err
	}
	for _, s := range stats {
		if s.Server == server {
			return s, nil
		}
	}
	return ServerStat{}, &drover.Error{Code: drover.EFAILED, Message: fmt.Sprintf("haproxy backend %s has no server %q", backend, server),
		Hint: "check rotation.haproxy.server (a template, default {{.Host.Name}}) against the server names in haproxy.cfg"}
}

// Servers returns the servers of backend with their administrative
// state: `show stat` joined with `show servers state`.
func (r *Runtime) Servers(ctx context.Context, backend string) ([]ServerStat, error) {
	stats, err := r.Stats(ctx, backend)
	if err != nil {
		return nil, err
	}
	out, err := r.Exec(ctx, "show servers state "+backend)
	if err != nil {
		return nil, err
	}
	admin, err := parseServersState(out)
	if err != nil {
		return nil, err
	}
	for i := range stats {
		stats[i].Admin = admin[stats[i].Server]
	}
	return stats, nil
}

// Bits of srv_admin_state (HAProxy's SRV_ADMF_*): forced, inherited,
// config, resolver and health-check maintenance, forced and inherited
// drain.
const (
	admMaint = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
	admDrain = 0x08 | 0x10
)

// parseServersState reads `show servers state`: a version line, a header
// "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state
// ..." and one space-separated line per server. It returns server name →
// ready, drain or maint.
func parseServersState(out string) (map[string]string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var header []string
	states := map[string]string{}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			header = strings.Fields(strings.TrimPrefix(l, "#"))
			continue
		}
		f := strings.Fields(l)
		if header == nil || len(f) < len(header)/2 {
			continue // the version line
		}
		var name string
		adm := -1
		for i, h := range header {
			if i >= len(f) {
				break
			}
			switch h {
			case "srv_name":
				name = f[i]
			case "srv_admin_state":
				adm, _ = strconv.Atoi(f[i])
			}
		}
		if name == "" || adm < 0 {
			return nil, drover.Errorf(drover.EFAILED, "haproxy: unexpected `show servers state` line %q", l)
		}
		switch {
		case adm&admMaint != 0:
			states[name] = StateMaint
		case adm&admDrain != 0:
			states[name] = StateDrain
		default:
			states[name] = StateReady
		}
	}
	if header == nil {
		return nil, drover.Errorf(drover.EFAILED, "haproxy: unexpected `show servers state` answer: %s", tail(out, 200))
	}
	return states, nil
}
