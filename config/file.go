package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"drover"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// File is the raw shape of drover.yaml, before defaults, overlays and group
// resolution. Optional numbers are pointers so that "left out" (take the
// default) differs from an explicit 0 (validated). Durations, batches and
// failure limits are kept as written and parsed by Validate, so a bad value
// is reported with the file's words and line rather than a Go type.
type File struct {
	Service          string                 `yaml:"service"`
	DeployRoot       string                 `yaml:"deploy_root"`
	KeepReleases     *int                   `yaml:"keep_releases"`
	Transport        string                 `yaml:"transport"`
	SSH              SSHFile                `yaml:"ssh"`
	StateDir         string                 `yaml:"state_dir"`
	StageParallelism *int                   `yaml:"stage_parallelism"`
	StepTimeout      string                 `yaml:"step_timeout"`
	StageRetries     *int                   `yaml:"stage_retries"`
	Seed             int64                  `yaml:"seed"`
	Hosts            []HostFile             `yaml:"hosts"`
	Groups           []GroupFile            `yaml:"groups"`
	ConfigFiles      []ConfigFileFile       `yaml:"config_files"`
	Hooks            HooksFile              `yaml:"hooks"`
	Rotation         RotationFile           `yaml:"rotation"`
	Checks           []CheckFile            `yaml:"checks"`
	Environments     map[string]Environment `yaml:"environments"`
	Store            StoreFile              `yaml:"store"`
	Log              LogFile                `yaml:"log"`
	AskMessage       *bool                  `yaml:"ask_message"`
	Webhooks         []WebhookFile          `yaml:"webhooks"`
	Smoke            []CheckFile            `yaml:"smoke"`
	Invariants       []InvariantFile        `yaml:"invariants"`
	// Analysis are metric analyses run after every group (analysis.go).
	Analysis []AnalysisFile `yaml:"analysis"`
	// Retry, Converge and Inventory: per-step retries, drover converge
	// and dynamic inventory (retry.go, converge.go, inventory.go).
	Retry     RetryFile     `yaml:"retry"`
	Converge  ConvergeFile  `yaml:"converge"`
	Inventory InventoryFile `yaml:"inventory"`
	// Strategy and BlueGreen: strategy: blue-green (bluegreen.go).
	Strategy  string         `yaml:"strategy"`
	BlueGreen *BlueGreenFile `yaml:"blue_green"`
	// Distribution is how bundles reach hosts (distribution.go).
	Distribution DistributionFile `yaml:"distribution"`
	// SharedDirs are linked into every release (shareddirs.go).
	SharedDirs []string `yaml:"shared_dirs"`
	// PruneForeign lets pruning remove another tool's releases once they
	// are neither current nor previous.
	PruneForeign bool `yaml:"prune_foreign"`

	// filename names the file in errors; dir resolves relative paths.
	filename string
	dir      string
	loc      *locator
}

// SSHFile is the ssh block.
type SSHFile struct {
	User               string `yaml:"user"`
	Identity           string `yaml:"identity"`
	KnownHosts         string `yaml:"known_hosts"`
	Port               *int   `yaml:"port"`
	ProxyJump          string `yaml:"proxy_jump"`
	TrustOnFirstUse    bool   `yaml:"trust_on_first_use"`
	ConnectTimeout     string `yaml:"connect_timeout"`
	KeepaliveInterval  string `yaml:"keepalive_interval"`
	KeepaliveCount     *int   `yaml:"keepalive_count"`
	ConnectParallelism *int   `yaml:"connect_parallelism"`
	HostBinary         string `yaml:"host_binary"`
}

// HostFile is one entry of hosts.
type HostFile struct {
	Name       string         `yaml:"name"`
	Address    string         `yaml:"address"`
	DeployRoot string         `yaml:"deploy_root"`
	Vars       map[string]any `yaml:"vars"`
}

// GroupFile is one entry of groups.
type GroupFile struct {
	Name string `yaml:"name"`
	// Hosts are host names or path.Match globs.
	Hosts []string `yaml:"hosts"`
	// Batch and FailureLimit are "n" or "n%"; "" means the default.
	Batch        string `yaml:"batch"`
	FailureLimit string `yaml:"failure_limit"`
	// Smoke are checks run from the controller once the group is done.
	Smoke []CheckFile `yaml:"smoke"`
	// AllowAllAtOnce accepts a batch that takes the whole group out.
	AllowAllAtOnce bool `yaml:"allow_all_at_once"`
	// Confirm asks a person before the deploy moves past the group.
	Confirm bool `yaml:"confirm"`
	// Wait is a bake time; Approve "manual" waits for drover approve;
	// Analysis are the group's own metric analyses (analysis.go).
	Wait           string         `yaml:"wait"`
	Approve        string         `yaml:"approve"`
	ApproveTimeout string         `yaml:"approve_timeout"`
	Analysis       []AnalysisFile `yaml:"analysis"`
}

// ConfigFileFile is one entry of config_files.
type ConfigFileFile struct {
	Template string   `yaml:"template"`
	Dest     string   `yaml:"dest"`
	Validate string   `yaml:"validate"`
	Mode     FileMode `yaml:"mode"`
	Owner    string   `yaml:"owner"`
	Group    string   `yaml:"group"`
}

// FileMode is a file mode as written: 0640, "0640", 640 or 0o640 are all
// octal. It keeps the text, because YAML reads 640 as decimal (0o1200)
// and 0640 as octal, and a mode silently off by that is a secret readable
// by everyone; validate parses it.
type FileMode string

// UnmarshalYAML keeps the scalar's text.
func (m *FileMode) UnmarshalYAML(b []byte) error {
	s := strings.TrimSpace(string(b))
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		s = s[1 : len(s)-1]
	}
	*m = FileMode(s)
	return nil
}

// HooksFile is the hooks block.
type HooksFile struct {
	Restart        string `yaml:"restart"`
	Stop           string `yaml:"stop"`
	Depool         string `yaml:"depool"`
	WaitIdle       string `yaml:"wait_idle"`
	Repool         string `yaml:"repool"`
	BeforeStage    string `yaml:"before_stage"`
	AfterStage     string `yaml:"after_stage"`
	BeforePromote  string `yaml:"before_promote"`
	AfterPromote   string `yaml:"after_promote"`
	BeforeRestart  string `yaml:"before_restart"`
	AfterRestart   string `yaml:"after_restart"`
	BeforeRollback string `yaml:"before_rollback"`
	AfterRollback  string `yaml:"after_rollback"`
	Replace        string `yaml:"replace"`
	Timeout        string `yaml:"timeout"`
}

// CheckFile is one entry of checks.
type CheckFile struct {
	Name          string            `yaml:"name"`
	Type          string            `yaml:"type"`
	Address       string            `yaml:"address"`
	URL           string            `yaml:"url"`
	ExpectStatus  *int              `yaml:"expect_status"`
	ExpectBody    string            `yaml:"expect_body"`
	ExpectHeaders map[string]string `yaml:"expect_headers"`
	Command       string            `yaml:"command"`
	Path          string            `yaml:"path"`
	Pattern       string            `yaml:"pattern"`
	Absent        *bool             `yaml:"absent"`
	Window        string            `yaml:"window"`
	Timeout       string            `yaml:"timeout"`
	Interval      string            `yaml:"interval"`
}

// LogFile is the log block: the structured event log.
type LogFile struct {
	File   string `yaml:"file"`
	Format string `yaml:"format"`
}

// WebhookFile is one entry of webhooks.
type WebhookFile struct {
	URL     string            `yaml:"url"`
	Events  []string          `yaml:"events"`
	Timeout string            `yaml:"timeout"`
	Headers map[string]string `yaml:"headers"`
	Secret  string            `yaml:"secret"`
}

// Environment is an overlay chosen with --env.
type Environment struct {
	// Hosts and Groups replace the top-level lists when present.
	Hosts  []HostFile  `yaml:"hosts"`
	Groups []GroupFile `yaml:"groups"`
	// Vars are merged into every host's vars; a host's own vars win.
	Vars       map[string]any `yaml:"vars"`
	DeployRoot string         `yaml:"deploy_root"`
	// Requires names the environment this one's releases must come from
	// (promotion.go).
	Requires *RequiresFile `yaml:"requires"`
}

// Load reads the file at path and returns the spec for environment env
// ("" for none).
func Load(path, env string) (*drover.Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &drover.Error{
			Code:    drover.EINVALID,
			Where:   path,
			Message: "cannot read config file",
			Hint:    "pass the path of drover.yaml with -c",
			Err:     err,
		}
	}
	return Parse(path, data, env)
}

// Parse decodes data, read from filename, and returns the spec for
// environment env ("" for none). filename names the file in errors and
// relative paths in it resolve against its directory.
func Parse(filename string, data []byte, env string) (*drover.Spec, error) {
	f, err := Decode(filename, data)
	if err != nil {
		return nil, err
	}
	// Dynamic inventory is read here, once, before validation: its hosts
	// are validated and resolved with the file's (inventory.go).
	if err := f.readInventory(context.Background()); err != nil {
		return nil, err
	}
	return f.Spec(env)
}

// Decode parses and strictly decodes data without validating it. The
// returned File remembers the positions of its keys for Validate and Spec.
func Decode(filename string, data []byte) (*File, error) {
	if filename == "" {
		filename = "drover.yaml"
	}
	f := &File{filename: filename}
	if dir, err := filepath.Abs(filepath.Dir(filename)); err == nil {
		f.dir = dir
	} else {
		f.dir = filepath.Dir(filename)
	}
	parsed, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, f.yamlError(err)
	}
	var body ast.Node
	for i, doc := range parsed.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			return nil, &drover.Error{
				Code:    drover.EINVALID,
				Where:   fmt.Sprintf("%s:%d", filename, nodeLine(doc.Body)),
				Message: fmt.Sprintf("a second YAML document (document %d); drover.yaml holds one", i+1),
				Hint:    `remove the "---" separator and everything after it, or merge the documents`,
			}
		}
		body = doc.Body
	}
	if body == nil {
		return nil, &drover.Error{
			Code:    drover.EINVALID,
			Where:   filename + ":1",
			Message: "the config file is empty",
			Hint:    "run `drover init` for a commented drover.yaml: service, deploy_root, hosts and groups are required",
		}
	}
	f.loc = newLocator(body)
	if err := f.decodeAll(body); err != nil {
		return nil, err
	}
	return f, nil
}

// yamlError turns a go-yaml error into a *drover.Error at its line, naming
// the key in the file's words rather than the Go field it decodes into.
func (f *File) yamlError(err error) *drover.Error {
	out := &drover.Error{Code: drover.EINVALID, Where: f.filename}
	var ye yaml.Error
	if !errors.As(err, &ye) {
		out.Message = "cannot decode YAML"
		out.Err = err
		out.Hint = "check the file is valid YAML"
		return out
	}
	tk := ye.GetToken()
	if tk != nil {
		out.Where = fmt.Sprintf("%s:%d", f.filename, tk.Position.Line)
	}
	pt, isKey, found := f.loc.pathOf(tk)
	var unknown *yaml.UnknownFieldError
	var typeErr *yaml.TypeError
	var nodeErr *yaml.UnexpectedNodeTypeError
	var overflow *yaml.OverflowError
	switch {
	case errors.As(err, &unknown):
		key := ""
		if tk != nil {
			key = tk.Value
		}
		parent := pt
		if found && isKey && len(parent) > 0 {
			parent = parent[:len(parent)-1]
		}
		where := "at the top level"
		if len(parent) > 0 {
			where = "in " + parent.String()
		}
		out.Message = fmt.Sprintf("unknown key %q %s", key, where)
		known := knownKeys(parent)
		switch guess := closest(key, known); {
		case guess != "":
			out.Hint = fmt.Sprintf("did you mean %q? known keys here: %s", guess, strings.Join(known, ", "))
		case len(known) > 0:
			out.Hint = "known keys here: " + strings.Join(known, ", ")
		default:
			out.Hint = "remove the key"
		}
	case errors.As(err, &typeErr):
		out.Message = fmt.Sprintf("%s: expected %s, got %s", keyName(pt, found), kindName(typeErr.DstType), srcName(typeErr.SrcType, tk))
		out.Hint = "fix the value's type; quote it if it is meant as text"
	case errors.As(err, &nodeErr):
		out.Message = fmt.Sprintf("%s: expected %s, got %s", keyName(pt, found), article(nodeErr.Expected.YAMLName()), article(nodeErr.Actual.YAMLName()))
		out.Hint = "see the configuration reference in README.md for the shape of this key"
	case errors.As(err, &overflow):
		out.Message = fmt.Sprintf("%s: number %s is too large", keyName(pt, found), overflow.SrcNum)
		out.Hint = "use a smaller number"
	default:
		out.Message = "YAML syntax error: " + ye.GetMessage()
		out.Hint = "fix the YAML at this line: check indentation, quotes, brackets and that each key appears once"
	}
	return out
}

func keyName(pt keyPath, found bool) string {
	if !found || len(pt) == 0 {
		return "the document"
	}
	return pt.String()
}

// srcName describes what the file holds: the scalar as written, or "a
// list" / "a mapping".
func srcName(t reflect.Type, tk *token.Token) string {
	if t != nil {
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct:
			return kindName(t)
		}
	}
	if tk == nil {
		return "another type"
	}
	return fmt.Sprintf("%q", tk.Value)
}

// article puts "a" or "an" before a YAML node type name.
func article(s string) string {
	if s != "" && strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a single value"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// knownKeys lists the keys allowed at pt, from File's yaml tags.
func knownKeys(pt keyPath) []string {
	t := reflect.TypeOf(File{})
	for _, seg := range pt {
		switch t.Kind() {
		case reflect.Struct:
			name, ok := seg.(string)
			if !ok {
				return nil
			}
			f, ok := fieldByTag(t, name)
			if !ok {
				return nil
			}
			t = f.Type
		case reflect.Slice, reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if tag := yamlTag(t.Field(i)); tag != "" {
			keys = append(keys, tag)
		}
	}
	return keys
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if yamlTag(t.Field(i)) == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func yamlTag(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return tag
}

// closest returns the known key within two edits of key, if any: the
// "tiemout" that was meant as "timeout".
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of neighbours each count one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// problems collects validation errors with their positions.
type problems struct {
	f    *File
	list []problem
	seen map[string]bool
}

type problem struct {
	line int
	err  *drover.Error
}

// add records a problem at pt. The same message at the same place is kept
// once: fleets that share the top-level hosts would otherwise report it
// once per environment.
func (ps *problems) add(pt keyPath, hint, format string, args ...any) {
	line := ps.f.loc.line(pt)
	e := &drover.Error{
		Code:    drover.EINVALID,
		Where:   ps.f.where(line),
		Message: fmt.Sprintf(format, args...),
		Hint:    hint,
	}
	key := e.Where + "\x00" + e.Message
	if ps.seen == nil {
		ps.seen = map[string]bool{}
	}
	if ps.seen[key] {
		return
	}
	ps.seen[key] = true
	ps.list = append(ps.list, problem{line, e})
}

// err returns nil, the one error, or every error joined, in line order.
func (ps *problems) err() error {
	switch len(ps.list) {
	case 0:
		return nil
	case 1:
		return ps.list[0].err
	}
	sort.SliceStable(ps.list, func(i, j int) bool { return ps.list[i].line < ps.list[j].line })
	errs := make([]error, len(ps.list))
	for i, p := range ps.list {
		errs[i] = p.err
	}
	return errors.Join(errs...)
}

func (f *File) where(line int) string {
	name := f.filename
	if name == "" {
		name = "drover.yaml"
	}
	if line <= 0 {
		return name
	}
	return fmt.Sprintf("%s:%d", name, line)
}
