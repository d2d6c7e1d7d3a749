// Package jsonpath reads one value out of a decoded JSON document with a
// small subset of JSONPath: a leading $, then .key steps (a key of letters,
// digits, '_' and '-') and [n] index steps, as in $.orders.count or
// $.shards[0].rows. That is all an invariant needs to name a number in a
// statistics document; filters and wildcards would make "the value" a
// list, and a rule that compares lists compares nothing an operator meant.
//
// Paths are parsed when the config is loaded, so a typo is a file:line
// error before anything is touched; Get says how far a path got in a
// document, so "no key "count" in $.orders (keys: total, items)" points at
// the statistics endpoint's change rather than at drover.
package jsonpath

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Path is a parsed path.
type Path struct {
	src   string
	steps []step
}

type step struct {
	key   string
	index int // when key == "" and isIndex
	isIdx bool
}

// Parse parses s. The error says what is wrong and at which character.
func Parse(s string) (Path, error) {
	if !strings.HasPrefix(s, "$") {
		return Path{}, fmt.Errorf("path %q must start with $, like $.orders.count", s)
	}
	p := Path{src: s}
	i := 1
	for i < len(s) {
		switch s[i] {
		case '.':
			j := i + 1
			for j < len(s) && keyChar(s[j]) {
				j++
			}
			if j == i+1 {
				return Path{}, fmt.Errorf("path %q: a key must follow '.' at character %d (keys use letters, digits, '_' and '-')", s, i+1)
			}
			p.steps = append(p.steps, step{key: s[i+1 : j]})
			i = j
		case '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return Path{}, fmt.Errorf("path %q: '[' at character %d is never closed", s, i+1)
			}
			n, err := strconv.Atoi(s[i+1 : i+j])
			if err != nil || n < 0 || strings.HasPrefix(s[i+1:i+j], "+") {
				return Path{}, fmt.Errorf("path %q: [%s] at character %d is not an index (a whole number from 0)", s, s[i+1:i+j], i+1)
			}
			p.steps = append(p.steps, step{index: n, isIdx: true})
			i += j + 1
		default:
			return Path{}, fmt.Errorf("path %q: unexpected %q at character %d; write .key or [n]", s, s[i], i+1)
		}
	}
	return p, nil
}

func keyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// String returns the path as written.
func (p Path) String() string { return p.src }

// Get returns the value at p in doc, a document decoded by encoding/json
// (objects as map[string]any, arrays as []any). The error names the
// longest prefix of the path that was found and what was there instead.
func (p Path) Get(doc any) (any, error) {
	cur := doc
	at := "$"
	for _, st := range p.steps {
		switch v := cur.(type) {
		case map[string]any:
			if st.isIdx {
				return nil, fmt.Errorf("%s is an object, not an array: [%d] does not apply", at, st.index)
			}
			next, ok := v[st.key]
			if !ok {
				return nil, fmt.Errorf("no key %q in %s (keys: %s)", st.key, at, keyList(v))
			}
			cur, at = next, at+"."+st.key
		case []any:
			if !st.isIdx {
				return nil, fmt.Errorf("%s is an array, not an object: .%s does not apply", at, st.key)
			}
			if st.index >= len(v) {
				return nil, fmt.Errorf("%s has %d elements: [%d] is out of range", at, len(v), st.index)
			}
			cur, at = v[st.index], fmt.Sprintf("%s[%d]", at, st.index)
		default:
			what := ".%s"
			arg := any(st.key)
			if st.isIdx {
				what, arg = "[%d]", st.index
			}
			return nil, fmt.Errorf("%s is %s: "+what+" does not apply", at, Describe(cur), arg)
		}
	}
	return cur, nil
}

func keyList(m map[string]any) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	if len(keys) > 10 {
		return strings.Join(keys[:10], ", ") + fmt.Sprintf(" and %d more", len(keys)-10)
	}
	return strings.Join(keys, ", ")
}

// Describe says what kind of JSON value v is, for errors: "a number",
// "a string", "an object".
func Describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
