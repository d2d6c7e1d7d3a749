package ssh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"

	"drover"
)

// BinDir is where drover keeps its own binaries under a deploy root.
const BinDir = ".drover/bin"

// RemoteBinary is where a drover binary with the given sha256 lives under
// a deploy root: content-addressed, so hosts deployed by several drover
// versions keep each, and a binary once verified is never rewritten.
func RemoteBinary(root, sum string) string {
	return path.Join(root, BinDir, "drover-"+sum[:16])
}

// probe asks the host what it is (uname -sm) and whether the drover for
// it is installed, in one session that changes nothing on the host, and
// records in s which binary to run there (s.bin) and whether it is there
// (s.installed). A host of another OS or architecture without a matching
// --host-binary is EINVALID: refused before anything is written to it.
func (t *Transport) probe(ctx context.Context, s *hostSlot, cl *client) error {
	where := "host " + s.host.Name
	cands, err := t.candidates()
	if err != nil {
		return err
	}
	sums := make([]string, len(cands))
	for i, c := range cands {
		if sums[i], err = t.sum(c); err != nil {
			return err
		}
	}
	root := s.host.DeployRoot
	var script strings.Builder
	script.WriteString("uname -sm")
	for _, sum := range sums {
		p := drover.ShellQuote(RemoteBinary(root, sum))
		fmt.Fprintf(&script, "; if [ -x %s ]; then echo have %s; fi", p, sum)
	}
	// Whether the host can decompress zstd: drover is then sent
	// compressed (see hostBinary.compressed).
	script.WriteString("; if command -v zstd >/dev/null 2>&1; then echo " + zstdMark + "; fi")
	// state.json too, read as State reads it: the survey's State right
	// after Open then needs no session of its own (see hostSlot.fresh).
	fmt.Fprintf(&script, "; echo %s; %s; echo", stateMark, stateScript(root))
	// And when this machine's drover is there, the probe's session
	// becomes the host's first serve session: a host already holding
	// drover costs one session, one login shell, for the whole run.
	// serve changes nothing until it is asked to.
	selfBin := drover.ShellQuote(RemoteBinary(root, sums[0]))
	if !t.OneShot {
		fmt.Fprintf(&script, "; if [ -x %s ]; then exec %s host %s --root %s; fi", selfBin, selfBin, OpServe, drover.ShellQuote(root))
	}
	var pre bytes.Buffer
	ss, err := startServe(ctx, cl, script.String(), &pre, nil)
	var sxe *serveExitedError
	serveFailed := false
	switch {
	case err == nil:
	case errors.As(err, &sxe) && strings.Contains(pre.String(), stateMark+"\n"):
		// drover is not there (the probe alone ran), or it did not
		// serve: then the host's operations go one-shot.
		serveFailed = sxe.code != 0
	case errors.As(err, &sxe):
		return drover.Errorf(drover.EFAILED, "remote command exited %d: %s", sxe.code, strings.TrimSpace(sxe.stderr)).At(where)
	default:
		return asHostErr(err, where)
	}
	keep := false
	defer func() {
		if ss != nil && !keep {
			ss.close()
		}
	}()
	out, state, marked := strings.Cut(pre.String(), stateMark+"\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	uname := strings.TrimSpace(lines[0])
	have := map[string]bool{}
	hasZstd := false
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		if sum, ok := strings.CutPrefix(l, "have "); ok {
			have[sum] = true
		}
		hasZstd = hasZstd || l == zstdMark
	}
	goos, goarch, ok := parseUname(uname)
	if !ok {
		return drover.Errorf(drover.EINVALID, "cannot tell what the host is: uname -sm says %q", uname).At(where).
			WithHint("drover runs itself on the host; pass --host-binary PATH (ssh.host_binary) with a drover built for it")
	}
	pick := -1
	if goos == runtime.GOOS && goarch == runtime.GOARCH {
		pick = 0
	} else if t.Config.HostBinary != "" {
		if why := binaryMismatch(t.Config.HostBinary, goos, goarch); why != "" {
			return drover.Errorf(drover.EINVALID, "host is %s/%s but --host-binary %s %s", goos, goarch, t.Config.HostBinary, why).At(where).
				WithHint(fmt.Sprintf("build one with: GOOS=%s GOARCH=%s go build -o drover-%s-%s ./cmd/drover", goos, goarch, goos, goarch))
		}
		pick = 1
	}
	if pick < 0 {
		return drover.Errorf(drover.EINVALID, "host is %s/%s (uname: %s) and this drover is %s/%s, so it cannot run there", goos, goarch, uname, runtime.GOOS, runtime.GOARCH).At(where).
			WithHint(fmt.Sprintf("build drover for it (GOOS=%s GOARCH=%s go build -o drover-%s-%s ./cmd/drover) and pass --host-binary PATH or set ssh.host_binary", goos, goarch, goos, goarch))
	}
	s.uname = uname
	s.local, s.sum = cands[pick], sums[pick]
	s.bin = RemoteBinary(root, sums[pick])
	s.installed = have[sums[pick]]
	s.zstd = hasZstd && t.overWire(s.host.Address)
	s.fresh = nil
	if marked {
		s.fresh = &state
	}
	if ss != nil && pick == 0 {
		keep = true
		cl.putIdle(ss)
	}
	if serveFailed && pick == 0 && s.installed {
		t.noServe(s)
	}
	return nil
}

// overWire reports whether what is sent to the host at address crosses a
// network, which is when compressing drover's upload pays: on this
// machine's loopback (no jump host) it does not. Measured on 20 sshd
// hosts on loopback, a first deploy took ~2 CPU-seconds more with it (each
// host's zstd decompressing 27 MB, ~0.1 CPU-seconds) than without. Over
// a network every host's copy crosses the controller's one link at once,
// and 10 MB each instead of 27 is what it saves there.
func (t *Transport) overWire(address string) bool {
	if t.Config.ProxyJump != "" || t.zstdLoopback {
		return true
	}
	host, _, err := net.SplitHostPort(t.addr(address))
	if err != nil {
		return true
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// stateMark separates the probe's findings from state.json in its output.
const stateMark = "--- drover state.json ---"

// zstdMark is the probe's line saying the host has zstd.
const zstdMark = "have-zstd"

// upload streams the binary over a session's stdin into a temporary
// file under BinDir, checks its size and sha256 on the host and only then
// makes it executable and renames it into place: a transfer cut short
// leaves no file under the final name that a later run would trust. The
// directory and the binary are the deploy user's alone (0700): anyone who
// could replace the binary would run code as that user at the next deploy.
//
// What is sent is the binary stripped (see hostBinary), zstd-compressed
// when the host has zstd (s.zstd). A host whose zstd fails, or yields
// anything but the binary, gets it again uncompressed.
//
// The binary is read by its size (head -c), not up to EOF, so the same
// session goes on to exec `drover host serve` with the umask it had: the
// host's first serve session, returned (nil with Transport.OneShot, or
// when the uploaded binary is not the one that will run, serve false).
func (t *Transport) upload(ctx context.Context, cl *client, s *hostSlot, serve bool) (*serveSession, error) {
	where := "host " + s.host.Name
	b := t.binary(s.local)
	if b.err != nil {
		return nil, b.err
	}
	var z []byte
	if s.zstd {
		z = b.compressed()
	}
	ss, err := t.uploadAs(ctx, cl, s, b, z, serve)
	var sxe *serveExitedError
	var ue *uploadedError
	if z != nil && !errors.As(err, &ue) && errors.As(err, &sxe) && sxe.code == exitZstdFailed {
		// This host's zstd did not give back the binary: it gets it
		// uncompressed, now and at every later upload.
		s.zstd = false
		ss, err = t.uploadAs(ctx, cl, s, b, nil, serve)
	}
	if err != nil {
		return nil, t.uploadErr(err, where, RemoteBinary(s.host.DeployRoot, b.sum), s.host.DeployRoot)
	}
	return ss, nil
}

// exitZstdFailed is the upload script's exit status when the binary sent
// compressed did not decompress to itself.
const exitZstdFailed = 4

// uploadAs sends b to the host over one session, compressed as z when z
// is not nil, and returns startServe's answer.
func (t *Transport) uploadAs(ctx context.Context, cl *client, s *hostSlot, b *hostBinary, z []byte, serve bool) (*serveSession, error) {
	root := s.host.DeployRoot
	var body io.Reader
	receive := fmt.Sprintf(`head -c %d > "$tmp"`, b.size)
	bad := "3"
	if z != nil {
		body = bytes.NewReader(z)
		receive = fmt.Sprintf(`head -c %d | zstd -dcq > "$tmp" || exit %d`, len(z), exitZstdFailed)
		bad = strconv.Itoa(exitZstdFailed)
	} else {
		r, f, err := b.open()
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "open drover binary to upload: %v", err).At("host " + s.host.Name)
		}
		defer f.Close()
		body = r
	}
	q := drover.ShellQuote
	dir := path.Join(root, BinDir)
	final := RemoteBinary(root, b.sum)
	lines := []string{
		"set -e",
		"mask=$(umask)",
		"mkdir -p " + q(root),
		"umask 077",
		"mkdir -p " + q(dir),
		"tmp=" + q(dir) + "/.upload-$$",
		`trap 'rm -f "$tmp"' EXIT`,
	}
	if strings.HasPrefix(s.uname, "Linux ") {
		// sshd holds what the session's stdin pipe (64 KB) cannot take
		// yet in a buffer it grows by copying and zeroes when it shrinks:
		// ~0.2 CPU-seconds of sshd for one unpaced 27 MB upload, against
		// ~0.07 with a 1 MB pipe (F_SETPIPE_SZ, 1031 on Linux; perl is on
		// nearly every Linux, and nothing is lost without it). Every host
		// of a first deploy pays it at once.
		lines = append(lines, `if command -v perl >/dev/null 2>&1; then perl -e 'fcntl(STDIN, 1031, 1048576)' 2>/dev/null || :; fi`)
	}
	lines = append(lines,
		receive,
		// The size first: a decompressor that stops short or runs on
		// is told apart from a bad transfer without hashing.
		`size=$(wc -c < "$tmp")`,
		fmt.Sprintf(`if [ $size -ne %d ]; then echo "the uploaded drover has $size bytes, expected %d" >&2; exit %s; fi`, b.size, b.size, bad),
		// openssl first: it uses the CPU's SHA instructions, which
		// coreutils' sha256sum does not (0.05 against 0.24 CPU-seconds
		// for a 38 MB drover; paid by every host of a first deploy at
		// once). Anything but 64 characters from it (an odd build, a
		// FIPS refusal) falls back to the others.
		`sum=`,
		`if command -v openssl >/dev/null 2>&1; then sum=$(openssl dgst -sha256 < "$tmp" 2>/dev/null) || sum=; sum=${sum##* }; fi`,
		`if [ ${#sum} -ne 64 ]; then`,
		`if command -v sha256sum >/dev/null 2>&1; then sum=$(sha256sum < "$tmp"); `+
			`elif command -v shasum >/dev/null 2>&1; then sum=$(shasum -a 256 < "$tmp"); `+
			`else sum=$(sha256 -q < "$tmp"); fi`,
		`sum=${sum%% *}`,
		`fi`,
		`if [ "$sum" != `+q(b.sum)+` ]; then echo "the uploaded drover has sha256 $sum, expected `+b.sum+`" >&2; exit `+bad+`; fi`,
		`chmod 0700 "$tmp"`,
		`mv -f "$tmp" `+q(final),
		"trap - EXIT",
		"echo "+uploadedMark,
	)
	if serve && !t.OneShot {
		lines = append(lines, `umask "$mask"`, "exec "+q(final)+" host "+OpServe+" --root "+q(root))
	}
	var pre bytes.Buffer
	ss, err := startServe(ctx, cl, strings.Join(lines, "\n"), &pre, body)
	if err == nil {
		return ss, nil
	}
	if strings.Contains(pre.String(), uploadedMark) {
		return nil, &uploadedError{err}
	}
	return nil, err
}

// uploadedError: the binary is in place, but what ran after it failed.
type uploadedError struct{ err error }

func (e *uploadedError) Error() string { return e.err.Error() }
func (e *uploadedError) Unwrap() error { return e.err }

// uploadErr is upload's answer for err from uploadAs.
func (t *Transport) uploadErr(err error, where, final, root string) error {
	var ue *uploadedError
	uploaded := errors.As(err, &ue)
	var sxe *serveExitedError
	switch {
	case errors.As(err, &sxe) && uploaded && sxe.code == 0:
		return nil
	case errors.As(err, &sxe) && uploaded && sxe.code != 126 && sxe.code != 127:
		// It runs but does not serve: only a binary that is not this
		// drover could; one session per operation then.
		return errNoServe
	case errors.As(err, &sxe) && uploaded:
		return drover.Errorf(drover.EFAILED, "drover was uploaded to %s but does not run there (exit %d): %s", final, sxe.code, strings.TrimSpace(sxe.stderr)).At(where).
			WithHint("check that the deploy root is not on a noexec file system; run it by hand: " + final + " host serve --root " + root)
	case errors.As(err, &sxe):
		return (&drover.Error{Code: drover.EFAILED, Message: "upload drover to " + final,
			Err: fmt.Errorf("remote command exited %d: %s", sxe.code, strings.TrimSpace(sxe.stderr))}).At(where).
			WithHint("the host needs a writable deploy root and sha256sum (or shasum)")
	}
	var de *drover.Error
	if errors.As(err, &de) {
		return err
	}
	return asHostErr(err, where)
}

// errNoServe: drover was installed, but it did not start serving.
var errNoServe = errors.New("drover host serve did not start")

// uploadedMark is what the upload script says once the binary is in place.
const uploadedMark = "drover-uploaded"

// run runs a shell command on cl and returns its stdout; stdin may be
// nil. A non-zero exit is EFAILED with the tail of stderr.
func (t *Transport) run(ctx context.Context, cl *client, name, command string, stdin io.Reader) (string, error) {
	var out, errb tailWriter
	out.max, errb.max = 1<<20, 4<<10
	code, err := session(ctx, cl, command, stdin, &out, &errb, true)
	where := "host " + name
	if err != nil {
		return "", asHostErr(err, where)
	}
	if code != 0 {
		return out.String(), drover.Errorf(drover.EFAILED, "remote command exited %d: %s", code, strings.TrimSpace(errb.String())).At(where)
	}
	return out.String(), nil
}

// candidates are the binaries a host may get: this one (for hosts like
// this machine), then --host-binary when set.
func (t *Transport) candidates() ([]string, error) {
	self, err := t.selfPath()
	if err != nil {
		return nil, err
	}
	if t.Config.HostBinary != "" {
		return []string{self, t.Config.HostBinary}, nil
	}
	return []string{self}, nil
}

// selfPath is the binary uploaded to hosts like this machine.
func (t *Transport) selfPath() (string, error) {
	if t.Self != "" {
		return t.Self, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", drover.Errorf(drover.EINTERNAL, "find the drover binary to upload: %v", err)
	}
	return p, nil
}

// sum returns the sha256 of what is uploaded of the local binary at p
// (see binary).
func (t *Transport) sum(p string) (string, error) {
	b := t.binary(p)
	return b.sum, b.err
}

// binary returns the local binary at p as hosts get it, worked out once
// per Transport: every host's probe asks at once, and hashing a 40 MB
// binary for each of hundreds of hosts would cost seconds of CPU.
func (t *Transport) binary(p string) *hostBinary {
	t.mu.Lock()
	b, ok := t.bins[p]
	if !ok {
		b = &hostBinary{path: p}
		t.bins[p] = b
	}
	t.mu.Unlock()
	b.once.Do(b.load)
	return b
}

// hostBinary is a local drover binary as it is sent to hosts: without
// what no process reads when it is ELF (see strippedELF), and, for hosts
// that have zstd, compressed. Hosts hold it content-addressed by the sha256
// of what was sent (RemoteBinary), which is what they check.
type hostBinary struct {
	path string
	once sync.Once
	sum  string
	size int64  // its size on the host
	hdr  []byte // the ELF header replaced; nil: sent as it is
	err  error
	// loaded is set once load is over (tests: TestBinaryHashedWhileConnecting).
	loaded atomic.Bool

	zonce sync.Once
	z     []byte // zstd of what is sent; nil: not worth it, or failed
}

func (b *hostBinary) load() {
	defer b.loaded.Store(true)
	f, err := os.Open(b.path)
	if err != nil {
		b.err = drover.Errorf(drover.EINVALID, "drover binary for hosts: %v", err).WithHint("check --host-binary / ssh.host_binary")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		b.err = drover.Errorf(drover.EINVALID, "read %s: %v", b.path, err)
		return
	}
	b.size = fi.Size()
	if hdr, end, ok := strippedELF(f, fi.Size()); ok {
		b.hdr, b.size = hdr, end
	}
	h := sha256.New()
	if _, err := io.Copy(h, uploadReader(f, b.hdr, b.size)); err != nil {
		b.err = drover.Errorf(drover.EINVALID, "read %s: %v", b.path, err)
		return
	}
	b.sum = hex.EncodeToString(h.Sum(nil))
}

// open returns what is sent to hosts: the binary, stripped when it is ELF.
// The caller closes the file.
func (b *hostBinary) open() (io.Reader, *os.File, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return nil, nil, err
	}
	return uploadReader(f, b.hdr, b.size), f, nil
}

// compressed returns what is sent, zstd-compressed, compressing it the
// first time: 27 MB of drover become ~10 MB, which every host of a first
// deploy receives at once through its sshd (~0.3 CPU-seconds per host for
// the 38 MB unstripped binary) and decompresses in ~0.05 CPU-seconds.
// nil when it does not pay (or the binary cannot be read: the raw upload
// then reports why).
func (b *hostBinary) compressed() []byte {
	b.zonce.Do(func() {
		r, f, err := b.open()
		if err != nil {
			return
		}
		defer f.Close()
		var buf bytes.Buffer
		buf.Grow(int(b.size / 2))
		enc, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return
		}
		_, err = io.Copy(enc, r)
		if cerr := enc.Close(); err != nil || cerr != nil {
			return
		}
		if int64(buf.Len()) < b.size*8/10 {
			b.z = buf.Bytes()
		}
	})
	return b.z
}

// parseUname maps `uname -sm` to Go's GOOS and GOARCH.
func parseUname(s string) (goos, goarch string, ok bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return "", "", false
	}
	switch strings.ToLower(f[0]) {
	case "linux":
		goos = "linux"
	case "darwin":
		goos = "darwin"
	case "freebsd":
		goos = "freebsd"
	case "openbsd":
		goos = "openbsd"
	case "netbsd":
		goos = "netbsd"
	default:
		return "", "", false
	}
	switch f[1] {
	case "x86_64", "amd64":
		goarch = "amd64"
	case "aarch64", "arm64":
		goarch = "arm64"
	case "i386", "i486", "i586", "i686":
		goarch = "386"
	case "armv6l", "armv7l", "armv7", "arm":
		goarch = "arm"
	case "riscv64":
		goarch = "riscv64"
	case "ppc64le":
		goarch = "ppc64le"
	case "s390x":
		goarch = "s390x"
	default:
		return "", "", false
	}
	return goos, goarch, true
}

// binaryMismatch says why the file at p cannot run on goos/goarch, ""
// when it can or cannot tell (only ELF headers are read): uploading an
// amd64 binary to an arm64 host would fail at the first step with
// "exec format error", far from the flag that caused it.
func binaryMismatch(p, goos, goarch string) string {
	f, err := elf.Open(p)
	if err != nil {
		if goos == "linux" || goos == "freebsd" {
			return "is not an ELF executable"
		}
		return ""
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM, "riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390}
	if m, ok := want[goarch]; ok && f.Machine != m {
		return "is built for " + strings.TrimPrefix(f.Machine.String(), "EM_")
	}
	return ""
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max int
	buf bytes.Buffer
	cut bool
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if over := w.buf.Len() - w.max; w.max > 0 && over > 0 {
		b := append([]byte(nil), w.buf.Bytes()[over:]...)
		w.buf.Reset()
		w.buf.Write(b)
		w.cut = true
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return w.buf.String() }
