package drover

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"text/template"
)

// TemplateData is what config file, command and check templates see.
type TemplateData struct {
	Host    TemplateHost
	Release TemplateRelease
	Service string
	Env     string
	// Root is the host's deploy root.
	Root string
	// Path is the file being validated (validate commands only).
	Path string
	// Slot is the blue/green colour and port a step acts on (zero with
	// strategy rolling).
	Slot TemplateSlot
}

// TemplateHost is .Host in templates.
type TemplateHost struct {
	Name    string
	Address string
	Vars    map[string]any
}

// TemplateRelease is .Release in templates.
type TemplateRelease struct {
	ID      string
	Version string
}

// NewTemplateData returns the data templates see for host h and release r.
func NewTemplateData(s *Spec, h Host, releaseID, version string) TemplateData {
	vars := h.Vars
	if vars == nil {
		vars = map[string]any{}
	}
	return TemplateData{
		Host:    TemplateHost{Name: h.Name, Address: h.Address, Vars: vars},
		Release: TemplateRelease{ID: releaseID, Version: version},
		Service: s.Service,
		Env:     s.Env,
		Root:    h.DeployRoot,
	}
}

// Render executes a text/template. A missing key is an error, never
// "<no value>": a config file with a hole in it must not reach a host.
func Render(name, text string, data any) (string, error) {
	t, err := parseCached(name, text, false)
	if err != nil {
		return "", Errorf(EINVALID, "template %s: %v", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", Errorf(EINVALID, "template %s: %v", name, err)
	}
	return b.String(), nil
}

// RenderCommand renders a command template for `sh -c`. Every string the
// template can reach (host name, address, vars, paths) is shell-quoted
// first, so a host var like `x; rm -rf /` stays one argument: no shell
// string is ever built from config values without quoting.
func RenderCommand(name, text string, data TemplateData) (string, error) {
	q := data
	q.Host.Name = ShellQuote(data.Host.Name)
	q.Host.Address = ShellQuote(data.Host.Address)
	q.Host.Vars = quoteVars(data.Host.Vars)
	q.Release.ID = ShellQuote(data.Release.ID)
	q.Release.Version = ShellQuote(data.Release.Version)
	q.Service = ShellQuote(data.Service)
	q.Env = ShellQuote(data.Env)
	q.Root = ShellQuote(data.Root)
	q.Path = ShellQuote(data.Path)
	q.Slot.Color = ShellQuote(data.Slot.Color)
	q.Slot.Port = ShellQuote(data.Slot.Port)
	return renderQuoted(name, text, q)
}

// renderQuoted executes a command template over data whose values are
// already shell-quoted; the quote func is then the identity, so a template
// that quotes explicitly does not quote twice.
func renderQuoted(name, text string, quoted any) (string, error) {
	t, err := parseCached(name, text, true)
	if err != nil {
		return "", Errorf(EINVALID, "template %s: %v", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, quoted); err != nil {
		return "", Errorf(EINVALID, "template %s: %v", name, err)
	}
	return b.String(), nil
}

func quoteVars(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = quoteValue(x)
	}
	return out
}

func quoteValue(x any) any {
	switch v := x.(type) {
	case string:
		return ShellQuote(v)
	case map[string]any:
		return quoteVars(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = quoteValue(e)
		}
		return out
	case nil, bool, int, int64, uint64, float64:
		return v
	default:
		return ShellQuote(fmt.Sprint(v))
	}
}

// ShellQuote quotes s for a POSIX shell. Strings made only of safe
// characters are returned as they are, to keep commands readable.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RenderCheck renders the templates of a check for one host: addresses,
// URLs and log paths plainly, commands with RenderCommand.
func RenderCheck(c CheckSpec, data TemplateData) (CheckSpec, error) {
	return renderCheck(c, "check "+c.Name, data, func(name, text string) (string, error) {
		return RenderCommand(name, text, data)
	})
}

// renderCheck renders every template of c with data, and its command with
// command, which quotes values for the shell.
func renderCheck(c CheckSpec, where string, data any, command func(name, text string) (string, error)) (CheckSpec, error) {
	out := c
	var err error
	if out.Address, err = Render(where+" address", c.Address, data); err != nil {
		return out, err
	}
	if out.URL, err = Render(where+" url", c.URL, data); err != nil {
		return out, err
	}
	if out.ExpectBody, err = Render(where+" expect_body", c.ExpectBody, data); err != nil {
		return out, err
	}
	// A log check's path is a file name, never a command: rendered
	// plainly. Its pattern is a regexp and no template, so `\d{2}` and a
	// literal "{{" mean what they say.
	if out.Path, err = Render(where+" path", c.Path, data); err != nil {
		return out, err
	}
	if len(c.ExpectHeaders) > 0 {
		out.ExpectHeaders = make(map[string]string, len(c.ExpectHeaders))
		for k, v := range c.ExpectHeaders {
			if out.ExpectHeaders[k], err = Render(where+" header "+k, v, data); err != nil {
				return out, err
			}
		}
	}
	if out.Command, err = command(where+" command", c.Command); err != nil {
		return out, err
	}
	return out, nil
}

// RenderedFile is one config file rendered for one host.
type RenderedFile struct {
	Dest    string // path inside the release directory
	Content []byte
}

// ConfigHash identifies a host's rendered config: sha256 over each file's
// destination and content, in the order given (the config_files order). The
// controller computes it to decide whether a host is already up to date and
// the host records it when staging, so both must use this one function.
func ConfigHash(files []RenderedFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Dest, len(f.Content))
		h.Write(f.Content)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RenderConfigFiles renders every config file for one host. template
// returns a template's text by its path inside the release. root is the
// directory the files will live in, so .Path can name the real file.
func RenderConfigFiles(files []ConfigFile, template func(path string) ([]byte, error), data TemplateData) ([]RenderedFile, error) {
	out := make([]RenderedFile, 0, len(files))
	for _, f := range files {
		text, err := template(f.Template)
		if err != nil {
			return nil, err
		}
		s, err := Render(f.Template, string(text), data)
		if err != nil {
			return nil, err
		}
		out = append(out, RenderedFile{Dest: f.Dest, Content: []byte(s)})
	}
	return out, nil
}

// parsed caches parsed templates: a deploy renders the same few hook and
// check templates for every host and step, and parsing, not executing,
// was most of that cost. A parsed template may be executed concurrently.
var parsed struct {
	sync.Mutex
	m map[parsedKey]*template.Template
}

type parsedKey struct {
	name, text string
	quoted     bool
}

// parseCached parses text as template name; quoted templates see an
// identity quote (their data is quoted already), others ShellQuote. At
// most 4096 templates are kept.
func parseCached(name, text string, quoted bool) (*template.Template, error) {
	k := parsedKey{name, text, quoted}
	parsed.Lock()
	t := parsed.m[k]
	parsed.Unlock()
	if t != nil {
		return t, nil
	}
	quote := ShellQuote
	if quoted {
		quote = func(s string) string { return s }
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{"quote": quote}).Parse(text)
	if err != nil {
		return nil, err
	}
	parsed.Lock()
	if parsed.m == nil {
		parsed.m = map[parsedKey]*template.Template{}
	}
	if len(parsed.m) < 4096 {
		parsed.m[k] = t
	}
	parsed.Unlock()
	return t, nil
}
