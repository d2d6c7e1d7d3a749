package drover

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
	"text/template"

	"mvdan.cc/sh/v3/syntax"
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
	c := parseCached(name, text)
	if c.err != nil {
		return "", Errorf(EINVALID, "template %s: %v", name, c.err)
	}
	if d, ok := data.(TemplateData); ok && c.fast != nil {
		if s, ok := c.fast.execute(&d); ok {
			return s, nil
		}
	}
	var b bytes.Buffer
	if err := c.t.Execute(&b, data); err != nil {
		return "", Errorf(EINVALID, "template %s: %v", name, err)
	}
	return b.String(), nil
}

// RenderCommand renders a command template for `sh -c`. The template is
// parsed as shell first (CheckCommandTemplate, see shellcommand.go): a
// template putting a value inside quotes, a here-document or anywhere a
// quoted word cannot stand is refused, and the output of every action —
// host name, address, vars, map keys, paths — is quoted with
// syntax.Quote, so a host var like `x; rm -rf /` or `$(id)` stays one word
// of one argument.
func RenderCommand(name, text string, data TemplateData) (string, error) {
	return renderCommand(name, text, data)
}

// renderCommand executes a checked command template over raw data; the
// template quotes every value itself.
func renderCommand(name, text string, data any) (string, error) {
	c := compileCommand(name, text)
	if err := c.err; err != nil {
		e, ok := err.(*Error)
		if !ok {
			return "", Errorf(EINVALID, "template %s: %v", name, err)
		}
		return "", Errorf(EINVALID, "template %s: %s", name, e.Message).WithHint(e.Hint)
	}
	if d, ok := data.(TemplateData); ok && c.fast != nil {
		if s, ok := c.fast.execute(&d); ok {
			return s, nil
		}
	}
	var b bytes.Buffer
	if err := c.t.Execute(&b, data); err != nil {
		return "", Errorf(EINVALID, "template %s: %v", name, err)
	}
	return b.String(), nil
}

// ShellQuote quotes s as one word for a POSIX shell: syntax.Quote's
// quoting, and plain single quotes for the strings it refuses (control
// characters; sh keeps them inside single quotes). It is for the commands
// drover builds itself (paths, the host binary); command templates quote
// their values with quoteWord. Strings made only of safe characters are
// returned as they are, to keep commands readable.
func ShellQuote(s string) string {
	if q, err := syntax.Quote(s, syntax.LangPOSIX); err == nil {
		return q
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
	// Mode (0: DefaultConfigFileMode), Owner and Group are the
	// ConfigFile's.
	Mode         fs.FileMode
	Owner, Group string
}

// FileMode is the mode the file is written with.
func (f RenderedFile) FileMode() fs.FileMode {
	if f.Mode == 0 {
		return DefaultConfigFileMode
	}
	return f.Mode.Perm()
}

// ConfigHash identifies a host's rendered config: sha256 over each file's
// destination and content, in the order given (the config_files order). The
// controller computes it to decide whether a host is already up to date and
// the host records it when staging, so both must use this one function.
func ConfigHash(files []RenderedFile) string {
	h := sha256.New()
	for _, f := range files {
		// A mode or owner other than the default changes the hash, so a
		// host staged before the change is not taken as up to date. The
		// record then starts with NUL, which no Dest can, so it cannot be
		// read as another file's; default files hash as they always did.
		if f.FileMode() != DefaultConfigFileMode || f.Owner != "" || f.Group != "" {
			fmt.Fprintf(h, "\x00mode %o owner %q group %q\x00", f.FileMode(), f.Owner, f.Group)
		}
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
		out = append(out, RenderedFile{Dest: f.Dest, Content: []byte(s), Mode: f.Mode, Owner: f.Owner, Group: f.Group})
	}
	return out, nil
}

// parseCached parses text as template name, whose quote func is
// ShellQuote.
func parseCached(name, text string) cachedTemplate {
	return templates.get(parsedKey{name: name, text: text}, func() (*template.Template, error) {
		return template.New(name).Option("missingkey=error").Funcs(template.FuncMap{"quote": ShellQuote}).Parse(text)
	})
}
