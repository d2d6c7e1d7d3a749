package config

import (
	"slices"
	"strings"

	"drover"
)

// RequiresFile is environments.NAME.requires: the environment releases
// must come from, and how long they must have run there (promotion.go in
// package drover; rollout.Promotable decides).
//
//	environments:
//	  prod:
//	    requires: {env: staging, soak: 30m}
type RequiresFile struct {
	Env  string `yaml:"env"`
	Soak string `yaml:"soak"`
}

// checkRequires validates every environment's requires and returns them
// by environment, without their hosts (withRequires adds them once the
// fleets are resolved).
func (f *File) checkRequires(ps *problems) map[string]*drover.Requirement {
	out := map[string]*drover.Requirement{}
	for _, name := range f.envNames() {
		r := f.Environments[name].Requires
		if r == nil {
			continue
		}
		at := p("environments", name, "requires")
		req := &drover.Requirement{Env: r.Env, Soak: f.nonNegativeDuration(ps, at.with("soak"), r.Soak, 0)}
		switch _, known := f.Environments[r.Env]; {
		case r.Env == "":
			ps.add(at, "name the environment releases must come from, e.g. requires: {env: staging, soak: 30m}",
				"environments.%s.requires.env: required", name)
			continue
		case r.Env == name:
			ps.add(at.with("env"), "name another environment, or remove requires",
				"environments.%s.requires.env: %s cannot require itself", name, name)
			continue
		case !known:
			ps.add(at.with("env"), "known environments: "+strings.Join(f.envNames(), ", "),
				"environments.%s.requires.env: unknown environment %q", name, r.Env)
			continue
		}
		out[name] = req
	}
	// A cycle (prod requires staging requires prod) can never be met: no
	// release could reach either environment first.
	for _, name := range f.envNames() {
		chain := []string{name}
		for next := out[name]; next != nil; next = out[next.Env] {
			if next.Env == name {
				ps.add(p("environments", name, "requires", "env"), "remove requires from one of them: the first environment of a chain requires nothing",
					"environments.%s.requires: a cycle, %s", name, strings.Join(append(chain, name), " → "))
				break
			}
			if slices.Contains(chain, next.Env) {
				break // a cycle not through name: reported at its own members
			}
			chain = append(chain, next.Env)
		}
	}
	return out
}

// withRequires sets each environment's Requires, with the required
// environment's hosts, and RequiredBy.
func withRequires(specs map[string]*drover.Spec, reqs map[string]*drover.Requirement) {
	for name, req := range reqs {
		s, from := specs[name], specs[req.Env]
		if s == nil || from == nil {
			continue
		}
		r := *req
		for _, h := range from.Hosts {
			r.Hosts = append(r.Hosts, h.Name)
		}
		s.Requires = &r
		from.RequiredBy = append(from.RequiredBy, name)
		slices.Sort(from.RequiredBy)
	}
}
