package config

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// yaml11 converts a YAML node to a value as Ansible's PyYAML (YAML 1.1)
// reads it, which is what a playbook sees: plain yes/no/on/off are
// booleans (`become: yes`), 0o10 is text, 010 is octal. Mappings stay
// ordered (yaml.MapSlice) so hosts keep the file's order. goccy/go-yaml
// reads YAML 1.2, where `yes` is a string: vars read with it would differ
// from what Ansible gives the same host.
func yaml11(n ast.Node, anchors map[string]ast.Node, depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("nested too deep")
	}
	switch v := n.(type) {
	case nil:
		return nil, nil
	case *ast.DocumentNode:
		return yaml11(v.Body, anchors, depth+1)
	case *ast.TagNode:
		if tag := v.Start.Value; tag == "!vault" || tag == "!unsafe" {
			return nil, fmt.Errorf("line %d: %s values are not supported: drover cannot read Ansible Vault; put the value in the host's environment", v.Start.Position.Line, tag)
		}
		return yaml11(v.Value, anchors, depth+1)
	case *ast.AnchorNode:
		return yaml11(v.Value, anchors, depth+1)
	case *ast.AliasNode:
		target := anchors[v.Value.GetToken().Value]
		if target == nil {
			return nil, fmt.Errorf("line %d: alias %s names no anchor", v.Start.Position.Line, v.Value.GetToken().Value)
		}
		return yaml11(target, anchors, depth+1)
	case *ast.MappingNode:
		return yaml11Map(v.Values, anchors, depth)
	case *ast.MappingValueNode:
		return yaml11Map([]*ast.MappingValueNode{v}, anchors, depth)
	case *ast.SequenceNode:
		out := make([]any, 0, len(v.Values))
		for _, e := range v.Values {
			x, err := yaml11(e, anchors, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case *ast.StringNode:
		if v.Token != nil && v.Token.Type == token.StringType {
			switch v.Value {
			case "yes", "Yes", "YES", "on", "On", "ON":
				return true, nil
			case "no", "No", "NO", "off", "Off", "OFF":
				return false, nil
			}
		}
		return v.Value, nil
	case *ast.IntegerNode:
		if lit := strings.ToLower(strings.TrimLeft(v.Token.Value, "+-")); strings.HasPrefix(lit, "0o") {
			return v.Token.Value, nil
		}
		return plain(v.Value), nil
	}
	var out any
	if err := yaml.NodeToValue(n, &out); err != nil {
		return nil, err
	}
	return plain(out), nil
}

func yaml11Map(values []*ast.MappingValueNode, anchors map[string]ast.Node, depth int) (any, error) {
	out := yaml.MapSlice{}
	index := map[string]int{}
	set := func(k string, v any, merged bool) {
		if i, ok := index[k]; ok {
			if !merged {
				out[i].Value = v
			}
			return
		}
		index[k] = len(out)
		out = append(out, yaml.MapItem{Key: k, Value: v})
	}
	var merges []yaml.MapSlice
	for _, mv := range values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			v, err := yaml11(mv.Value, anchors, depth+1)
			if err != nil {
				return nil, err
			}
			switch m := v.(type) {
			case yaml.MapSlice:
				merges = append(merges, m)
			case []any:
				for _, e := range m {
					if ms, ok := e.(yaml.MapSlice); ok {
						merges = append(merges, ms)
					}
				}
			}
			continue
		}
		k, err := yaml11(mv.Key, anchors, depth+1)
		if err != nil {
			return nil, err
		}
		v, err := yaml11(mv.Value, anchors, depth+1)
		if err != nil {
			return nil, err
		}
		key := ""
		if k != nil {
			key = fmt.Sprint(k)
		}
		set(key, v, false)
	}
	// Merged keys never override the mapping's own.
	for _, m := range merges {
		for _, kv := range m {
			set(fmt.Sprint(kv.Key), kv.Value, true)
		}
	}
	return out, nil
}

// parseYAML11 parses data and returns its first document as yaml11 reads
// it, with the locator of its body for line numbers.
func parseYAML11(data []byte) (any, *locator, error) {
	file, err := parserParse(data)
	if err != nil {
		return nil, nil, err
	}
	if len(file.Docs) == 0 || file.Docs[0].Body == nil {
		return nil, nil, nil
	}
	body := file.Docs[0].Body
	loc := newLocator(body)
	v, err := yaml11(body, loc.anchors, 0)
	return v, loc, err
}
