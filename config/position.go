package config

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// A path names a place in the file: string segments are mapping keys, int
// segments sequence indexes, as in groups[1].batch.
type keyPath []any

// p builds a path.
func p(segs ...any) keyPath { return segs }

// with returns a new path with segs appended; the receiver is never shared.
func (pt keyPath) with(segs ...any) keyPath {
	out := make(keyPath, 0, len(pt)+len(segs))
	return append(append(out, pt...), segs...)
}

// String renders the path the way the file reads: groups[1].batch.
func (pt keyPath) String() string {
	var b strings.Builder
	for _, s := range pt {
		switch s := s.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, s)
		}
	}
	return b.String()
}

// locator finds the line of a path in the parsed document.
type locator struct {
	root    ast.Node
	anchors map[string]ast.Node
}

func newLocator(root ast.Node) *locator {
	l := &locator{root: root, anchors: map[string]ast.Node{}}
	ast.Walk(anchorCollector(l.anchors), root)
	return l
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// line returns the line of the key (for a mapping key) or the entry (for a
// sequence index) the path names. When the path does not exist in full, as
// for a required key that is missing, it returns the line of the deepest
// part that does: the entry the key is missing from.
func (l *locator) line(pt keyPath) int {
	if l == nil || l.root == nil {
		return 0
	}
	n := l.root
	line := nodeLine(n)
	for _, seg := range pt {
		n = l.deref(n)
		switch s := seg.(type) {
		case string:
			mv := l.lookup(n, s, 0)
			if mv == nil {
				return line
			}
			line = mv.Key.GetToken().Position.Line
			n = mv.Value
		case int:
			seq, ok := n.(*ast.SequenceNode)
			if !ok || s < 0 || s >= len(seq.Values) {
				return line
			}
			n = seq.Values[s]
			line = nodeLine(n)
		}
	}
	return line
}

// deref looks through tags, anchors and aliases to the node holding data.
func (l *locator) deref(n ast.Node) ast.Node {
	for i := 0; i < 32 && n != nil; i++ {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			if v.Value == nil {
				return n
			}
			t, ok := l.anchors[v.Value.GetToken().Value]
			if !ok {
				return n
			}
			n = t
		default:
			return n
		}
	}
	return n
}

// lookup finds key in a mapping, following merge keys (<<: *defaults).
func (l *locator) lookup(n ast.Node, key string, depth int) *ast.MappingValueNode {
	if depth > 8 {
		return nil
	}
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		return nil
	}
	for _, mv := range values {
		if mv.Key != nil && mv.Key.Type() != ast.MergeKeyType && mv.Key.GetToken().Value == key {
			return mv
		}
	}
	for _, mv := range values {
		if mv.Key == nil || mv.Key.Type() != ast.MergeKeyType {
			continue
		}
		src := l.deref(mv.Value)
		if seq, ok := src.(*ast.SequenceNode); ok {
			for _, e := range seq.Values {
				if found := l.lookup(l.deref(e), key, depth+1); found != nil {
					return found
				}
			}
			continue
		}
		if found := l.lookup(src, key, depth+1); found != nil {
			return found
		}
	}
	return nil
}

// nodeLine is the line a node starts on; for a block mapping, its first key.
func nodeLine(n ast.Node) int {
	switch v := n.(type) {
	case nil:
		return 0
	case *ast.MappingNode:
		if len(v.Values) > 0 && v.Values[0].Key != nil {
			return v.Values[0].Key.GetToken().Position.Line
		}
	case *ast.MappingValueNode:
		if v.Key != nil {
			return v.Key.GetToken().Position.Line
		}
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Position.Line
	}
	return 0
}

// pathOf returns the path of the node holding tk: for a mapping key token
// the key itself (isKey true), for a value token the key or index holding
// it. ok is false when tk is not in the document.
func (l *locator) pathOf(tk *token.Token) (pt keyPath, isKey, ok bool) {
	if l == nil || tk == nil {
		return nil, false, false
	}
	var walk func(n ast.Node, at keyPath) bool
	walk = func(n ast.Node, at keyPath) bool {
		if n == nil {
			return false
		}
		switch v := n.(type) {
		case *ast.TagNode:
			return walk(v.Value, at)
		case *ast.AnchorNode:
			return walk(v.Value, at)
		case *ast.MappingNode:
			for _, mv := range v.Values {
				if walk(mv, at) {
					return true
				}
			}
		case *ast.MappingValueNode:
			if v.Key == nil {
				return false
			}
			child := at.with(v.Key.GetToken().Value)
			if sameToken(v.Key.GetToken(), tk) {
				pt, isKey, ok = child, true, true
				return true
			}
			return walk(v.Value, child)
		case *ast.SequenceNode:
			for i, e := range v.Values {
				if walk(e, at.with(i)) {
					return true
				}
			}
		}
		if sameToken(n.GetToken(), tk) {
			pt, ok = at, true
			return true
		}
		return false
	}
	walk(l.root, nil)
	return pt, isKey, ok
}

func sameToken(a, b *token.Token) bool {
	if a == nil || b == nil {
		return false
	}
	return a == b || (a.Position.Line == b.Position.Line && a.Position.Column == b.Position.Column && a.Value == b.Value)
}
