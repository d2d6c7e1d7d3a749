package drover

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/syntax"
)

// fuzzShapes are command templates of every shape CheckCommandTemplate
// accepts: whole words, parts of words, assignment values, command names,
// redirection targets, case patterns, for lists, $(...) inside and outside
// double quotes, ranged map keys, branches, quote and printf, pipelines,
// groups and comments.
var fuzzShapes = []string{
	`echo {{.Host.Vars.a}}`,
	`cmd --x={{.Host.Vars.a}} y{{.Host.Vars.b}}z {{.Host.Vars.a}}{{.Host.Vars.b}}`,
	`X={{.Host.Vars.a}} cmd "lit"{{.Host.Vars.b}}'s'`,
	`x{{.Host.Vars.a}} arg; {{.Host.Vars.b}}/bin/x arg`,
	`cmd > {{.Host.Vars.a}} 2>>x{{.Host.Vars.b}} < {{.Host.Vars.a}}`,
	`case {{.Host.Vars.a}} in {{.Host.Vars.b}}|x) cmd;; y{{.Host.Vars.a}}) cmd2;; esac`,
	`for i in {{.Host.Vars.a}} {{.Host.Vars.b}}; do cmd "$i"; done`,
	`echo "$(cmd {{.Host.Vars.a}})" $(cmd {{.Host.Vars.b}})`,
	`cmd {{range $k, $v := .Host.Vars.m}}--{{$k}}={{$v}} {{end}}`,
	`{{if .Host.Vars.a}}cmd {{.Host.Vars.a}}{{else}}cmd none{{end}}; f{{.Host.Vars.b}}`,
	`cmd {{quote .Host.Vars.a}} {{printf "%s-%s" .Host.Vars.a .Host.Vars.b}}`,
	`cmd ~{{.Host.Vars.a}} {{.Host.Vars.a}}=x ~/{{.Host.Vars.b}}`,
	`if true; then x{{.Host.Vars.a}}; fi; while x{{.Host.Vars.b}}; do :; done`,
	`cmd {{.Host.Vars.a}} | cmd2 {{.Host.Vars.b}} && cmd3 {{.Host.Vars.a}} &`,
	`cmd {{.Host.Vars.a}} # {{.Host.Vars.b}}`,
	`{ cmd {{.Host.Vars.a}}; }; ( cmd {{.Host.Vars.b}} )`,
	`{{- /* a comment */ -}} cmd {{.Host.Name}} {{.Root}} {{.Host.Vars.a}}`,
	`cmd {{.Host.Vars.a}}>out {{.Host.Vars.b}}<in`,
}

// FuzzRenderCommand renders arbitrary values and map keys into every
// accepted template shape and asserts that the parsed command has exactly
// the words the author wrote: the same commands, the same number of
// words, each value inside the word it was written in, never split into
// two or spilling into shell syntax. The reference is the same template
// rendered with plain tokens in place of the values.
func FuzzRenderCommand(f *testing.F) {
	for i := range fuzzShapes {
		f.Add(uint8(i), "plain", "x y", "k")
	}
	f.Add(uint8(1), "$(touch /tmp/pwned)", "'; touch /tmp/pwned; '", "x;touch /tmp/pwned;")
	f.Add(uint8(8), "`id`", `\"'\'`, "k=v w")
	f.Add(uint8(3), "fi", "}", "{")
	f.Add(uint8(12), "root", "~", "*")
	f.Add(uint8(17), "2", "0", "k")
	f.Fuzz(func(t *testing.T, shape uint8, a, b, key string) {
		tmpl := fuzzShapes[int(shape)%len(fuzzShapes)]
		got, err := RenderCommand("fuzz", tmpl, fuzzData(a, b, key))
		if err != nil {
			for _, v := range []string{a, b, key} {
				if _, qerr := syntax.Quote(v, syntax.LangPOSIX); qerr != nil {
					return // a value sh cannot be given: refused, as it must be
				}
			}
			t.Fatalf("%s: %v", tmpl, err)
		}
		tok := func(v, tok string) string {
			if v == "" {
				return "" // keep {{if}} taking the same branch
			}
			return tok
		}
		ta, tb, tk := tok(a, "zqa"), tok(b, "zqb"), tok(key, "zqk")
		ref, err := RenderCommand("fuzz", tmpl, fuzzData(ta, tb, tk))
		if err != nil {
			t.Fatalf("%s with tokens: %v", tmpl, err)
		}
		var pairs []string
		for _, p := range [][2]string{{ta, a}, {tb, b}, {tk, key}} {
			if p[0] != "" {
				pairs = append(pairs, p[0], p[1])
			}
		}
		want, err := shellWords(ref, strings.NewReplacer(pairs...))
		if err != nil {
			t.Fatalf("reference %q: %v", ref, err)
		}
		have, err := shellWords(got, nil)
		if err != nil {
			t.Fatalf("rendered %q does not parse: %v", got, err)
		}
		if !reflect.DeepEqual(have, want) {
			t.Fatalf("template %s\nrendered %q\nwords %q\nwant    %q", tmpl, got, have, want)
		}
	})
}

func fuzzData(a, b, key string) TemplateData {
	vars := map[string]any{"a": a, "b": b, "m": map[string]any{key: b}}
	return NewTemplateData(&Spec{Service: "s"}, Host{Name: "h01", DeployRoot: "/srv/x", Vars: vars}, "id", "v")
}

// shellWords flattens a parsed command into its node kinds and the
// literal value of each word, with tokens replaced by r.
func shellWords(src string, r *strings.Replacer) ([]string, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(src), "")
	if err != nil {
		return nil, err
	}
	var out []string
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case nil:
			return true
		case *syntax.Word:
			if s, ok := wordLiteral(n); ok {
				if r != nil {
					s = r.Replace(s)
				}
				out = append(out, "word "+s)
				return false
			}
			out = append(out, "word*")
		case *syntax.Lit:
			out = append(out, "lit "+n.Value)
		default:
			out = append(out, fmt.Sprintf("%T", n))
		}
		return true
	})
	return out, nil
}

// wordLiteral is what sh makes of a word made only of literal text and
// quotes, or false.
func wordLiteral(w *syntax.Word) (string, bool) {
	var b strings.Builder
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(unescape(p.Value, ""))
		case *syntax.SglQuoted:
			if p.Dollar {
				return "", false
			}
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			if p.Dollar {
				return "", false
			}
			for _, q := range p.Parts {
				l, ok := q.(*syntax.Lit)
				if !ok {
					return "", false
				}
				b.WriteString(unescape(l.Value, "$`\"\\\n"))
			}
		default:
			return "", false
		}
	}
	return b.String(), true
}

// unescape removes the backslashes sh removes: before any character
// outside quotes (only), before those in special inside double quotes.
func unescape(s, special string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (special == "" || strings.IndexByte(special, s[i+1]) >= 0) {
			i++
			if s[i] == '\n' {
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
