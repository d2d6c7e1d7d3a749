package runner

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"drover"
)

// SelectHosts returns the hosts a --limit selects: comma-separated patterns
// on host names, "!pattern" to exclude. A pattern is a glob (h0*, h1?,
// web[ab]) and may hold one numeric range, h[01:10], which stands for h01
// to h10 — the digits of the lower bound give the width, so h[1:10] is h1
// to h10 and h[001:100] is h001 to h100. An empty limit selects every host.
//
// A pattern that matches nothing is an error rather than a no-op: a typo in
// --limit must not quietly deploy to nothing — or, with a negation, to
// everything (the forgotten --limit of docs/why.md).
func SelectHosts(s *drover.Spec, limit string) (map[string]bool, error) {
	sel := map[string]bool{}
	limit = strings.TrimSpace(limit)
	if limit == "" {
		for _, h := range s.Hosts {
			sel[h.Name] = true
		}
		return sel, nil
	}
	var include, exclude []hostPattern
	for _, p := range strings.Split(limit, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		hp, err := parseHostPattern(strings.TrimPrefix(p, "!"))
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "--limit %q: %v", p, err).WithHint(limitHint)
		}
		if neg {
			exclude = append(exclude, hp)
		} else {
			include = append(include, hp)
		}
	}
	if len(include) == 0 {
		include = []hostPattern{{text: "*", globs: []string{"*"}}}
	}
	for _, p := range include {
		n := 0
		for _, h := range s.Hosts {
			if p.match(h.Name) {
				sel[h.Name] = true
				n++
			}
		}
		if n == 0 {
			return nil, drover.Errorf(drover.EINVALID, "--limit %q matches no host in %s", p.text, s.Source).WithHint("hosts are: " + hostList(s))
		}
	}
	for _, p := range exclude {
		n := 0
		for name := range sel {
			if p.match(name) {
				delete(sel, name)
				n++
			}
		}
		if n == 0 {
			return nil, drover.Errorf(drover.EINVALID, "--limit \"!%s\" excludes no host", p.text).WithHint("hosts are: " + hostList(s))
		}
	}
	if len(sel) == 0 {
		return nil, drover.Errorf(drover.EINVALID, "--limit %q leaves no host to deploy to", limit).WithHint("its exclusions (!PATTERN) remove every host it includes; hosts are: " + hostList(s))
	}
	return sel, nil
}

const limitHint = "use host names, globs like h0* and ranges like h[01:10], separated by commas; !PATTERN excludes"

// maxRange bounds how many names one range stands for: h[0:99999999]
// is a typo, not a fleet, and expanding it would take the machine down.
const maxRange = 100000

// rangeRE finds a numeric range: [from:to], digits only.
var rangeRE = regexp.MustCompile(`\[(\d+):(\d+)\]`)

// hostPattern is one --limit pattern: the globs it stands for (a range
// expanded, one glob per number).
type hostPattern struct {
	text  string
	globs []string
}

func parseHostPattern(p string) (hostPattern, error) {
	hp := hostPattern{text: p}
	locs := rangeRE.FindAllStringSubmatchIndex(p, -1)
	switch len(locs) {
	case 0:
		hp.globs = []string{p}
	case 1:
		loc := locs[0]
		lo, hi := p[loc[2]:loc[3]], p[loc[4]:loc[5]]
		from, err1 := strconv.Atoi(lo)
		to, err2 := strconv.Atoi(hi)
		switch {
		case err1 != nil || err2 != nil:
			return hp, fmt.Errorf("range [%s:%s] is out of bounds", lo, hi)
		case from > to:
			return hp, fmt.Errorf("range [%s:%s] runs backwards", lo, hi)
		case to-from >= maxRange:
			return hp, fmt.Errorf("range [%s:%s] names more than %d hosts", lo, hi, maxRange)
		}
		prefix, suffix := p[:loc[0]], p[loc[1]:]
		for n := from; n <= to; n++ {
			hp.globs = append(hp.globs, fmt.Sprintf("%s%0*d%s", prefix, len(lo), n, suffix))
		}
	default:
		return hp, fmt.Errorf("only one range like [01:10] per pattern")
	}
	for _, g := range hp.globs {
		if _, err := path.Match(g, ""); err != nil {
			return hp, fmt.Errorf("bad pattern: %v", err)
		}
	}
	return hp, nil
}

func (hp hostPattern) match(name string) bool {
	for _, g := range hp.globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
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

// ConfirmGroups names the groups with confirm: true that a deploy limited
// by limit reaches, in file order: the questions it will ask a person. The
// CLI without a terminal and the server (which has none) refuse such a
// deploy before it starts unless it was confirmed in advance: finding out
// after the canary was switched would leave the fleet half-deployed,
// waiting on a prompt nobody sees.
func ConfirmGroups(s *drover.Spec, limit string) ([]string, error) {
	targets, err := SelectHosts(s, limit)
	if err != nil {
		return nil, err
	}
	var asks []string
	for _, g := range s.Groups {
		if !g.Confirm {
			continue
		}
		for _, h := range g.Hosts {
			if targets[h] {
				asks = append(asks, g.Name)
				break
			}
		}
	}
	return asks, nil
}
