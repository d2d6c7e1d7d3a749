package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"drover"
)

// showStat is `show stat` of HAProxy 2.6 (cut to the columns up to
// check_status and a few after), with a frontend, two servers and the
// backend line.
const showStat = `# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,
fe,FRONTEND,,,3,4,2000,17,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,
web,h01,0,0,2,3,,11,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,0,0,,1,3,1,,0,,2,0,,0,L7OK,200,
web,h02,0,0,0,0,,6,0,0,,0,,0,0,0,0,DRAIN 1/2,1,1,0,0,0,0,0,,1,3,2,,0,,2,0,,0,INI,,
web,BACKEND,0,0,2,3,200,17,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,0,0,,1,3,0,,0,,1,0,,0,,,
other,s1,0,0,9,9,,9,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,0,0,0,,1,3,1,,0,,2,0,,0,L4CON,,

`

const showServersState = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 web 1 h01 127.0.0.1 2 0 1 1 0 15 3 3 6 0 0 0 - 35083 - 0 0 - - 0
3 web 2 h02 127.0.0.1 2 8 1 1 0 1 0 2 6 0 0 0 - 1 - 0 0 - - 0
3 web 3 h03 127.0.0.1 0 1 1 1 0 1 0 2 6 0 0 0 - 1 - 0 0 - - 0
`

func TestParseStat(t *testing.T) {
	got, err := parseStat(showStat, "web")
	if err != nil {
		t.Fatal(err)
	}
	want := []ServerStat{
		{Backend: "web", Server: "h01", Status: "UP", Sessions: 2, Total: 11, CheckStatus: "L7OK"},
		{Backend: "web", Server: "h02", Status: "DRAIN 1/2", Sessions: 0, Total: 6, CheckStatus: "INI"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !got[0].Up() || got[1].Up() {
		t.Errorf("Up: %v %v", got[0].Up(), got[1].Up())
	}
	if _, err := parseStat(showStat, "nope"); err == nil || !strings.Contains(err.Error(), `no backend "nope"`) {
		t.Errorf("unknown backend: %v", err)
	}
	if _, err := parseStat("Unknown command.\n", "web"); drover.ErrorCode(err) != drover.EFAILED {
		t.Errorf("garbage: %v", err)
	}
	st, err := parseServersState(showServersState)
	if err != nil {
		t.Fatal(err)
	}
	if w := map[string]string{"h01": StateReady, "h02": StateDrain, "h03": StateMaint}; !equalMaps(st, w) {
		t.Errorf("admin states %v, want %v", st, w)
	}
	if _, err := parseServersState("Permission denied\n"); err == nil {
		t.Error("garbage servers state accepted")
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestNamesNeverReachTheSocket: a backend or server name that could carry
// a second command is refused before anything is sent.
func TestNamesNeverReachTheSocket(t *testing.T) {
	rt := &Runtime{Addr: "/nonexistent/admin.sock"}
	for _, name := range []string{"web;shutdown frontend fe", "a b", "a\nb", "", "x/y"} {
		err := rt.SetState(context.Background(), "web", name, StateDrain)
		if drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("server %q: %v, want EINVALID before any connection", name, err)
		}
		err = rt.SetState(context.Background(), name, "h01", StateDrain)
		if drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("backend %q: %v, want EINVALID", name, err)
		}
	}
	if _, err := rt.Exec(context.Background(), "show stat\nshutdown frontend fe"); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("two-line command: %v", err)
	}
	p := &HAProxy{Runtime: *rt, Backend: "web", Server: "{{.Host.Vars.lb}}"}
	h := drover.RotationHost{Data: drover.TemplateData{Host: drover.TemplateHost{Name: "h01", Vars: map[string]any{"lb": "x; disable server web/h02"}}}}
	if err := p.Depool(context.Background(), h); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("rendered server name with ';': %v", err)
	}
	if err := rt.SetState(context.Background(), "web", "h01", "up"); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("unknown state: %v", err)
	}
	// An unreachable socket is EUNREACHABLE, naming it and what to check.
	err := rt.SetState(context.Background(), "web", "h01", StateDrain)
	if drover.ErrorCode(err) != drover.EUNREACHABLE || !strings.Contains(err.Error(), "/nonexistent/admin.sock") || !strings.Contains(drover.ErrorHint(err), "level admin") {
		t.Errorf("unreachable socket: %v (%s) hint %q", err, drover.ErrorCode(err), drover.ErrorHint(err))
	}
}

// fakeConn records Exec calls; exit maps a command prefix to an exit code.
type fakeConn struct {
	drover.HostConn
	mu    sync.Mutex
	calls []drover.ExecRequest
	exit  map[string]int
	err   map[string]error
}

func (c *fakeConn) Exec(ctx context.Context, req drover.ExecRequest) (drover.ExecResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, req)
	for prefix, err := range c.err {
		if strings.HasPrefix(req.Command, prefix) {
			return drover.ExecResult{}, err
		}
	}
	for prefix, code := range c.exit {
		if strings.HasPrefix(req.Command, prefix) {
			return drover.ExecResult{ExitCode: code, Output: "lb says no"}, nil
		}
	}
	return drover.ExecResult{}, nil
}

func rotationHost(conn *fakeConn) drover.RotationHost {
	return drover.RotationHost{
		Host: drover.Host{Name: "h01"},
		Data: drover.TemplateData{Host: drover.TemplateHost{Name: "h01", Vars: map[string]any{"pool": "web pool; rm -rf /"}}, Root: "/srv/x"},
		Dir:  ".",
		Conn: func(context.Context) (drover.HostConn, error) { return conn, nil },
	}
}

func TestCommands(t *testing.T) {
	ctx := context.Background()
	conn := &fakeConn{}
	c := &Commands{DepoolCmd: "lb out {{.Host.Vars.pool}} {{.Host.Name}}", WaitIdleCmd: "lb wait {{.Host.Name}}", RepoolCmd: "lb in {{.Host.Name}}", Timeout: 7 * time.Second}
	h := rotationHost(conn)
	if err := c.Depool(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitIdle(ctx, h, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Repool(ctx, h); err != nil {
		t.Fatal(err)
	}
	want := []drover.ExecRequest{
		// Values are shell-quoted: a pool name cannot run a command.
		{Command: "lb out 'web pool; rm -rf /' h01", Dir: ".", Timeout: 7 * time.Second},
		{Command: "lb wait h01", Dir: ".", Timeout: 3 * time.Second},
		{Command: "lb in h01", Dir: ".", Timeout: 7 * time.Second},
	}
	if !slices.EqualFunc(conn.calls, want, func(a, b drover.ExecRequest) bool {
		return a.Command == b.Command && a.Dir == b.Dir && a.Timeout == b.Timeout
	}) {
		t.Errorf("calls\n got %+v\nwant %+v", conn.calls, want)
	}

	// Empty hooks do nothing.
	conn = &fakeConn{}
	if err := (&Commands{}).Depool(ctx, rotationHost(conn)); err != nil || len(conn.calls) != 0 {
		t.Errorf("empty hook: %v, %d calls", err, len(conn.calls))
	}

	// A non-zero exit is EFAILED naming the hook and its output; a
	// timed-out wait_idle is ETIMEOUT (the runner goes on after it).
	conn = &fakeConn{exit: map[string]int{"lb out": 3}, err: map[string]error{"lb wait": drover.Errorf(drover.ETIMEOUT, "command did not finish within 3s")}}
	h = rotationHost(conn)
	err := c.Depool(ctx, h)
	if drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), "depool hook exited 3: lb says no") {
		t.Errorf("failing depool: %v", err)
	}
	err = c.WaitIdle(ctx, h, time.Second)
	if drover.ErrorCode(err) != drover.ETIMEOUT || !strings.Contains(err.Error(), "wait_idle hook") {
		t.Errorf("timed-out wait_idle: %v", err)
	}
}

// fakeRotation logs calls to a shared log.
type fakeRotation struct {
	name string
	log  *[]string
	fail map[string]error
}

func (f fakeRotation) do(op string) error {
	*f.log = append(*f.log, f.name+" "+op)
	return f.fail[op]
}
func (f fakeRotation) Depool(context.Context, drover.RotationHost) error { return f.do("depool") }
func (f fakeRotation) WaitIdle(context.Context, drover.RotationHost, time.Duration) error {
	return f.do("wait")
}
func (f fakeRotation) Repool(context.Context, drover.RotationHost) error { return f.do("repool") }

func TestChain(t *testing.T) {
	ctx := context.Background()
	var log []string
	lb := fakeRotation{name: "lb", log: &log, fail: map[string]error{}}
	hooks := fakeRotation{name: "hooks", log: &log, fail: map[string]error{}}
	c := Chain{lb, hooks}
	c.Depool(ctx, drover.RotationHost{})
	c.WaitIdle(ctx, drover.RotationHost{}, time.Second)
	c.Repool(ctx, drover.RotationHost{})
	if want := []string{"lb depool", "hooks depool", "lb wait", "hooks wait", "hooks repool", "lb repool"}; !slices.Equal(log, want) {
		t.Errorf("order %v, want %v", log, want)
	}

	// A failing depool stops the chain; a failing repool does not: the
	// other balancer still takes the host back.
	log = nil
	lb.fail["depool"] = drover.Errorf(drover.EFAILED, "lb down")
	hooks.fail["repool"] = drover.Errorf(drover.EFAILED, "hook failed")
	if err := c.Depool(ctx, drover.RotationHost{}); err == nil {
		t.Error("depool error lost")
	}
	err := c.Repool(ctx, drover.RotationHost{})
	if want := []string{"lb depool", "hooks repool", "lb repool"}; !slices.Equal(log, want) {
		t.Errorf("order %v, want %v", log, want)
	}
	if drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), "hook failed") {
		t.Errorf("repool error %v", err)
	}

	// A wait timeout in one does not skip the next, and is returned.
	log = nil
	lb.fail["wait"] = drover.Errorf(drover.ETIMEOUT, "still 3 sessions")
	err = c.WaitIdle(ctx, drover.RotationHost{}, time.Second)
	if drover.ErrorCode(err) != drover.ETIMEOUT || !slices.Equal(log, []string{"lb wait", "hooks wait"}) {
		t.Errorf("wait: %v, log %v", err, log)
	}
	hooks.fail["wait"] = errors.New("boom")
	if err := c.WaitIdle(ctx, drover.RotationHost{}, time.Second); err == nil || err.Error() != "boom" {
		t.Errorf("hard wait error: %v", err)
	}
}

func TestNew(t *testing.T) {
	s := &drover.Spec{}
	if New(s) != nil {
		t.Error("rotation without any configuration")
	}
	s.Hooks.Depool = "x"
	if _, ok := New(s).(*Commands); !ok {
		t.Errorf("hooks only: %T", New(s))
	}
	s.Rotation.HAProxy = &drover.HAProxyRotation{Socket: "/s", Backend: "web"}
	c, ok := New(s).(Chain)
	if !ok || len(c) != 2 {
		t.Fatalf("both: %#v", New(s))
	}
	if _, ok := c[0].(*HAProxy); !ok {
		t.Errorf("HAProxy first: %s", fmt.Sprintf("%T", c[0]))
	}
}
