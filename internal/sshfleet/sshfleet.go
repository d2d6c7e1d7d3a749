// Package sshfleet makes a fleet of real OpenSSH servers on this machine,
// for the end-to-end tests and the benchmark of transport ssh.
//
// The model: each host is an `sshd -D -e` of its own, started as the
// current user on a loopback port with a generated sshd_config, its own
// ed25519 host key and its own deploy root; all of them accept one client
// key and are recorded in one known_hosts file. drover reaches them exactly
// as it reaches real servers — the key exchange, the host key check, the
// upload of drover itself, every step as an SSH session — and each host
// runs the sample service (examples/hello) on a port of its own, the host
// var `port`.
//
// Layout under Options.Dir:
//
//	drover.yaml                 transport ssh, one host per sshd
//	ssh/id_ed25519              the client key (ssh.identity)
//	ssh/known_hosts             every host's key (ssh.known_hosts)
//	ssh/authorized_keys         the client's public key, for every sshd
//	ssh/<name>/host_ed25519     the host's key
//	ssh/<name>/sshd_config      its config; sshd.log its output
//	hosts/<name>/srv/<service>  the host's deploy root
//	src/<version>/              release sources written by WriteRelease
//	state/                      drover's lock, journal and history
//
// Down kills a host's sshd and every process of its connections, as a
// host that dies would; Up starts it again on the same port. ChangeHostKey
// gives a host a new key (known_hosts still has the old one), and
// ForgetHostKey removes it from known_hosts.
package sshfleet

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"drover/examples/hello"
	"drover/internal/freeport"
	sshtransport "drover/transport/ssh"
)

// Sshd is where Debian's openssh-server puts the daemon.
const Sshd = "/usr/sbin/sshd"

// DefaultGroups: a canary that may not fail, then the rest in batches of a
// quarter with a fifth allowed to fail.
const DefaultGroups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
  - name: default
    hosts: ["h*"]
    batch: "25%"
    failure_limit: "20%"
`

// Options describes a fleet.
type Options struct {
	Dir   string
	Hosts int
	// Service names the service and its deploy root /srv/<service>;
	// "" means hello.
	Service string
	// Groups is raw YAML for groups ("" means DefaultGroups).
	Groups string
	// SSHExtra is raw YAML added to the ssh: block, indented by the
	// caller with two spaces ("  connect_timeout: 5s\n").
	SSHExtra string
	// ExtraYAML is appended to drover.yaml.
	ExtraYAML string
	// ExtraHooks are more entries of the hooks block (before_restart,
	// depool, ...), one "key: value" per line; the block itself is
	// written here, so ExtraYAML cannot add to it.
	ExtraHooks string
	// ExtraChecks are more items of the checks list, raw YAML starting
	// with "- name: ..." (re-indented under checks:), after the fleet's
	// port, version and health checks.
	ExtraChecks string
	// Sshd is the daemon; "" means Sshd.
	Sshd string
	// NoShellRC keeps the login shell from reading the user's ~/.bashrc
	// in every SSH session (sshd sets SHLVL=1, so bash does not take
	// itself for a shell started by sshd). Every session, of drover or
	// any other tool, otherwise pays for that file: on a machine whose
	// root runs `pyenv init` there, hundreds of milliseconds of CPU.
	NoShellRC bool
	// IPs, when set, gives each host (in order) the address its sshd
	// listens on instead of 127.0.0.1, and Exec a command prefix its sshd
	// runs under (bench/fanout-netns.sh: "ip netns exec NS", so a host
	// sits in a network namespace of its own behind a rate-limited link).
	// Checks run on the host, so they keep 127.0.0.1 inside it.
	IPs  []string
	Exec [][]string
	// HostBinary, when set, is a drover binary every host starts out
	// holding where transport ssh looks for it (RemoteBinary under the
	// deploy root, in its 0700 directory), as drover's upload leaves it
	// (see placeBinary): a host some earlier run deployed.
	// drover then runs it there instead of uploading itself. A
	// race-built drover is some 50 MB, and streaming it through sshd to
	// every host of every fleet was CPU the tests not about the upload
	// spent on it; the tests of the upload leave this empty.
	HostBinary string
}

// Host is one sshd of the fleet.
type Host struct {
	Name string
	// SSHPort is where its sshd listens on 127.0.0.1; Port is its
	// service's port.
	SSHPort int
	Port    int
	// IP is where its sshd listens (127.0.0.1 unless Options.IPs).
	IP   string
	exec []string
	// Root is its deploy root.
	Root string
	dir  string // ssh/<name>

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
	// exited is closed when the current sshd process has been reaped.
	exited chan struct{}
}

// Address is the host's address in drover.yaml.
func (h *Host) Address() string { return net.JoinHostPort(h.IP, strconv.Itoa(h.SSHPort)) }

// Fleet is a set of running sshd hosts.
type Fleet struct {
	Dir        string
	Config     string
	Service    string
	StateDir   string
	Identity   string
	KnownHosts string
	Hosts      []*Host

	sshd      string
	client    *http.Client
	noShellRC bool
}

// New makes and starts the fleet. Call Stop when done, also after an
// error (it stops what did start).
func New(o Options) (*Fleet, error) {
	if o.Dir == "" || o.Hosts < 1 || o.Hosts > 999 {
		return nil, fmt.Errorf("sshfleet: need Options.Dir and 1..999 hosts, got %q and %d", o.Dir, o.Hosts)
	}
	if (o.IPs != nil && len(o.IPs) != o.Hosts) || (o.Exec != nil && len(o.Exec) != o.Hosts) {
		return nil, fmt.Errorf("sshfleet: Options.IPs and Options.Exec need one entry per host (%d), got %d and %d", o.Hosts, len(o.IPs), len(o.Exec))
	}
	sshd := o.Sshd
	if sshd == "" {
		sshd = Sshd
	}
	if _, err := os.Stat(sshd); err != nil {
		return nil, fmt.Errorf("sshfleet: %s is missing: install openssh-server (scripts/deps.sh does): %w", sshd, err)
	}
	if o.Service == "" {
		o.Service = "hello"
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	f := &Fleet{
		Dir: dir, Config: filepath.Join(dir, "drover.yaml"), Service: o.Service,
		StateDir: filepath.Join(dir, "state"),
		Identity: filepath.Join(dir, "ssh", "id_ed25519"), KnownHosts: filepath.Join(dir, "ssh", "known_hosts"),
		sshd:   sshd,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	// sshd's privilege separation directory; a fresh container lacks it.
	os.MkdirAll("/run/sshd", 0o755)
	for _, d := range []string{filepath.Join(dir, "ssh"), filepath.Join(dir, "src"), f.StateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	pub, err := writeKey(f.Identity)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ssh", "authorized_keys"), gossh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * o.Hosts)
	if err != nil {
		return nil, err
	}
	width := max(2, len(strconv.Itoa(o.Hosts)))
	f.noShellRC = o.NoShellRC
	for i := range o.Hosts {
		name := fmt.Sprintf("h%0*d", width, i+1)
		h := &Host{Name: name, SSHPort: ports[2*i], Port: ports[2*i+1],
			Root: filepath.Join(dir, "hosts", name, "srv", o.Service), dir: filepath.Join(dir, "ssh", name), IP: "127.0.0.1"}
		if o.IPs != nil {
			h.IP = o.IPs[i]
		}
		if o.Exec != nil {
			h.exec = o.Exec[i]
		}
		if err := os.MkdirAll(h.dir, 0o700); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(h.Root, 0o755); err != nil {
			return nil, err
		}
		if _, err := writeKey(filepath.Join(h.dir, "host_ed25519")); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(h.dir, "sshd_config"), []byte(f.sshdConfig(h)), 0o600); err != nil {
			return nil, err
		}
		f.Hosts = append(f.Hosts, h)
	}
	if o.HostBinary != "" {
		for _, h := range f.Hosts {
			if err := placeBinary(o.HostBinary, h.Root); err != nil {
				return nil, err
			}
		}
	}
	if err := f.WriteKnownHosts(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.Config, []byte(f.yaml(o)), 0o644); err != nil {
		return nil, err
	}
	errs := make([]error, len(f.Hosts))
	var wg sync.WaitGroup
	for i, h := range f.Hosts {
		wg.Go(func() { errs[i] = f.start(h) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

// placeBinary puts on root what transport ssh's upload of the drover
// binary bin leaves there (sshtransport.HostCopy: what it sends, under
// the name its sha256 gives, in a 0700 directory). The copy is made once
// per binary, beside it, and hard-linked into each host: the hosts are
// directories on this machine, and 27 MB copied per host is what this
// saves.
func placeBinary(bin, root string) error {
	held, sum, err := hostCopy(bin)
	if err != nil {
		return err
	}
	dst := sshtransport.RemoteBinary(root, sum)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if err := os.Link(held, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(held)
	if err != nil {
		return fmt.Errorf("sshfleet: host binary: %w", err)
	}
	return os.WriteFile(dst, b, 0o700)
}

// hostCopies caches, by path, size and modification time of a binary,
// the host copy made of it: every fleet of a test process places the same.
var (
	hostCopyMu sync.Mutex
	hostCopies = map[string][2]string{}
)

// HostCopyOf makes (once) bin's host copy beside bin and returns its path
// and sha256: what Options.HostBinary links into every host.
func HostCopyOf(bin string) (path, sum string, err error) { return hostCopy(bin) }

func hostCopy(bin string) (path, sum string, err error) {
	fi, err := os.Stat(bin)
	if err != nil {
		return "", "", fmt.Errorf("sshfleet: host binary: %w", err)
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", bin, fi.Size(), fi.ModTime().UnixNano())
	hostCopyMu.Lock()
	defer hostCopyMu.Unlock()
	if c, ok := hostCopies[key]; ok {
		return c[0], c[1], nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(bin), ".sshfleet-held-*")
	if err != nil {
		return "", "", fmt.Errorf("sshfleet: host binary: %w", err)
	}
	sum, err = sshtransport.HostCopy(bin, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o700)
	}
	path = filepath.Join(filepath.Dir(bin), ".sshfleet-held-"+sum[:min(16, len(sum))])
	// Linked, not renamed, into place: a copy another test process made
	// (the same bytes, named by their sum) stays the file its hosts hold.
	if err == nil {
		if err = os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
			err = nil
		}
	}
	os.Remove(tmp.Name())
	if err != nil {
		return "", "", fmt.Errorf("sshfleet: host binary: %w", err)
	}
	hostCopies[key] = [2]string{path, sum}
	return path, sum, nil
}

// writeKey writes a new ed25519 private key in OpenSSH format (0600, as
// sshd demands of host keys) and returns its public key.
func writeKey(path string) (gossh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	sp, err := gossh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path+".pub", gossh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		return nil, err
	}
	return sp, nil
}

// sshdConfig is a host's sshd_config: loopback only, keys only, no PAM,
// the test's own host key and authorized_keys.
func (f *Fleet) sshdConfig(h *Host) string {
	extra := ""
	if f.noShellRC {
		extra = "SetEnv SHLVL=1"
	}
	// sshd hands its sessions a clean environment; the race detector's
	// options of the test that started it go on to what runs on the host
	// (drover's host agent, the sample service), so a race-built one
	// there lingers at exit no longer than one here (see the Makefile).
	if g := os.Getenv("GORACE"); g != "" && !strings.ContainsAny(g, "\"\\\n") {
		extra += "\nSetEnv GORACE=\"" + g + "\""
	}
	return strings.Join([]string{
		"Port " + strconv.Itoa(h.SSHPort),
		"ListenAddress " + h.IP,
		"HostKey " + filepath.Join(h.dir, "host_ed25519"),
		"AuthorizedKeysFile " + filepath.Join(f.Dir, "ssh", "authorized_keys"),
		"PidFile none",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PrintMotd no",
		// Many hosts connect at once in the benchmark; sshd's default
		// (10:30:100) would start dropping unauthenticated connections.
		"MaxStartups 200",
		"MaxSessions 100",
		"LogLevel ERROR",
		extra,
		"",
	}, "\n")
}

// WriteKnownHosts (re)writes known_hosts with every host's current key.
func (f *Fleet) WriteKnownHosts() error {
	var b strings.Builder
	for _, h := range f.Hosts {
		line, err := h.knownHostsLine()
		if err != nil {
			return err
		}
		b.WriteString(line + "\n")
	}
	return os.WriteFile(f.KnownHosts, []byte(b.String()), 0o600)
}

func (h *Host) knownHostsLine() (string, error) {
	b, err := os.ReadFile(filepath.Join(h.dir, "host_ed25519.pub"))
	if err != nil {
		return "", err
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(b)
	if err != nil {
		return "", err
	}
	return knownhosts.Line([]string{h.Address()}, pub), nil
}

// ForgetHostKey removes host's line from known_hosts.
func (f *Fleet) ForgetHostKey(name string) error {
	h, err := f.host(name)
	if err != nil {
		return err
	}
	line, err := h.knownHostsLine()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(f.KnownHosts)
	if err != nil {
		return err
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l != line {
			out = append(out, l)
		}
	}
	return os.WriteFile(f.KnownHosts, []byte(strings.Join(out, "\n")+"\n"), 0o600)
}

// ChangeHostKey gives host a new host key and restarts its sshd;
// known_hosts keeps the old key, as after a reinstall (or an impostor).
func (f *Fleet) ChangeHostKey(name string) error {
	h, err := f.host(name)
	if err != nil {
		return err
	}
	if err := f.Down(name); err != nil {
		return err
	}
	if _, err := writeKey(filepath.Join(h.dir, "host_ed25519")); err != nil {
		return err
	}
	return f.start(h)
}

func (f *Fleet) host(name string) (*Host, error) {
	for _, h := range f.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("sshfleet: no host %q", name)
}

// Host returns the host called name, or nil.
func (f *Fleet) Host(name string) *Host {
	h, _ := f.host(name)
	return h
}

// start runs the host's sshd and waits until it accepts connections.
func (f *Fleet) start(h *Host) error {
	log, err := os.OpenFile(filepath.Join(h.dir, "sshd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	argv := append(append([]string(nil), h.exec...), f.sshd, "-D", "-e", "-f", filepath.Join(h.dir, "sshd_config"))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a signal to the test does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("sshfleet: start %s for %s: %w", f.sshd, h.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(exited)
	}()
	h.mu.Lock()
	h.cmd, h.log, h.exited = cmd, log, exited
	h.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
			return fmt.Errorf("sshfleet: sshd of %s exited at start: %s", h.Name, lastLines(string(b), 5))
		default:
		}
		if banner(h.Address()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshfleet: sshd of %s does not answer on %s", h.Name, h.Address())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// banner reports whether an SSH server answers at addr.
func banner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Down kills host's sshd and every process of its connections — the
// per-connection sshd and the commands they run — as a host that dies
// would. The sample service, detached from the hook that started it,
// keeps running.
func (f *Fleet) Down(name string) error {
	h, err := f.host(name)
	if err != nil {
		return err
	}
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.cmd = nil
	h.mu.Unlock()
	if cmd == nil {
		return nil
	}
	// The tree first: once the listener dies its children are
	// re-parented and can no longer be told from other processes.
	pids := descendants(cmd.Process.Pid)
	cmd.Process.Kill()
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	<-exited
	return nil
}

// Freeze stops (SIGSTOP) host's sshd and every process of its
// connections — the per-connection sshd, `drover host serve`, the hooks
// they run — as a machine that hangs or drops off the network would: TCP
// connections stay open, nothing answers on them. Thaw resumes them.
func (f *Fleet) Freeze(name string) error { return f.signalTree(name, syscall.SIGSTOP) }

// Thaw resumes (SIGCONT) what Freeze stopped.
func (f *Fleet) Thaw(name string) error { return f.signalTree(name, syscall.SIGCONT) }

func (f *Fleet) signalTree(name string, sig syscall.Signal) error {
	h, err := f.host(name)
	if err != nil {
		return err
	}
	h.mu.Lock()
	cmd := h.cmd
	h.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("sshfleet: %s is down", name)
	}
	// Children first when stopping, so none acts on its parent's
	// silence; the listener first when resuming.
	pids := descendants(cmd.Process.Pid)
	if sig == syscall.SIGCONT {
		cmd.Process.Signal(sig)
	}
	for _, p := range pids {
		syscall.Kill(p, sig)
	}
	if sig != syscall.SIGCONT {
		cmd.Process.Signal(sig)
	}
	return nil
}

// Up starts host's sshd again on the same port.
func (f *Fleet) Up(name string) error {
	h, err := f.host(name)
	if err != nil {
		return err
	}
	h.mu.Lock()
	running := h.cmd != nil
	h.mu.Unlock()
	if running {
		return nil
	}
	return f.start(h)
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Stop kills every sshd (and its connections) and every sample service
// the hosts run.
func (f *Fleet) Stop() {
	for _, h := range f.Hosts {
		f.Down(h.Name)
		stopService(h.Root)
	}
}

// stopService kills the sample service recorded in root/run/hello.pid,
// if it is one (a pid file can outlive its process and the number be
// reused).
func stopService(root string) {
	b, err := os.ReadFile(filepath.Join(root, "run", "hello.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "sample-service") {
		return
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
}

func freePorts(n int) ([]int, error) {
	out, err := freeport.Take(n)
	if err != nil {
		return nil, fmt.Errorf("sshfleet: %w", err)
	}
	return out, nil
}

// yaml renders drover.yaml; paths are written as JSON strings (YAML
// double-quoted scalars) so no path can change the document's structure.
func (f *Fleet) yaml(o Options) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# A fleet of real sshd hosts on this machine. Written by drover's sshfleet kit.\n")
	w("service: %s\n", q(f.Service))
	w("deploy_root: %s\n", q("/srv/"+f.Service))
	w("keep_releases: 5\n")
	w("transport: ssh\n")
	w("state_dir: %s\n", q(f.StateDir))
	w("ssh:\n")
	w("  identity: %s\n", q(f.Identity))
	w("  known_hosts: %s\n", q(f.KnownHosts))
	w("  connect_timeout: 10s\n")
	if o.SSHExtra != "" {
		b.WriteString(strings.TrimRight(o.SSHExtra, "\n") + "\n")
	}
	w("hosts:\n")
	for _, h := range f.Hosts {
		w("  - name: %s\n", h.Name)
		w("    address: %s\n", q(h.Address()))
		w("    deploy_root: %s\n", q(h.Root))
		w("    vars: {port: %d}\n", h.Port)
	}
	groups := o.Groups
	switch {
	case strings.TrimSpace(groups) == "":
		groups = DefaultGroups
	case !strings.HasPrefix(strings.TrimSpace(groups), "groups:"):
		groups = "groups:\n" + groups
	}
	b.WriteString(strings.TrimRight(groups, "\n") + "\n")
	w("config_files:\n")
	w("  - template: %s\n", hello.ConfigTemplate)
	w("    dest: %s\n", hello.ConfigFile)
	w("    validate: %s\n", q("bin/hello -check -config {{.Path}}"))
	w("hooks:\n")
	w("  restart: %s\n", q("bin/restart {{.Root}}"))
	w("  stop: %s\n", q("bin/stop {{.Root}}"))
	for _, l := range strings.Split(strings.TrimSpace(o.ExtraHooks), "\n") {
		if strings.TrimSpace(l) != "" {
			w("  %s\n", strings.TrimSpace(l))
		}
	}
	w("checks:\n")
	w("  - {name: port, type: tcp, address: \"127.0.0.1:{{.Host.Vars.port}}\", timeout: 10s, interval: 200ms}\n")
	w("  - {name: version, type: http, url: \"http://127.0.0.1:{{.Host.Vars.port}}/version\", expect_status: 200, expect_body: \"{{.Release.Version}}\", timeout: 10s, interval: 200ms}\n")
	w("  - {name: health, type: http, url: \"http://127.0.0.1:{{.Host.Vars.port}}/health\", expect_status: 200, timeout: 10s, interval: 200ms}\n")
	if extra := strings.Trim(o.ExtraChecks, "\n"); strings.TrimSpace(extra) != "" {
		lines := strings.Split(extra, "\n")
		indent := len(lines[0]) - len(strings.TrimLeft(lines[0], " "))
		for _, l := range lines {
			w("  %s\n", l[min(indent, len(l)-len(strings.TrimLeft(l, " "))):])
		}
	}
	if o.ExtraYAML != "" {
		b.WriteString(strings.TrimRight(o.ExtraYAML, "\n") + "\n")
	}
	return b.String()
}

// WriteRelease writes the sample service's release source for version to
// Dir/src/<version> and returns that directory.
func (f *Fleet) WriteRelease(version string, healthy bool) (string, error) {
	if version == "" || strings.ContainsAny(version, `/\`) || version == "." || version == ".." {
		return "", fmt.Errorf("sshfleet: version %q cannot name a directory", version)
	}
	dir := filepath.Join(f.Dir, "src", version)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := hello.WriteRelease(dir, version, healthy); err != nil {
		return "", err
	}
	return dir, nil
}

// Versions asks every host's service for its version; "down: ..." for
// one that does not answer.
func (f *Fleet) Versions(ctx context.Context) map[string]string {
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range f.Hosts {
		wg.Go(func() {
			v, err := f.version(ctx, h)
			if err != nil {
				v = "down: " + err.Error()
			}
			mu.Lock()
			out[h.Name] = v
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (f *Fleet) version(ctx context.Context, h *Host) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/version", h.Port), nil)
	if err != nil {
		return "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}
