package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"drover"
)

// knownHosts verifies host keys against one known_hosts file, strictly:
// there is no code path that accepts a key without it being in the file
// or, with trust on first use, being written to it first.
type knownHosts struct {
	// path is the file; "" means ~/.ssh/known_hosts.
	path   string
	tofu   bool
	notice func(host, msg string)

	// mu serializes reading and appending: two hosts first seen at once
	// must not interleave their lines.
	mu sync.Mutex
}

func (k *knownHosts) file() (string, error) {
	if k.path != "" {
		return k.path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", drover.Errorf(drover.EINVALID, "no known_hosts file: %v", err).WithHint("set ssh.known_hosts in drover.yaml")
	}
	return filepath.Join(home, ".ssh", "known_hosts"), nil
}

// callback returns the host key callback for host name at addr and the
// host key algorithms to ask for: those of the keys known_hosts holds for
// addr. Asking for them matters: a server with an ed25519 and an ecdsa key
// would otherwise offer the one we prefer, and a known_hosts holding only
// the other would make an honest server look like an impostor.
func (k *knownHosts) callback(name, addr string) (gossh.HostKeyCallback, []string, error) {
	file, err := k.file()
	if err != nil {
		return nil, nil, err
	}
	db, err := k.load(file)
	if err != nil {
		return nil, nil, err
	}
	algos := knownAlgorithms(db, addr)
	cb := func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		err := db(hostname, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &re):
			return drover.Errorf(drover.EINVALID, "host key of %s (%s) is REVOKED in %s:%d", knownhosts.Normalize(hostname), fingerprint(key), re.Revoked.Filename, re.Revoked.Line).
				WithHint("the host must get a new key; do not connect to it until it has one")
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return mismatch(file, hostname, key, ke.Want)
		case errors.As(err, &ke):
			if k.tofu {
				return k.record(name, file, hostname, remote, key)
			}
			return unknown(file, hostname, key)
		}
		return drover.Errorf(drover.EINVALID, "verify host key of %s: %v", hostname, err)
	}
	return cb, algos, nil
}

// load reads the file. A missing file is created empty with trust on
// first use (it is about to get its first line) and refused without.
func (k *knownHosts) load(file string) (gossh.HostKeyCallback, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		if !k.tofu {
			return nil, drover.Errorf(drover.EINVALID, "known_hosts file %s does not exist, so no host key can be verified", file).
				WithHint("add the hosts' keys to it (ssh-keyscan HOST >> " + file + " after checking their fingerprints), point ssh.known_hosts at your file, or pass --ssh-accept-new once to record them")
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, drover.Errorf(drover.EINVALID, "create %s: %v", file, err)
		}
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "create %s: %v", file, err)
		}
		f.Close()
	}
	db, err := knownhosts.New(file)
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "read known_hosts: %v", err).WithHint("fix or remove the line it names")
	}
	return db, nil
}

// record appends the key of a host that known_hosts does not know yet and
// tells the operator. It re-reads the file first: another host connecting
// at the same time, or another drover, may have recorded a different key
// for the same address in the meantime, which is then a mismatch.
func (k *knownHosts) record(name, file, hostname string, remote net.Addr, key gossh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	db, err := knownhosts.New(file)
	if err != nil {
		return drover.Errorf(drover.EINVALID, "read known_hosts: %v", err)
	}
	err = db(hostname, remote, key)
	var ke *knownhosts.KeyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return mismatch(file, hostname, key, ke.Want)
	case !errors.As(err, &ke):
		return drover.Errorf(drover.EINVALID, "verify host key of %s: %v", hostname, err)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return drover.Errorf(drover.EINVALID, "record the host key of %s: %v", hostname, err)
	}
	line := knownhosts.Line([]string{hostname}, key)
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return drover.Errorf(drover.EINVALID, "record the host key of %s in %s: %v", hostname, file, err)
	}
	k.notice(name, fmt.Sprintf("trusted on first use: recorded host key %s for %s in %s", fingerprint(key), knownhosts.Normalize(hostname), file))
	return nil
}

func unknown(file, hostname string, key gossh.PublicKey) error {
	norm := knownhosts.Normalize(hostname)
	host, port, _ := net.SplitHostPort(hostname)
	scan := "ssh-keyscan"
	if port != "" && port != "22" {
		scan += " -p " + port
	}
	scan += " -t " + key.Type() + " " + drover.ShellQuote(host)
	return drover.Errorf(drover.EINVALID, "host key of %s is not in %s: it offered %s, which nobody has vouched for", norm, file, fingerprint(key)).
		WithHint(fmt.Sprintf("check the fingerprint with the host's administrator, then add it: %s >> %s — or run once with --ssh-accept-new (ssh.trust_on_first_use: true) to record it", scan, drover.ShellQuote(file)))
}

func mismatch(file, hostname string, key gossh.PublicKey, want []knownhosts.KnownKey) error {
	norm := knownhosts.Normalize(hostname)
	w := want[0]
	return drover.Errorf(drover.EINVALID, "HOST KEY MISMATCH for %s: it offered %s, but %s:%d records %s — someone may be intercepting the connection, or the host was reinstalled",
		norm, fingerprint(key), w.Filename, w.Line, fingerprint(w.Key)).
		WithHint(fmt.Sprintf("find out why the key changed; if the new key is right, remove the old one with: ssh-keygen -R %s -f %s — then add the new one", drover.ShellQuote(norm), drover.ShellQuote(file)))
}

func fingerprint(key gossh.PublicKey) string {
	return key.Type() + " " + gossh.FingerprintSHA256(key)
}

// probeKey is a key no host has: checking it against known_hosts makes
// knownhosts list the keys it holds for an address.
var probeKey = sync.OnceValue(func() gossh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
})

// knownAlgorithms returns the host key algorithms of the keys db holds for
// addr, nil when it holds none (any algorithm, then refused as unknown
// unless trusted on first use).
func knownAlgorithms(db gossh.HostKeyCallback, addr string) []string {
	err := db(addr, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}, probeKey())
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
		}
	}
	for _, w := range ke.Want {
		switch t := w.Key.Type(); t {
		case gossh.KeyAlgoRSA:
			add(gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return out
}
