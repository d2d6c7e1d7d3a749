package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"drover"
)

// Dynamic inventory: hosts read, once per run, from a command's standard
// output or an HTTP URL, as JSON:
//
//	{"hosts": [{"name": "h01", "address": "10.0.0.1", "deploy_root": "/srv/x",
//	            "vars": {"port": 8080}, "groups": ["web", "eu"]}]}
//
// They are added to the file's hosts: (a name in both is an error, never a
// silent override), and a group's hosts may name an inventory group as
// "@web". Environments that list their own hosts do not see them.
//
// Output that is not what drover expects stops the run before anything is
// touched (exit 2), with the command and its exit status and stderr, or the
// URL and its status, or the JSON error at line:col, or the host entry at
// fault: a half-read inventory must not become a deploy to half the fleet.

// InventoryFile is the inventory block.
type InventoryFile struct {
	// Command runs with `sh -c` in the config file's directory.
	Command string `yaml:"command"`
	// URL is fetched with GET; http or https.
	URL string `yaml:"url"`
	// Ansible is an Ansible inventory file, relative to the config file
	// (ansible.go).
	Ansible string `yaml:"ansible"`
	Timeout string `yaml:"timeout"`
}

// inventoryOutputMax bounds what is read from a command or a URL.
const inventoryOutputMax = 32 << 20

// inventoryDoc is the JSON an inventory prints.
type inventoryDoc struct {
	Hosts []inventoryHost `json:"hosts"`
}

type inventoryHost struct {
	Name       string         `json:"name"`
	Address    string         `json:"address"`
	DeployRoot string         `json:"deploy_root"`
	Vars       map[string]any `json:"vars"`
	Groups     []string       `json:"groups"`
	// line is where an Ansible inventory defines the host (0: unknown).
	line int
}

// checkInventory validates the inventory block on its own.
func (f *File) checkInventory(ps *problems) drover.InventorySpec {
	inv := f.Inventory
	at := p("inventory")
	if inv == (InventoryFile{}) {
		return drover.InventorySpec{}
	}
	s := drover.InventorySpec{Command: inv.Command, URL: inv.URL}
	if inv.Ansible != "" {
		s.Ansible = f.fromConfigDir(inv.Ansible)
	}
	s.Timeout = f.duration(ps, at.with("timeout"), inv.Timeout, drover.DefaultInventoryTimeout)
	var set []string
	for _, kv := range [][2]string{{"command", inv.Command}, {"url", inv.URL}, {"ansible", inv.Ansible}} {
		if kv[1] != "" {
			set = append(set, kv[0])
		}
	}
	if len(set) > 1 {
		ps.add(at, "keep one of command, url and ansible", "inventory: both %s are set", strings.Join(set, " and "))
	}
	if len(set) == 0 && inv.Timeout != "" {
		ps.add(at, "add command:, url: or ansible:, or remove the inventory block", "inventory: neither command, url nor ansible is set")
	}
	if inv.URL != "" {
		if u, err := url.Parse(inv.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add(at.with("url"), `write an http or https URL, e.g. url: "http://cmdb.internal/hosts.json"`,
				"inventory.url: %q is not an http(s) URL", inv.URL)
		}
	}
	return s
}

// readInventory reads the dynamic inventory, if the file has one, and
// merges its hosts and groups into f. Errors are EINVALID: nothing was
// touched.
func (f *File) readInventory(ctx context.Context) error {
	inv := f.Inventory
	if inv.Command == "" && inv.URL == "" && inv.Ansible == "" {
		return nil
	}
	ps := &problems{f: f}
	spec := f.checkInventory(ps)
	if err := ps.err(); err != nil {
		return err
	}
	if spec.Ansible != "" {
		return f.readAnsible(spec.Ansible)
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	var data []byte
	var err error
	where := ""
	if spec.Command != "" {
		where = fmt.Sprintf("inventory command %q (%s)", spec.Command, f.where(f.loc.line(p("inventory", "command"))))
		data, err = inventoryCommand(ctx, spec.Command, f.dir, spec.Timeout)
	} else {
		where = fmt.Sprintf("inventory url %s (%s)", spec.URL, f.where(f.loc.line(p("inventory", "url"))))
		data, err = inventoryURL(ctx, spec.URL, spec.Timeout)
	}
	if err != nil {
		return invalid(where, err.Error(), "run it by hand to see what it does; it must print {\"hosts\": [...]} as JSON and exit 0")
	}
	hosts, err := parseInventory(data)
	if err != nil {
		return invalid(where, err.Error(), `print JSON like {"hosts": [{"name": "h01", "address": "10.0.0.1", "vars": {}, "groups": ["web"]}]}`)
	}
	return f.mergeInventory(where, hosts)
}

func invalid(where, msg, hint string) *drover.Error {
	return &drover.Error{Code: drover.EINVALID, Where: where, Message: msg, Hint: hint}
}

// inventoryCommand runs command with `sh -c` in dir and returns its
// standard output. Its own process group is killed when ctx ends, and
// stdin is empty, so it never waits for a person.
func inventoryCommand(ctx context.Context, command, dir string, timeout time.Duration) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = inventoryDir(dir)
	cmd.Stdout = &limitWriter{w: &stdout, n: inventoryOutputMax}
	cmd.Stderr = &limitWriter{w: &stderr, n: 64 << 10}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("did not finish within %v%s", timeout, stderrTail(stderr.String()))
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("exited %d%s", ee.ExitCode(), stderrTail(stderr.String()))
		}
		return nil, fmt.Errorf("cannot run: %v", err)
	}
	if stdout.Len() >= inventoryOutputMax {
		return nil, fmt.Errorf("printed more than %d bytes", inventoryOutputMax)
	}
	return stdout.Bytes(), nil
}

func stderrTail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return " (no stderr)"
	}
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return "; stderr: " + s
}

// limitWriter keeps the first n bytes and discards the rest, so a runaway
// command cannot fill memory.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.n > 0 {
		k := min(len(b), l.n)
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}

func inventoryURL(ctx context.Context, u string, timeout time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET failed: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, inventoryOutputMax+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET answered %s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	if len(body) > inventoryOutputMax {
		return nil, fmt.Errorf("the response is larger than %d bytes", inventoryOutputMax)
	}
	return body, nil
}

// parseInventory decodes an inventory document strictly. JSON numbers in
// vars become the types YAML vars have (uint64, int64 when negative,
// float64 with a fraction), so templates render them the same way.
func parseInventory(data []byte) ([]inventoryHost, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("printed nothing; want a JSON object with hosts")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var doc inventoryDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, jsonError(data, err)
	}
	if dec.More() {
		line, col := lineCol(data, int(dec.InputOffset()))
		return nil, fmt.Errorf("JSON at line %d:%d: more after the document", line, col)
	}
	if doc.Hosts == nil {
		return nil, errors.New(`JSON has no "hosts" list`)
	}
	for i := range doc.Hosts {
		doc.Hosts[i].Vars = numbers(doc.Hosts[i].Vars).(map[string]any)
	}
	return doc.Hosts, nil
}

func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(data, int(se.Offset))
		return fmt.Errorf("JSON syntax error at line %d:%d: %v", line, col, se)
	case errors.As(err, &te):
		line, col := lineCol(data, int(te.Offset))
		field := te.Field
		if field == "" {
			field = "the document"
		}
		return fmt.Errorf("JSON at line %d:%d: %s: expected %s, got %s", line, col, field, te.Type, te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := lineCol(data, len(data))
		return fmt.Errorf("JSON ends early at line %d:%d", line, col)
	}
	return fmt.Errorf("JSON: %v", err)
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (int, int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - bytes.LastIndexByte(before, '\n')
	return line, col
}

// numbers converts json.Number values, recursively.
func numbers(v any) any {
	switch v := v.(type) {
	case nil:
		return map[string]any(nil)
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
		return v
	case json.Number:
		if u, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return u
		}
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n
		}
		if x, err := v.Float64(); err == nil {
			return x
		}
		return string(v)
	}
	return v
}

// mergeInventory checks the inventory's hosts and adds them to f.Hosts,
// and expands "@group" patterns of every group.
func (f *File) mergeInventory(where string, hosts []inventoryHost) error {
	var errs []error
	bad := func(i int, h inventoryHost, format string, args ...any) {
		name := ""
		if h.Name != "" {
			name = fmt.Sprintf(" (%s)", h.Name)
		}
		errs = append(errs, invalid(where, fmt.Sprintf("hosts[%d]%s: ", i, name)+fmt.Sprintf(format, args...),
			`every host needs a unique "name" (letters, digits, '.', '_', '-') and an "address"`))
	}
	seen := map[string]string{}
	for i, h := range f.Hosts {
		seen[h.Name] = fmt.Sprintf("%s (hosts[%d])", f.where(f.loc.line(p("hosts", i))), i)
	}
	groups := map[string][]string{}
	var merged []HostFile
	for i, h := range hosts {
		switch prev, dup := seen[h.Name]; {
		case h.Name == "":
			bad(i, h, "no name")
			continue
		case !validName.MatchString(h.Name) || h.Name == "." || h.Name == "..":
			bad(i, h, "%q is not a valid host name", h.Name)
			continue
		case dup:
			bad(i, h, "host %q is already defined at %s", h.Name, prev)
			continue
		}
		seen[h.Name] = fmt.Sprintf("%s hosts[%d]", where, i)
		if strings.TrimSpace(h.Address) == "" {
			bad(i, h, "no address")
			continue
		}
		for _, g := range h.Groups {
			if !slices.Contains(groups[g], h.Name) {
				groups[g] = append(groups[g], h.Name)
			}
		}
		merged = append(merged, HostFile{Name: h.Name, Address: h.Address, DeployRoot: h.DeployRoot, Vars: h.Vars})
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	f.Hosts = append(f.Hosts, merged...)
	expand := func(gs []GroupFile, at keyPath) {
		for gi := range gs {
			pats := gs[gi].Hosts
			n := len(pats)
			for pi := 0; pi < n; pi++ {
				name, ok := strings.CutPrefix(pats[pi], "@")
				if !ok {
					continue
				}
				members, known := groups[name]
				if !known {
					errs = append(errs, invalid(f.where(f.loc.line(at.with(gi, "hosts", pi))),
						fmt.Sprintf("%s.hosts[%d]: %q names no inventory group", at.with(gi), pi, pats[pi]),
						"inventory groups are: "+strings.Join(sortedKeys(groups), ", ")))
					continue
				}
				// The first member takes the pattern's place and the rest
				// go last, so every other pattern keeps its index (and
				// its line in errors); deploy order is the hosts' order.
				pats[pi] = members[0]
				pats = append(pats, members[1:]...)
			}
			gs[gi].Hosts = pats
		}
	}
	expand(f.Groups, p("groups"))
	for _, name := range f.envNames() {
		expand(f.Environments[name].Groups, p("environments", name, "groups"))
	}
	return errors.Join(errs...)
}

// inventoryDir is where an inventory command runs.
func inventoryDir(dir string) string {
	if dir == "" {
		if wd, err := os.Getwd(); err == nil {
			return wd
		}
	}
	return filepath.Clean(dir)
}
