package hello

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// Health values of the config key `health`.
const (
	HealthOK   = "ok"
	HealthFail = "fail"
)

// DefaultListen is the address the service binds when `listen` is not set:
// loopback only, because a sample service has no business on a public port.
const DefaultListen = "127.0.0.1"

// Config is the content of the service's config file, a list of
// `key = value` lines. Lines whose first non-blank character is # are
// comments; a # later in a line is part of the value, so a message may
// contain one.
type Config struct {
	Port    int
	Version string
	Message string
	Health  string // HealthOK or HealthFail
	Listen  string
	// ErrorRate is the share of requests to / answered 500 (0 to 1):
	// a release that is up and healthy but serves errors, for canary
	// analysis to catch.
	ErrorRate float64
	// StartupError, when set, is logged at start as an ERROR line while
	// the service otherwise runs healthy: a release only a log check
	// (`type: log`, `absent: true`) catches.
	StartupError string
}

// Addr is the host:port the service listens on.
func (c Config) Addr() string {
	return net.JoinHostPort(c.Listen, strconv.Itoa(c.Port))
}

// LoadConfig reads and validates the config file at path.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return ParseConfig(f, path)
}

// ParseConfig reads a config from r; name is used in error messages, which
// all read "name:line: what is wrong". Every problem in the file is
// reported, not just the first, so one `-check` run shows them all.
func ParseConfig(r io.Reader, name string) (Config, error) {
	c := Config{Health: HealthOK, Listen: DefaultListen, Message: "hello"}
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			bad(n, "expected `key = value`, got %q", line)
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if prev, dup := seen[key]; dup {
			bad(n, "%s is already set on line %d", key, prev)
			continue
		}
		seen[key] = n
		switch key {
		case "port":
			p, err := strconv.Atoi(value)
			if err != nil || p < 1 || p > 65535 {
				bad(n, "port must be a number from 1 to 65535, got %q", value)
				continue
			}
			c.Port = p
		case "version":
			if value == "" {
				bad(n, "version is empty")
				continue
			}
			c.Version = value
		case "message":
			c.Message = value
		case "health":
			if value != HealthOK && value != HealthFail {
				bad(n, "health must be %q or %q, got %q", HealthOK, HealthFail, value)
				continue
			}
			c.Health = value
		case "listen":
			if !validListen(value) {
				bad(n, "listen must be an IP address or a host name (without a port), got %q", value)
				continue
			}
			c.Listen = value
		case "error_rate":
			r, err := strconv.ParseFloat(value, 64)
			if err != nil || r < 0 || r > 1 {
				bad(n, "error_rate must be a number from 0 to 1, got %q", value)
				continue
			}
			c.ErrorRate = r
		case "startup_error":
			c.StartupError = value
		case "":
			bad(n, "missing key before =")
		default:
			bad(n, "unknown key %q (known: port, version, message, health, listen, error_rate, startup_error)", key)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	// Missing keys have no line of their own; they are reported after the
	// line errors so the output reads top to bottom.
	if _, ok := seen["port"]; !ok {
		errs = append(errs, fmt.Errorf("%s: port is required", name))
	}
	if _, ok := seen["version"]; !ok {
		errs = append(errs, fmt.Errorf("%s: version is required", name))
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

func validListen(s string) bool {
	if s == "" {
		return false
	}
	if net.ParseIP(s) != nil {
		return true
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
