package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// pyValue reads an INI inventory value as Ansible does: Python's
// ast.literal_eval when the text is a literal (5, -1, 0x1f, 0.5, 1e3, True,
// None, 'text', "text", [1, 'x'], (1, 2), {'a': 1}), else the text itself.
// Ints become uint64 (int64 when negative) like YAML vars; a trailing
// Python comment is allowed ("5 # five" is 5), as literal_eval allows it.
func pyValue(s string) any {
	p := &pyParser{s: s}
	v, ok := p.value(0)
	if !ok {
		return s
	}
	p.space()
	if p.i != len(p.s) {
		return s
	}
	return v
}

type pyParser struct {
	s string
	i int
}

// space skips blanks and a comment; a leading blank is a syntax error in
// Python (indentation), which value checks before calling space.
func (p *pyParser) space() {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t':
			p.i++
		case c == '#':
			p.i = len(p.s)
		default:
			return
		}
	}
}

func (p *pyParser) inner() { // inside brackets newlines would be fine too
	p.space()
}

func (p *pyParser) value(depth int) (any, bool) {
	if depth > 64 || p.i >= len(p.s) {
		return nil, false
	}
	if depth == 0 {
		p.space() // literal_eval strips leading blanks
		if p.i >= len(p.s) {
			return nil, false
		}
	}
	c := p.s[p.i]
	if (c == 'u' || c == 'U' || c == 'r' || c == 'R') && p.i+1 < len(p.s) && (p.s[p.i+1] == '\'' || p.s[p.i+1] == '"') {
		p.i++
		return p.strs(c == 'r' || c == 'R')
	}
	switch {
	case c == '\'' || c == '"':
		return p.strs(false)
	case c == '[' || c == '(':
		closer := byte(']')
		if c == '(' {
			closer = ')'
		}
		p.i++
		out := []any{}
		trailingComma := false
		for {
			p.inner()
			if p.i < len(p.s) && p.s[p.i] == closer {
				p.i++
				// (x) without a comma is x, not a tuple.
				if c == '(' && len(out) == 1 && !trailingComma {
					return out[0], true
				}
				return out, true
			}
			trailingComma = false
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			out = append(out, v)
			p.inner()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				trailingComma = true
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == closer {
				continue
			}
			return nil, false
		}
	case c == '{':
		p.i++
		out := map[string]any{}
		for {
			p.inner()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return out, true
			}
			k, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			ks, isStr := k.(string)
			if !isStr {
				switch k.(type) {
				case []any, map[string]any:
					return nil, false // unhashable in Python
				}
				ks = fmt.Sprint(k) // JSON keys are text
				if k == nil {
					ks = "null"
				}
			}
			p.inner()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, false
			}
			p.i++
			p.inner()
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			out[ks] = v
			p.inner()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == '}' {
				continue
			}
			return nil, false
		}
	case c == '-' || c == '+':
		p.i++
		p.inner()
		v, ok := p.number()
		if !ok {
			return nil, false
		}
		if c == '+' {
			return v, true
		}
		switch n := v.(type) {
		case uint64:
			switch {
			case n == 0:
				return uint64(0), true
			case n == 1<<63:
				return int64(math.MinInt64), true
			case n > math.MaxInt64:
				return nil, false
			}
			return -int64(n), true
		case float64:
			return -n, true
		}
		return nil, false
	case c >= '0' && c <= '9' || c == '.':
		return p.number()
	}
	for _, w := range []struct {
		word string
		v    any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], w.word) && !identChar(p.s, p.i+len(w.word)) {
			p.i += len(w.word)
			return w.v, true
		}
	}
	return nil, false
}

func identChar(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// number reads a Python int or float literal.
func (p *pyParser) number() (any, bool) {
	start := p.i
	for p.i < len(p.s) && (identChar(p.s, p.i) || p.s[p.i] == '.' ||
		(p.s[p.i] == '+' || p.s[p.i] == '-') && p.i > start && (p.s[p.i-1] == 'e' || p.s[p.i-1] == 'E')) {
		p.i++
	}
	lit := p.s[start:p.i]
	if strings.Contains(lit, "__") || strings.HasSuffix(lit, "_") || strings.HasPrefix(lit, "_") {
		return nil, false
	}
	clean := strings.ReplaceAll(lit, "_", "")
	low := strings.ToLower(clean)
	if len(low) > 2 && low[0] == '0' && (low[1] == 'x' || low[1] == 'o' || low[1] == 'b') {
		base := map[byte]int{'x': 16, 'o': 8, 'b': 2}[low[1]]
		n, err := strconv.ParseUint(low[2:], base, 64)
		return n, err == nil
	}
	if strings.ContainsAny(low, ".e") {
		if strings.ContainsAny(low, "xob") || strings.Contains(lit, "_.") || strings.Contains(lit, "._") {
			return nil, false
		}
		f, err := strconv.ParseFloat(clean, 64)
		return f, err == nil
	}
	for _, r := range low {
		if r < '0' || r > '9' {
			return nil, false
		}
	}
	// Python 3 refuses leading zeros ("010"), except for zero itself.
	if len(low) > 1 && low[0] == '0' && strings.Trim(low, "0") != "" {
		return nil, false
	}
	n, err := strconv.ParseUint(clean, 10, 64)
	return n, err == nil
}

// strs reads adjacent quoted strings, which Python concatenates ('it' 's'
// is "its").
func (p *pyParser) strs(raw bool) (any, bool) {
	var b strings.Builder
	for {
		if !p.str(&b, raw) {
			return nil, false
		}
		save := p.i
		p.space()
		if p.i < len(p.s) && (p.s[p.i] == '\'' || p.s[p.i] == '"') {
			raw = false
			continue
		}
		p.i = save
		return b.String(), true
	}
}

// str reads one quoted Python string with the common escapes (none when
// raw); triple quotes are left to the text fallback.
func (p *pyParser) str(b *strings.Builder, raw bool) bool {
	q := p.s[p.i]
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			return true
		case c == '\\' && raw && p.i+1 < len(p.s):
			b.WriteByte(c)
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case c == '\\' && p.i+1 < len(p.s):
			p.i++
			switch e := p.s[p.i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '\'', '"':
				b.WriteByte(e)
			case '0':
				b.WriteByte(0)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
			p.i++
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return false
}
