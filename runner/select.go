package runner

import (
	"path"
	"strings"

	"drover"
)

// SelectHosts returns the hosts a --limit selects: comma-separated glob
// patterns on host names, "!pattern" to exclude. An empty limit selects every
// host. A pattern that matches nothing is an error rather than a no-op: a
// typo in --limit must not quietly deploy to nothing — or, with a negation,
// to everything.
func SelectHosts(s *drover.Spec, limit string) (map[string]bool, error) {
	sel := map[string]bool{}
	limit = strings.TrimSpace(limit)
	if limit == "" {
		for _, h := range s.Hosts {
			sel[h.Name] = true
		}
		return sel, nil
	}
	var include, exclude []string
	for _, p := range strings.Split(limit, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.HasPrefix(p, "!") {
			exclude = append(exclude, p[1:])
		} else {
			include = append(include, p)
		}
	}
	if len(include) == 0 {
		include = []string{"*"}
	}
	for _, pats := range [][]string{include, exclude} {
		for _, p := range pats {
			if _, err := path.Match(p, ""); err != nil {
				return nil, drover.Errorf(drover.EINVALID, "--limit %q: bad pattern: %v", p, err).WithHint("use host names or globs like h0*, separated by commas; !PATTERN excludes")
			}
		}
	}
	for _, p := range include {
		n := 0
		for _, h := range s.Hosts {
			if ok, _ := path.Match(p, h.Name); ok {
				sel[h.Name] = true
				n++
			}
		}
		if n == 0 {
			return nil, drover.Errorf(drover.EINVALID, "--limit %q matches no host in %s", p, s.Source).WithHint("hosts are: " + hostList(s))
		}
	}
	for _, p := range exclude {
		n := 0
		for name := range sel {
			if ok, _ := path.Match(p, name); ok {
				delete(sel, name)
				n++
			}
		}
		if n == 0 {
			return nil, drover.Errorf(drover.EINVALID, "--limit \"!%s\" excludes no host", p).WithHint("hosts are: " + hostList(s))
		}
	}
	if len(sel) == 0 {
		return nil, drover.Errorf(drover.EINVALID, "--limit %q leaves no host to deploy to", limit)
	}
	return sel, nil
}

func hostList(s *drover.Spec) string {
	var names []string
	for i, h := range s.Hosts {
		if i == 20 {
			names = append(names, "…")
			break
		}
		names = append(names, h.Name)
	}
	return strings.Join(names, ", ")
}
