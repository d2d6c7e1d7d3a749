package config

import (
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
	if depth == 0 && (p.s[0] == ' ' || p.s[0] == '\t') {
		return nil, false
	}
	c := p.s[p.i]
	switch {
	case c == '\'' || c == '"':
		return p.str()
	case c == '[' || c == '(':
		closer := byte(']')
		if c == '(' {
			closer = ')'
		}
		p.i++
		out := []any{}
		for {
			p.inner()
			if p.i < len(p.s) && p.s[p.i] == closer {
				p.i++
				// (x) without a comma is x, not a tuple.
				return out, c == '[' || len(out) != 1 || p.s[p.i-2] == ','
			}
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			out = append(out, v)
			p.inner()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
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
				return nil, false
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
			if n > math.MaxInt64 {
				return nil, false
			}
			if n == 0 {
				return uint64(0), true
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

// str reads a quoted Python string with the common escapes; prefixes and
// triple quotes are left to the text fallback.
func (p *pyParser) str() (any, bool) {
	q := p.s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			if p.i < len(p.s) && (p.s[p.i] == '\'' || p.s[p.i] == '"') {
				return nil, false // implicit concatenation
			}
			return b.String(), true
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
	return nil, false
}
