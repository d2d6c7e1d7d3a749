package ssh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

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
	self, err := t.selfPath()
	if err != nil {
		return err
	}
	cands := []string{self}
	if t.Config.HostBinary != "" {
		cands = append(cands, t.Config.HostBinary)
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
	out, err := t.run(ctx, cl, s.host.Name, script.String(), nil)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	uname := strings.TrimSpace(lines[0])
	have := map[string]bool{}
	for _, l := range lines[1:] {
		if sum, ok := strings.CutPrefix(strings.TrimSpace(l), "have "); ok {
			have[sum] = true
		}
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
	return nil
}

// upload streams the binary over a session's stdin into a temporary
// file under BinDir, checks its sha256 on the host and only then makes it
// executable and renames it into place: a transfer cut short leaves no
// file under the final name that a later run would trust. The directory
// and the binary are the deploy user's alone (0700): anyone who could
// replace the binary would run code as that user at the next deploy.
func (t *Transport) upload(ctx context.Context, cl *client, name, root, local, sum string) error {
	f, err := os.Open(local)
	if err != nil {
		return drover.Errorf(drover.EINVALID, "open drover binary to upload: %v", err).At("host " + name)
	}
	defer f.Close()
	q := drover.ShellQuote
	dir := path.Join(root, BinDir)
	final := RemoteBinary(root, sum)
	script := strings.Join([]string{
		"set -e",
		"mkdir -p " + q(root),
		"umask 077",
		"mkdir -p " + q(dir),
		"tmp=" + q(dir) + "/.upload-$$",
		`trap 'rm -f "$tmp"' EXIT`,
		`cat > "$tmp"`,
		`if command -v sha256sum >/dev/null 2>&1; then sum=$(sha256sum < "$tmp"); ` +
			`elif command -v shasum >/dev/null 2>&1; then sum=$(shasum -a 256 < "$tmp"); ` +
			`else sum=$(sha256 -q < "$tmp"); fi`,
		`sum=${sum%% *}`,
		`if [ "$sum" != ` + q(sum) + ` ]; then echo "the uploaded drover has sha256 $sum, expected ` + sum + `" >&2; exit 3; fi`,
		`chmod 0700 "$tmp"`,
		`mv -f "$tmp" ` + q(final),
		"trap - EXIT",
	}, "\n")
	if _, err := t.run(ctx, cl, name, script, f); err != nil {
		var de *drover.Error
		if code := drover.ErrorCode(err); code != drover.EUNREACHABLE && code != drover.ETIMEOUT && asError(err, &de) {
			return (&drover.Error{Code: drover.EFAILED, Message: "upload drover to " + final, Err: err}).At("host " + name).
				WithHint("the host needs a writable deploy root and sha256sum (or shasum)")
		}
		return err
	}
	return nil
}

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

// sum returns the sha256 of a local file, computed once per Transport.
func (t *Transport) sum(p string) (string, error) {
	t.mu.Lock()
	s, ok := t.sums[p]
	t.mu.Unlock()
	if ok {
		return s, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", drover.Errorf(drover.EINVALID, "drover binary for hosts: %v", err).WithHint("check --host-binary / ssh.host_binary")
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", drover.Errorf(drover.EINVALID, "read %s: %v", p, err)
	}
	s = hex.EncodeToString(h.Sum(nil))
	t.mu.Lock()
	t.sums[p] = s
	t.mu.Unlock()
	return s, nil
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
