package config

import (
	"errors"
	"sort"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"drover"
)

// maxDecodeProblems bounds how many decode problems one load reports (and
// how many times the file is decoded again): enough for any hand-written
// file, and a generated one with thousands of bad keys cannot make a load
// take quadratic time.
const maxDecodeProblems = 50

// decodeAll decodes body strictly into f and returns every problem the
// decoder finds, not only its first: each time it refuses a key (unknown,
// or a value of the wrong type), the key is taken out of the tree and the
// file decoded again. A person fixing a file one error per run would
// otherwise need as many runs as mistakes (three misspelled keys on lines
// 10, 11 and 42 were reported one at a time). The problems come back
// ordered by line, joined with errors.Join; nil when there is none.
func (f *File) decodeAll(body ast.Node) error {
	var errs []*drover.Error
	for len(errs) < maxDecodeProblems {
		fresh := File{filename: f.filename, dir: f.dir, loc: f.loc}
		*f = fresh
		err := yaml.NodeToValue(body, f, yaml.DisallowUnknownField())
		if err == nil {
			break
		}
		errs = append(errs, f.yamlError(err))
		var ye yaml.Error
		if !errors.As(err, &ye) || !removeKeyOf(body, ye.GetToken()) {
			// Not a key's fault (or not one we can take out): what
			// follows it cannot be trusted to decode.
			break
		}
	}
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return errs[0]
	}
	sort.SliceStable(errs, func(i, j int) bool { return lineOf(errs[i].Where) < lineOf(errs[j].Where) })
	joined := make([]error, len(errs))
	for i, e := range errs {
		joined[i] = e
	}
	return errors.Join(joined...)
}

// lineOf is the line of a "file:line" place, 0 when it has none.
func lineOf(where string) int {
	n, mul := 0, 1
	for i := len(where) - 1; i >= 0; i-- {
		c := where[i]
		if c < '0' || c > '9' {
			if c != ':' {
				return 0
			}
			return n
		}
		n += int(c-'0') * mul
		mul *= 10
	}
	return 0
}

// removeKeyOf removes from the tree under n the mapping entry whose key is
// tk, or whose scalar value is tk. It reports whether it found one.
func removeKeyOf(n ast.Node, tk *token.Token) bool {
	if tk == nil || n == nil {
		return false
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		for i, mv := range v.Values {
			if sameToken(mv.Key.GetToken(), tk) || (mv.Value != nil && isScalar(mv.Value) && sameToken(mv.Value.GetToken(), tk)) {
				v.Values = append(v.Values[:i:i], v.Values[i+1:]...)
				return true
			}
			if removeKeyOf(mv.Value, tk) {
				return true
			}
		}
	case *ast.MappingValueNode:
		return removeKeyOf(v.Value, tk)
	case *ast.SequenceNode:
		for _, e := range v.Values {
			if removeKeyOf(e, tk) {
				return true
			}
		}
	case *ast.TagNode:
		return removeKeyOf(v.Value, tk)
	case *ast.AnchorNode:
		return removeKeyOf(v.Value, tk)
	}
	return false
}

func isScalar(n ast.Node) bool {
	_, ok := n.(ast.ScalarNode)
	return ok
}
