package report

import (
	"drover"
	"drover/runner"
)

// EnvSide is one environment's hosts of one group, as `drover diff`
// compares them.
type EnvSide struct {
	Hosts        int            `json:"hosts"`
	Unreachable  int            `json:"unreachable,omitempty"`
	Releases     map[string]int `json:"releases"`
	Versions     map[string]int `json:"versions"`
	ConfigHashes map[string]int `json:"config_hashes"`
}

// GroupDiff compares one group across two environments.
type GroupDiff struct {
	Group string `json:"group"`
	// A and B are nil when the environment has no such group.
	A *EnvSide `json:"a"`
	B *EnvSide `json:"b"`
	// Differs names what is not the same: group, release, version, config.
	Differs []string `json:"differs"`
}

// EnvDiff is what `drover diff` reports.
type EnvDiff struct {
	Service string      `json:"service"`
	A       string      `json:"env_a"`
	B       string      `json:"env_b"`
	Groups  []GroupDiff `json:"groups"`
	// ReleaseA and ReleaseB are the one release every host of each runs
	// ("" when its hosts run several, or one is unreachable); SameRelease
	// says both run the same one, by release ID, which carries the
	// content hash: the same version built twice is not the same release.
	ReleaseA    string `json:"release_a"`
	ReleaseB    string `json:"release_b"`
	SameRelease bool   `json:"same_release"`
	// Unreachable counts the hosts of both sides whose state could not be
	// read.
	Unreachable int `json:"-"`
}

// EnvSurvey is one environment's hosts, group by group.
type EnvSurvey struct {
	// Order is the groups in the environment's order.
	Order []string
	Sides map[string]*EnvSide
}

// Survey sums up the hosts of one environment, group by group in the
// groups' order; hosts of no listed group are left out.
func Survey(groups []drover.Group, hosts []runner.HostStatus) EnvSurvey {
	s := EnvSurvey{Sides: map[string]*EnvSide{}}
	for _, g := range groups {
		s.Order = append(s.Order, g.Name)
		s.Sides[g.Name] = &EnvSide{Releases: map[string]int{}, Versions: map[string]int{}, ConfigHashes: map[string]int{}}
	}
	for _, h := range hosts {
		side := s.Sides[h.Group]
		if side == nil {
			continue
		}
		side.Hosts++
		if !h.Reachable {
			side.Unreachable++
			continue
		}
		side.Releases[dash(drover.SlotRelease(h.Release))]++
		side.Versions[dash(h.Version)]++
		side.ConfigHashes[dash(h.ConfigHash)]++
	}
	return s
}

// Diff compares environments a and b (named nameA and nameB) group by
// group: a's groups in order, then those only b has. Config is rendered
// per host, so hosts with their own vars differ in config hash by design;
// the comparison is of the sets of values, not of their counts.
func Diff(service, nameA, nameB string, a, b EnvSurvey) EnvDiff {
	d := EnvDiff{Service: service, A: nameA, B: nameB, Groups: []GroupDiff{}}
	seen := map[string]bool{}
	for _, g := range append(append([]string{}, a.Order...), b.Order...) {
		if seen[g] {
			continue
		}
		seen[g] = true
		gd := GroupDiff{Group: g, A: a.Sides[g], B: b.Sides[g], Differs: []string{}}
		for _, s := range []*EnvSide{gd.A, gd.B} {
			if s != nil {
				d.Unreachable += s.Unreachable
			}
		}
		switch {
		case gd.A == nil || gd.B == nil:
			gd.Differs = append(gd.Differs, "group")
		default:
			if !sameKeys(gd.A.Releases, gd.B.Releases) {
				gd.Differs = append(gd.Differs, "release")
			}
			if !sameKeys(gd.A.Versions, gd.B.Versions) {
				gd.Differs = append(gd.Differs, "version")
			}
			if !sameKeys(gd.A.ConfigHashes, gd.B.ConfigHashes) {
				gd.Differs = append(gd.Differs, "config")
			}
		}
		d.Groups = append(d.Groups, gd)
	}
	d.ReleaseA, d.ReleaseB = oneRelease(a.Sides), oneRelease(b.Sides)
	d.SameRelease = d.ReleaseA != "" && d.ReleaseA == d.ReleaseB
	return d
}

// oneRelease is the release every host of sides runs, "" when they run
// several, one runs none or one did not answer.
func oneRelease(sides map[string]*EnvSide) string {
	one := ""
	for _, s := range sides {
		if s.Unreachable > 0 {
			return ""
		}
		for rel := range s.Releases {
			if rel == "-" || (one != "" && rel != one) {
				return ""
			}
			one = rel
		}
	}
	return one
}

// sameKeys reports whether a and b hold the same values, whatever their
// counts.
func sameKeys(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}
