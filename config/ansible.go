package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"drover"
)

// Ansible inventories, read as they are: `inventory: {ansible: hosts.ini}`
// names an INI or YAML inventory file (relative to the config file), and
// the group_vars/ and host_vars/ directories beside it. Each host becomes a
// drover host: its name is the inventory hostname, its address
// ansible_host (else the name) with ansible_port appended, its vars every
// var Ansible resolves for it; a drover group names an Ansible group as
// "@webservers" (its hosts and its children's).
//
// Vars are resolved in Ansible's order, so a host gets in drover the value
// it gets in a playbook (the parity test compares with
// `ansible-inventory --list`):
//
//	all's vars in the inventory file < group_vars/all
//	< each other group's vars in the file, by depth then name
//	  (parents before children: a child group wins)
//	< group_vars/<group> in the same order
//	< the host's vars in the file < host_vars/<host>
//
// INI values are read as Ansible reads them: a Python literal (5, 0.5,
// True, None, "quoted", [1, 'x'], {'a': 1}) or else the text itself.
//
// drover logs in as one user (ssh.user): hosts whose ansible_user differ
// are refused, and a single ansible_user shared by every host becomes
// ssh.user when the config file sets none.

// ansibleMaxHosts bounds what host ranges may expand to: www[0:99999999]
// in a hostile or mistyped inventory must not fill memory.
const ansibleMaxHosts = 100000

type ansGroup struct {
	name     string
	vars     map[string]any
	hosts    []string
	children []string
	parents  []string
	depth    int
}

type ansHost struct {
	name   string
	line   int // where it is first defined
	vars   map[string]any
	groups []string // groups naming it directly
}

type ansInventory struct {
	file   string // as written in errors
	groups map[string]*ansGroup
	order  []string // groups in the order first seen
	hosts  map[string]*ansHost
	horder []string
	total  int
}

func newAnsInventory(file string) *ansInventory {
	inv := &ansInventory{file: file, groups: map[string]*ansGroup{}, hosts: map[string]*ansHost{}}
	inv.group("all")
	inv.group("ungrouped")
	return inv
}

func (inv *ansInventory) group(name string) *ansGroup {
	g := inv.groups[name]
	if g == nil {
		g = &ansGroup{name: name, vars: map[string]any{}}
		inv.groups[name] = g
		inv.order = append(inv.order, name)
	}
	return g
}

func (inv *ansInventory) errAt(line int, format string, args ...any) *drover.Error {
	where := inv.file
	if line > 0 {
		where = fmt.Sprintf("%s:%d", inv.file, line)
	}
	return &drover.Error{Code: drover.EINVALID, Where: where, Message: fmt.Sprintf(format, args...),
		Hint: "fix the inventory; `ansible-inventory -i FILE --list` shows how Ansible reads it"}
}

// addHost adds host to group (ungrouped stays implicit until the end).
func (inv *ansInventory) addHost(line int, name, group string, port int, vars map[string]any) error {
	h := inv.hosts[name]
	if h == nil {
		inv.total++
		if inv.total > ansibleMaxHosts {
			return inv.errAt(line, "more than %d hosts", ansibleMaxHosts)
		}
		if !validName.MatchString(name) || name == "." || name == ".." {
			return inv.errAt(line, "host %q cannot be a drover host name (letters, digits, '.', '_', '-')", name)
		}
		h = &ansHost{name: name, line: line, vars: map[string]any{}}
		inv.hosts[name] = h
		inv.horder = append(inv.horder, name)
	}
	if group != "" && group != "all" && group != "ungrouped" {
		g := inv.group(group)
		if !slices.Contains(g.hosts, name) {
			g.hosts = append(g.hosts, name)
		}
		if !slices.Contains(h.groups, group) {
			h.groups = append(h.groups, group)
		}
	}
	if port > 0 {
		h.vars["ansible_port"] = uint64(port)
	}
	maps.Copy(h.vars, vars)
	return nil
}

func (inv *ansInventory) addChild(line int, parent, child string) error {
	if parent == child {
		return inv.errAt(line, "group %q cannot be its own child", child)
	}
	if inv.descends(parent, child) {
		return inv.errAt(line, "adding group %q as a child of %q makes a loop", child, parent)
	}
	p, c := inv.group(parent), inv.group(child)
	if !slices.Contains(p.children, child) {
		p.children = append(p.children, child)
		c.parents = append(c.parents, parent)
	}
	return nil
}

// descends reports whether g is child (or is below child).
func (inv *ansInventory) descends(g, child string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		if n == g {
			return true
		}
		if seen[n] {
			return false
		}
		seen[n] = true
		for _, c := range inv.group(n).children {
			if walk(c) {
				return true
			}
		}
		return false
	}
	return walk(child)
}

// --- INI ---------------------------------------------------------------

var (
	iniSection   = regexp.MustCompile(`^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$`)
	iniGroupName = regexp.MustCompile(`^([^:\]\s]+)\s*(?:#.*)?$`)
)

func parseAnsibleINI(inv *ansInventory, data []byte) error {
	type pending struct {
		line    int
		state   string
		name    string
		parents []string
	}
	waiting := map[string]*pending{}
	defined := map[string]bool{"all": true, "ungrouped": true}
	group, state := "ungrouped", "hosts"
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if m := iniSection.FindStringSubmatch(line); m != nil {
			group, state = m[1], m[2]
			switch state {
			case "":
				state = "hosts"
			case "hosts", "children", "vars":
			default:
				return inv.errAt(n, "section [%s:%s] has unknown type %q (want hosts, children or vars)", group, state, state)
			}
			if state == "vars" {
				if !defined[group] {
					if _, ok := waiting[group]; !ok {
						waiting[group] = &pending{line: n, state: "vars", name: group}
					}
				}
				continue
			}
			defined[group] = true
			inv.group(group)
			if w, ok := waiting[group]; ok {
				for _, parent := range w.parents {
					if err := inv.addChild(w.line, parent, group); err != nil {
						return err
					}
				}
				delete(waiting, group)
			}
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			return inv.errAt(n, "invalid section %q: no spaces or other invalid characters in a section name", line)
		}
		switch state {
		case "hosts":
			if err := inv.iniHost(n, line, group); err != nil {
				return err
			}
		case "children":
			m := iniGroupName.FindStringSubmatch(line)
			if m == nil {
				return inv.errAt(n, "%q is not a group name", line)
			}
			child := m[1]
			if !defined[child] {
				if w, ok := waiting[child]; ok && w.state == "children" {
					w.parents = append(w.parents, group)
				} else {
					waiting[child] = &pending{line: n, state: "children", name: group, parents: []string{group}}
				}
				continue
			}
			if err := inv.addChild(n, group, child); err != nil {
				return err
			}
		case "vars":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return inv.errAt(n, "expected key=value in [%s:vars], got %q", group, line)
			}
			inv.group(group).vars[strings.TrimSpace(k)] = pyValue(strings.TrimSpace(v))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(waiting)) {
		w := waiting[name]
		if w.state == "vars" {
			return inv.errAt(w.line, "section [%s:vars] is for a group defined nowhere: %s", name, name)
		}
		return inv.errAt(w.line, "section [%s:children] names a group defined nowhere: %s", w.name, name)
	}
	return nil
}

// iniHost reads one host line: a host pattern and key=value vars, split
// the way a POSIX shell would (Ansible uses shlex).
func (inv *ansInventory) iniHost(n int, line, group string) error {
	tokens, err := shlexSplit(line)
	if err != nil {
		return inv.errAt(n, "host line %q: %v", line, err)
	}
	if len(tokens) == 0 {
		return nil
	}
	vars := map[string]any{}
	for _, t := range tokens[1:] {
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return inv.errAt(n, "expected key=value host variable, got %q", t)
		}
		vars[k] = pyValue(v)
	}
	names, port, err := expandHostPattern(tokens[0])
	if err != nil {
		return inv.errAt(n, "host %q: %v", tokens[0], err)
	}
	for _, name := range names {
		if err := inv.addHost(n, name, group, port, vars); err != nil {
			return err
		}
	}
	return nil
}

// shlexSplit is Python's shlex.split(line, comments=True) in POSIX mode:
// whitespace separates, quotes group, backslash escapes outside single
// quotes, and # starts a comment even inside a word.
func shlexSplit(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#':
			if inWord {
				out = append(out, cur.String())
			}
			return out, nil
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("no closing quotation")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\' || s[i+1] == '$' || s[i+1] == '`') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("no closing quotation")
			}
		case c == '\\':
			inWord = true
			if i+1 >= len(s) {
				return nil, errors.New("no escaped character")
			}
			i++
			cur.WriteByte(s[i])
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// expandHostPattern splits an optional :port off a host pattern and
// expands its [a:b] ranges, as Ansible's inventory plugins do.
func expandHostPattern(pat string) ([]string, int, error) {
	host, port := pat, 0
	switch {
	case strings.HasPrefix(pat, "[") && !hasRange(pat):
		// [IPv6]:port
		end := strings.IndexByte(pat, ']')
		if end > 0 && strings.HasPrefix(pat[end:], "]:") {
			p, err := strconv.Atoi(pat[end+2:])
			if err != nil || p < 1 || p > 65535 {
				return nil, 0, fmt.Errorf("bad port %q", pat[end+2:])
			}
			host, port = pat[1:end], p
		} else if end == len(pat)-1 {
			host = pat[1:end]
		}
	case strings.Count(outsideBrackets(pat), ":") == 1:
		i := strings.LastIndexByte(pat, ':')
		p, err := strconv.Atoi(pat[i+1:])
		if err != nil || p < 1 || p > 65535 {
			return nil, 0, fmt.Errorf("bad port %q", pat[i+1:])
		}
		host, port = pat[:i], p
	}
	if host == "" {
		return nil, 0, errors.New("empty host name")
	}
	if !hasRange(host) {
		return []string{host}, port, nil
	}
	var out []string
	if err := expandRange(host, &out); err != nil {
		return nil, 0, err
	}
	return out, port, nil
}

// outsideBrackets drops every [...] part, so a range's colon is not
// taken for a port's.
func outsideBrackets(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '[':
			depth++
		case r == ']' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func hasRange(s string) bool {
	i := strings.IndexByte(s, '[')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(s[i:], ']')
	return j > 0 && strings.Contains(s[i:i+j], ":")
}

const asciiLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// expandRange is Ansible's expand_hostname_range: head[beg:end(:step)]tail,
// zero-padded when beg is, letters or numbers.
func expandRange(s string, out *[]string) error {
	i := strings.IndexByte(s, '[')
	j := i + strings.IndexByte(s[i:], ']')
	head, rng, tail := s[:i], s[i+1:j], s[j+1:]
	b := strings.Split(rng, ":")
	if len(b) != 2 && len(b) != 3 {
		return fmt.Errorf("range [%s] must be begin:end or begin:end:step", rng)
	}
	beg, end, step := b[0], b[1], 1
	if len(b) == 3 {
		st, err := strconv.Atoi(b[2])
		if err != nil || st < 1 {
			return fmt.Errorf("range [%s]: step %q is not a positive number", rng, b[2])
		}
		step = st
	}
	if beg == "" {
		beg = "0"
	}
	if end == "" {
		return fmt.Errorf("range [%s] has no end", rng)
	}
	fill := func(x string) string { return x }
	if beg[0] == '0' && len(beg) > 1 {
		if len(beg) != len(end) {
			return fmt.Errorf("range [%s]: begin and end must have the same width", rng)
		}
		fill = func(x string) string { return strings.Repeat("0", max(0, len(beg)-len(x))) + x }
	}
	var seq []string
	ib, ie := strings.Index(asciiLetters, beg), strings.Index(asciiLetters, end)
	if len(beg) == 1 && len(end) == 1 && ib >= 0 && ie >= 0 {
		if ib > ie {
			return fmt.Errorf("range [%s]: begin is after end", rng)
		}
		for k := ib; k <= ie; k += step {
			seq = append(seq, asciiLetters[k:k+1])
		}
	} else {
		nb, err1 := strconv.Atoi(beg)
		ne, err2 := strconv.Atoi(end)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("range [%s] is neither numbers nor single letters", rng)
		}
		if (ne-nb)/step >= ansibleMaxHosts {
			return fmt.Errorf("range [%s] expands to more than %d hosts", rng, ansibleMaxHosts)
		}
		for k := nb; k <= ne; k += step {
			seq = append(seq, strconv.Itoa(k))
		}
	}
	for _, x := range seq {
		name := head + fill(x) + tail
		if hasRange(name) {
			if err := expandRange(name, out); err != nil {
				return err
			}
		} else {
			*out = append(*out, name)
		}
		if len(*out) > ansibleMaxHosts {
			return fmt.Errorf("ranges expand to more than %d hosts", ansibleMaxHosts)
		}
	}
	return nil
}

// --- YAML --------------------------------------------------------------

func parseAnsibleYAML(inv *ansInventory, data []byte) error {
	v, loc, err := parseYAML11(data)
	if err != nil {
		return inv.yamlErr(err)
	}
	if v == nil {
		return nil
	}
	doc, ok := v.(yaml.MapSlice)
	if !ok {
		return inv.errAt(1, "a YAML inventory is a mapping of groups (all: {hosts: ..., children: ...}), got %T", v)
	}
	for _, item := range doc {
		name := fmt.Sprint(item.Key)
		if err := inv.yamlGroup(loc, p(name), name, item.Value); err != nil {
			return err
		}
	}
	return nil
}

// parserParse is parser.ParseBytes without comments.
func parserParse(data []byte) (*ast.File, error) { return parser.ParseBytes(data, 0) }

func (inv *ansInventory) yamlErr(err error) *drover.Error {
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		return inv.errAt(ye.GetToken().Position.Line, "YAML: %s", ye.GetMessage())
	}
	return inv.errAt(0, "YAML: %v", err)
}

func (inv *ansInventory) yamlGroup(loc *locator, at keyPath, name string, v any) error {
	inv.group(name)
	if v == nil {
		return nil
	}
	body, ok := v.(yaml.MapSlice)
	if !ok {
		return inv.errAt(loc.line(at), "group %s: want a mapping with hosts, children and vars, got %T", name, v)
	}
	for _, item := range body {
		key := fmt.Sprint(item.Key)
		kat := at.with(key)
		if item.Value == nil {
			continue
		}
		sec, ok := item.Value.(yaml.MapSlice)
		if s, isStr := item.Value.(string); isStr && key != "vars" {
			sec, ok = yaml.MapSlice{{Key: s}}, true
		}
		if !ok {
			return inv.errAt(loc.line(kat), "group %s: %s must be a mapping, got %T", name, key, item.Value)
		}
		switch key {
		case "vars":
			for _, kv := range sec {
				inv.group(name).vars[fmt.Sprint(kv.Key)] = plain(kv.Value)
			}
		case "children":
			for _, kv := range sec {
				child := fmt.Sprint(kv.Key)
				if err := inv.yamlGroup(loc, kat.with(child), child, kv.Value); err != nil {
					return err
				}
				if err := inv.addChild(loc.line(kat.with(child)), name, child); err != nil {
					return err
				}
			}
		case "hosts":
			for _, kv := range sec {
				pat := fmt.Sprint(kv.Key)
				line := loc.line(kat.with(pat))
				vars := map[string]any{}
				if kv.Value != nil {
					hv, ok := plain(kv.Value).(map[string]any)
					if !ok {
						return inv.errAt(line, "host %s: its vars must be a mapping, got %T", pat, kv.Value)
					}
					vars = hv
				}
				names, port, err := expandHostPattern(pat)
				if err != nil {
					return inv.errAt(line, "host %q: %v", pat, err)
				}
				for _, h := range names {
					if err := inv.addHost(line, h, name, port, maps.Clone(vars)); err != nil {
						return err
					}
				}
			}
		default:
			// Ansible warns and skips; a typo ("host:") silently dropping
			// hosts from a deploy is worse than stopping.
			return inv.errAt(loc.line(kat), "group %s: unknown key %q (only hosts, children and vars)", name, key)
		}
	}
	return nil
}

// plain turns ordered maps into map[string]any, recursively.
func plain(v any) any {
	switch v := v.(type) {
	case yaml.MapSlice:
		m := make(map[string]any, len(v))
		for _, kv := range v {
			m[fmt.Sprint(kv.Key)] = plain(kv.Value)
		}
		return m
	case map[string]any:
		for k, e := range v {
			v[k] = plain(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = plain(e)
		}
		return v
	case int:
		if v < 0 {
			return int64(v)
		}
		return uint64(v)
	case int64:
		if v >= 0 {
			return uint64(v)
		}
	}
	return v
}

// --- group_vars, host_vars ---------------------------------------------

// varsFiles returns the vars files for name under dir in the order
// Ansible reads them: dir/name, name.yml, name.yaml, name.json, then every
// file of the directory dir/name (recursively, sorted).
func varsFiles(dir, name string) []string {
	var out []string
	base := filepath.Join(dir, name)
	if fi, err := os.Stat(base); err == nil && fi.IsDir() {
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			n := d.Name()
			if strings.HasPrefix(n, ".") && p != base {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || strings.HasSuffix(n, "~") {
				return nil
			}
			switch filepath.Ext(n) {
			case "", ".yml", ".yaml", ".json":
				out = append(out, p)
			}
			return nil
		})
		return out
	}
	for _, ext := range []string{"", ".yml", ".yaml", ".json"} {
		if fi, err := os.Stat(base + ext); err == nil && fi.Mode().IsRegular() {
			out = append(out, base+ext)
		}
	}
	return out
}

// readVarsFiles merges the vars files for name under dir.
func readVarsFiles(dir, name, display string) (map[string]any, error) {
	out := map[string]any{}
	for _, path := range varsFiles(dir, name) {
		rel := path
		if r, err := filepath.Rel(filepath.Dir(dir), path); err == nil {
			rel = filepath.Join(display, r)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &drover.Error{Code: drover.EINVALID, Where: rel, Message: err.Error(), Hint: "make the file readable"}
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		v, _, err := parseYAML11(data)
		if err != nil {
			inv := &ansInventory{file: rel}
			return nil, inv.yamlErr(err)
		}
		m, ok := v.(yaml.MapSlice)
		if !ok && v != nil {
			return nil, &drover.Error{Code: drover.EINVALID, Where: rel + ":1", Message: fmt.Sprintf("vars file is not a mapping (got %T)", v), Hint: "write key: value lines"}
		}
		for _, kv := range m {
			out[fmt.Sprint(kv.Key)] = plain(kv.Value)
		}
	}
	return out, nil
}

// --- reading it all ----------------------------------------------------

// ansibleHosts reads the inventory at path (display names it in errors)
// and returns its hosts with their resolved vars and every group they
// are in.
func ansibleHosts(path, display string) ([]inventoryHost, error) {
	inv := newAnsInventory(display)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, inv.errAt(0, "cannot read the Ansible inventory: %v", err)
	}
	if fi.IsDir() {
		return nil, inv.errAt(0, "is a directory; name the inventory file in it")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, inv.errAt(0, "cannot read the Ansible inventory: %v", err)
	}
	if isAnsibleYAML(path, data) {
		err = parseAnsibleYAML(inv, data)
	} else {
		err = parseAnsibleINI(inv, data)
	}
	if err != nil {
		return nil, err
	}
	return inv.resolve(filepath.Dir(path), filepath.Dir(display))
}

// isAnsibleYAML: .yml, .yaml and .json are YAML; other names are INI
// unless the text is a YAML mapping of groups (Ansible's yaml plugin
// also takes files without an extension).
func isAnsibleYAML(path string, data []byte) bool {
	switch filepath.Ext(path) {
	case ".yml", ".yaml", ".json":
		return true
	case "":
		var m map[string]any
		if yaml.Unmarshal(data, &m) != nil || len(m) == 0 {
			return false
		}
		for _, v := range m {
			if _, ok := v.(map[string]any); !ok && v != nil {
				return false
			}
		}
		return true
	}
	return false
}

func (inv *ansInventory) resolve(dir, displayDir string) ([]inventoryHost, error) {
	all := inv.group("all")
	for _, name := range inv.order {
		g := inv.groups[name]
		if name != "all" && len(g.parents) == 0 {
			inv.addChild(0, "all", name)
		}
	}
	for _, hn := range inv.horder {
		if h := inv.hosts[hn]; len(h.groups) == 0 {
			h.groups = []string{"ungrouped"}
			inv.group("ungrouped").hosts = append(inv.group("ungrouped").hosts, hn)
		}
	}
	// depth: the longest path from all, as Ansible's Group.depth.
	var setDepth func(g *ansGroup, d int)
	setDepth = func(g *ansGroup, d int) {
		if d < g.depth && g != all {
			return
		}
		g.depth = d
		for _, c := range g.children {
			if inv.groups[c].depth < d+1 {
				setDepth(inv.groups[c], d+1)
			}
		}
	}
	setDepth(all, 0)

	gvDir, hvDir := filepath.Join(dir, "group_vars"), filepath.Join(dir, "host_vars")
	gv := map[string]map[string]any{}
	for _, name := range inv.order {
		m, err := readVarsFiles(gvDir, name, displayDir)
		if err != nil {
			return nil, err
		}
		gv[name] = m
	}
	var out []inventoryHost
	for _, hn := range inv.horder {
		h := inv.hosts[hn]
		member := map[string]bool{}
		var up func(string)
		up = func(g string) {
			if member[g] {
				return
			}
			member[g] = true
			for _, p := range inv.groups[g].parents {
				up(p)
			}
		}
		for _, g := range h.groups {
			up(g)
		}
		member["all"] = true
		groups := slices.SortedFunc(maps.Keys(member), func(a, b string) int {
			if d := inv.groups[a].depth - inv.groups[b].depth; d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		vars := map[string]any{}
		maps.Copy(vars, deepCopy(all.vars))
		maps.Copy(vars, deepCopy(gv["all"]))
		for _, g := range groups[1:] {
			maps.Copy(vars, deepCopy(inv.groups[g].vars))
		}
		for _, g := range groups[1:] {
			maps.Copy(vars, deepCopy(gv[g]))
		}
		maps.Copy(vars, h.vars)
		hv, err := readVarsFiles(hvDir, hn, displayDir)
		if err != nil {
			return nil, err
		}
		maps.Copy(vars, hv)
		out = append(out, inventoryHost{Name: hn, Address: ansibleAddress(hn, vars), Vars: vars, Groups: groups, line: h.line})
	}
	return out, nil
}

// ansibleAddress is ansible_host (else the inventory name) with
// ansible_port, as drover's ssh transport wants it: host or host:port.
func ansibleAddress(name string, vars map[string]any) string {
	host := name
	if h, ok := vars["ansible_host"].(string); ok && h != "" {
		host = h
	}
	switch port := vars["ansible_port"].(type) {
	case uint64, int64, string:
		if p := fmt.Sprint(port); p != "" {
			return net.JoinHostPort(host, p)
		}
	}
	return host
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return deepCopy(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}

// readAnsible reads the Ansible inventory at path and merges its hosts
// into f like a dynamic inventory's.
func (f *File) readAnsible(path string) error {
	display := f.Inventory.Ansible
	if !filepath.IsAbs(display) {
		display = filepath.Join(filepath.Dir(f.filename), display)
	}
	where := fmt.Sprintf("ansible inventory %s (%s)", display, f.where(f.loc.line(p("inventory", "ansible"))))
	hosts, err := ansibleHosts(path, display)
	if err != nil {
		return err
	}
	if err := f.ansibleUser(display, hosts); err != nil {
		return err
	}
	return f.mergeInventory(where, hosts)
}

// ansibleUser makes the one ansible_user of the inventory drover's ssh
// user. drover logs in to every host as the same user; an inventory whose
// hosts log in as different users, or as another user than ssh.user, is
// refused rather than deployed to as the wrong user.
func (f *File) ansibleUser(display string, hosts []inventoryHost) error {
	users := map[string][]string{}
	where := display
	for _, h := range hosts {
		u, _ := h.Vars["ansible_user"].(string)
		if len(users) == 1 && users[u] == nil && h.line > 0 {
			// The first host that disagrees with the ones before it.
			where = fmt.Sprintf("%s:%d", display, h.line)
		}
		users[u] = append(users[u], h.Name)
	}
	if len(users) > 1 {
		var parts []string
		for _, u := range slices.Sorted(maps.Keys(users)) {
			label := u
			if u == "" {
				label = "(none)"
			}
			parts = append(parts, fmt.Sprintf("%s: %s", label, strings.Join(firstN(users[u], 3), ", ")))
		}
		return invalid(where, "hosts have different ansible_user values ("+strings.Join(parts, "; ")+")",
			"drover logs in to every host as one user (ssh.user): set ansible_user once, in group_vars/all, or split the fleet into one config per user")
	}
	for u := range users {
		switch {
		case u == "":
		case f.SSH.User == "":
			f.SSH.User = u
		case f.SSH.User != u:
			return invalid(display, fmt.Sprintf("ansible_user is %q but ssh.user is %q (%s)", u, f.SSH.User, f.where(f.loc.line(p("ssh", "user")))),
				"remove ssh.user, or make them agree")
		}
	}
	return nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}
