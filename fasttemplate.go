package drover

import (
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// fastTemplate is a parsed template made only of text and lookups of
// TemplateData's fields — `depool {{.Host.Name}}`, `port={{.Host.Vars.port}}`,
// what nearly every hook, check and config template is — executed without
// text/template's reflection. A deploy renders each of these once per host
// and step: at 10,000 hosts 70,000 executions were ~0.8 s of CPU, and the
// deep frames of text/template's evaluator grew every step goroutine's
// stack (bench/README.md). Anything else, and any value or error this
// does not print exactly as text/template would, is left to text/template
// (execute returns false), so the output is always text/template's.
type fastTemplate struct{ parts []fastPart }

type fastPart struct {
	text  string // field == fieldText
	field fastField
	key   string // the key of .Host.Vars.key
	// word is the quoting a command template appends to every action
	// (compileCommand): 0 none, 1 droverWord, 2 droverWordPart.
	word int
}

type fastField uint8

const (
	fieldText fastField = iota
	fieldHostName
	fieldHostAddress
	fieldHostVar
	fieldReleaseID
	fieldReleaseVersion
	fieldService
	fieldEnv
	fieldRoot
	fieldPath
)

// compileFast returns t's fast form, or nil when t has anything but text
// and single field lookups (a pipeline, a function, a condition, a
// variable, another template). command: t was rewritten by compileCommand,
// each action ending in droverWord or droverWordPart.
func compileFast(t *template.Template, command bool) *fastTemplate {
	if t == nil || t.Tree == nil || t.Tree.Root == nil || len(t.Templates()) > 1 {
		return nil
	}
	f := &fastTemplate{}
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			f.parts = append(f.parts, fastPart{text: string(n.Text)})
		case *parse.ActionNode:
			p, ok := fastAction(n.Pipe, command)
			if !ok {
				return nil
			}
			f.parts = append(f.parts, p)
		default:
			return nil
		}
	}
	return f
}

// fastFields are the fields the fast path reads, by their template name.
var fastFields = map[string]fastField{
	"Host.Name": fieldHostName, "Host.Address": fieldHostAddress,
	"Release.ID": fieldReleaseID, "Release.Version": fieldReleaseVersion,
	"Service": fieldService, "Env": fieldEnv, "Root": fieldRoot, "Path": fieldPath,
}

func fastAction(pipe *parse.PipeNode, command bool) (fastPart, bool) {
	var p fastPart
	if pipe == nil || len(pipe.Decl) > 0 || pipe.IsAssign {
		return p, false
	}
	want := 1
	if command {
		want = 2
	}
	if len(pipe.Cmds) != want || len(pipe.Cmds[0].Args) != 1 {
		return p, false
	}
	if command {
		q := pipe.Cmds[1].Args
		id, ok := q[0].(*parse.IdentifierNode)
		if len(q) != 1 || !ok {
			return p, false
		}
		switch id.Ident {
		case "droverWord":
			p.word = 1
		case "droverWordPart":
			p.word = 2
		default:
			return p, false
		}
	}
	fn, ok := pipe.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok {
		return p, false
	}
	if f, ok := fastFields[strings.Join(fn.Ident, ".")]; ok {
		p.field = f
	} else if len(fn.Ident) == 3 && fn.Ident[0] == "Host" && fn.Ident[1] == "Vars" {
		p.field, p.key = fieldHostVar, fn.Ident[2]
	} else {
		return p, false
	}
	return p, true
}

// execute renders f with d; false leaves it to text/template: a missing
// var (missingkey=error), a var that is not a string, number or bool, a
// value quoting refuses — so every error message is text/template's.
func (f *fastTemplate) execute(d *TemplateData) (string, bool) {
	var b strings.Builder
	for _, p := range f.parts {
		var s string
		switch p.field {
		case fieldText:
			b.WriteString(p.text)
			continue
		case fieldHostName:
			s = d.Host.Name
		case fieldHostAddress:
			s = d.Host.Address
		case fieldHostVar:
			v, ok := d.Host.Vars[p.key]
			if !ok {
				return "", false
			}
			// text/template prints these as fmt.Print does; pointers it
			// dereferences and nil it prints as "<no value>": left to it.
			switch v := v.(type) {
			case string:
				s = v
			case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
				s = fmt.Sprint(v)
			default:
				return "", false
			}
		case fieldReleaseID:
			s = d.Release.ID
		case fieldReleaseVersion:
			s = d.Release.Version
		case fieldService:
			s = d.Service
		case fieldEnv:
			s = d.Env
		case fieldRoot:
			s = d.Root
		case fieldPath:
			s = d.Path
		}
		if p.word != 0 {
			q, err := quoteString(s, p.word == 2)
			if err != nil {
				return "", false
			}
			s = q
		}
		b.WriteString(s)
	}
	return b.String(), true
}
