package config

import (
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"strings"

	"drover"
)

// fleet is the hosts and groups one environment deploys: the top-level
// lists with the environment's overlay applied, and where each came from
// so errors point at the lines that caused them.
type fleet struct {
	env        string
	hosts      []HostFile
	hostsAt    keyPath
	groups     []GroupFile
	groupsAt   keyPath
	vars       map[string]any
	deployRoot string
	// coverageNote and templateNote are appended to messages about group
	// coverage and template execution when the environment changes the
	// inputs of that rule; otherwise the top-level fleet reports the same
	// problem once, at the same line.
	coverageNote string
	templateNote string
}

func (f *File) fleet(env string) fleet {
	fl := fleet{
		env:        env,
		hosts:      f.Hosts,
		hostsAt:    p("hosts"),
		groups:     f.Groups,
		groupsAt:   p("groups"),
		deployRoot: f.DeployRoot,
	}
	if env == "" {
		return fl
	}
	e := f.Environments[env]
	at := p("environments", env)
	note := fmt.Sprintf(" (environment %s)", env)
	if e.Hosts != nil {
		fl.hosts, fl.hostsAt = e.Hosts, at.with("hosts")
		fl.coverageNote, fl.templateNote = note, note
	}
	if e.Groups != nil {
		fl.groups, fl.groupsAt = e.Groups, at.with("groups")
		fl.coverageNote = note
	}
	if len(e.Vars) > 0 {
		fl.vars = e.Vars
		fl.templateNote = note
	}
	if e.DeployRoot != "" {
		fl.deployRoot = e.DeployRoot
		fl.templateNote = note
	}
	if len(fl.hosts) == 0 {
		fl.hostsAt = at
	}
	if len(fl.groups) == 0 {
		fl.groupsAt = at
	}
	return fl
}

// note returns the environment note for a problem at pt, or "" when pt is
// inside the environment's own block and so names it already.
func (fl fleet) note(pt keyPath, note string) string {
	if len(pt) >= 2 && pt[0] == "environments" && pt[1] == fl.env {
		return ""
	}
	return note
}

// resolve builds the spec of one fleet on top of base (the validated
// top-level settings): hosts with addresses, roots and vars resolved, group
// patterns expanded, portions turned into host counts, and every template
// executed for every host. Problems go to ps; the spec is only used when
// there are none.
func (f *File) resolve(base drover.Spec, fl fleet, ps *problems, tmpls []tmpl) *drover.Spec {
	s := base
	s.Env = fl.env
	s.DeployRoot = fl.deployRoot
	s.Hosts = make([]drover.Host, 0, len(fl.hosts))
	// at[i] is the index in the file of s.Hosts[i].
	at := make([]int, 0, len(fl.hosts))
	byName := map[string]bool{}
	for i, hf := range fl.hosts {
		if !validName.MatchString(hf.Name) || hf.Name == "." || hf.Name == ".." || byName[hf.Name] {
			continue // reported by checkHosts
		}
		byName[hf.Name] = true
		h := drover.Host{
			Name:       hf.Name,
			Address:    hf.Address,
			DeployRoot: hf.DeployRoot,
			Vars:       maps.Clone(hf.Vars),
		}
		if s.Transport == "local" && h.Address != "" {
			if a, err := expandHome(h.Address); err == nil {
				h.Address = f.fromConfigDir(a)
			}
		}
		if h.DeployRoot == "" {
			h.DeployRoot = fl.deployRoot
		}
		if s.Transport == "local" && h.Address != "" {
			// A local host is a directory and its deploy root lives
			// inside it: resolve it here, once, so templates' .Root,
			// status and the transport all see the real path.
			h.DeployRoot = filepath.Join(h.Address, h.DeployRoot)
		}
		if len(fl.vars) > 0 {
			h.Vars = maps.Clone(fl.vars)
			maps.Copy(h.Vars, hf.Vars)
		}
		s.Hosts = append(s.Hosts, h)
		at = append(at, i)
	}

	// A host belongs to the first group that names it: a canary named in
	// "canary" and matched again by the catch-all "*" must be deployed once,
	// with the canaries, never a second time with the rest.
	// With no hosts at all, or a group without valid patterns, the errors
	// below would only restate the one already reported.
	noHosts := len(s.Hosts) == 0
	badGroup := false
	group := make([]int, len(s.Hosts))
	for i := range group {
		group[i] = -1
	}
	s.Groups = make([]drover.Group, 0, len(fl.groups))
	for gi, gf := range fl.groups {
		gat := fl.groupsAt.with(gi)
		g := drover.Group{Name: gf.Name, Smoke: f.checkSmoke(ps, gat.with("smoke"), gf.Smoke)}
		allMatched := len(gf.Hosts) > 0
		badGroup = badGroup || len(gf.Hosts) == 0
		for pi, pat := range gf.Hosts {
			if _, err := path.Match(pat, ""); err != nil || pat == "" {
				allMatched, badGroup = false, true
				continue // reported by checkGroups
			}
			matched := false
			for hi, h := range s.Hosts {
				if ok, _ := path.Match(pat, h.Name); !ok {
					continue
				}
				matched = true
				if group[hi] < 0 {
					group[hi] = gi
				}
			}
			if !matched {
				allMatched = false
				if !noHosts {
					ps.add(gat.with("hosts", pi), "check the spelling; hosts: "+hostList(s.Hosts),
						"%s.hosts[%d]: pattern %q matches no host%s", gat, pi, pat, fl.note(gat, fl.coverageNote))
				}
			}
		}
		for hi, h := range s.Hosts {
			if group[hi] == gi {
				g.Hosts = append(g.Hosts, h.Name)
			}
		}
		if len(g.Hosts) == 0 && allMatched {
			ps.add(gat.with("hosts"), "remove the group, or name hosts no earlier group takes",
				"%s: group %q ends up with no hosts: earlier groups took every host its patterns match%s", gat, gf.Name, fl.note(gat, fl.coverageNote))
		}
		g.Batch, g.FailureLimit = portions(gf, len(g.Hosts))
		f.checkGroupCanary(ps, gat, gf, &g)
		g.AllowAllAtOnce, g.Confirm = gf.AllowAllAtOnce, gf.Confirm
		f.checkAllAtOnce(ps, fl, gat, gf, g)
		s.Groups = append(s.Groups, g)
	}
	for hi := range s.Hosts {
		if group[hi] < 0 {
			if len(fl.groups) > 0 && !badGroup {
				hat := fl.hostsAt.with(at[hi])
				ps.add(hat, `add it to a group or a catch-all pattern like "*"`,
					"host %q is in no group%s", s.Hosts[hi].Name, fl.note(hat, fl.coverageNote))
			}
			continue
		}
		s.Hosts[hi].Group = fl.groups[group[hi]].Name
	}

	f.execTemplates(ps, &s, fl, tmpls)
	for gi, g := range s.Groups {
		f.checkAnalysisTemplates(ps, &s, fl.groupsAt.with(gi), g)
	}
	f.checkServerNames(ps, &s, fl)
	return &s
}

// portions returns the batch and failure limit of a group of n hosts. A
// batch is rounded up and at least 1, and never more than the group; a
// failure limit is rounded down. Bad values were reported by checkGroups
// and fall back to the defaults here.
func portions(g GroupFile, n int) (batch, limit int) {
	batch = 1
	if pt, err := parsePortion(g.Batch); err == nil {
		batch = pt.of(n, true)
	}
	batch = max(1, min(batch, n))
	if pt, err := parsePortion(g.FailureLimit); err == nil {
		limit = pt.of(n, false)
	}
	return batch, limit
}

func hostList(hosts []drover.Host) string {
	const most = 10
	names := make([]string, 0, most)
	for i, h := range hosts {
		if i == most {
			names = append(names, fmt.Sprintf("and %d more", len(hosts)-most))
			break
		}
		names = append(names, h.Name)
	}
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// fromConfigDir makes a local path absolute, relative to the directory of
// the config file (not the working directory), so the same drover.yaml
// means the same fleet wherever drover is run from.
func (f *File) fromConfigDir(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	if f.dir == "" {
		// A File built in code rather than decoded: the working directory.
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return filepath.Join(f.dir, p)
}
