package config

import (
	"strconv"
	"strings"

	"drover"
)

// DistributionFile is the distribution block: how release bundles reach
// the hosts.
//
//	distribution:
//	  mode: relay            # direct (the default): this machine pushes to every host
//	  seeds: 4               # hosts this machine pushes to; they relay to the rest
//	  fanout: 4              # hosts each relay host serves
//	  port_range: 41000-41099   # where relays listen on the hosts; default: any free port
type DistributionFile struct {
	Mode      string `yaml:"mode"`
	Seeds     *int   `yaml:"seeds"`
	Fanout    *int   `yaml:"fanout"`
	PortRange string `yaml:"port_range"`
}

// maxFanout bounds seeds and fanout: past it a relay tree is a direct
// push from a few hosts, and a typo (400 for 4) is likelier than intent.
const maxFanout = 64

// checkDistribution validates the distribution block and returns it with
// defaults applied.
func (f *File) checkDistribution(ps *problems) drover.Distribution {
	df := f.Distribution
	at := p("distribution")
	// Direct is the zero value, whether said or left out.
	var out drover.Distribution
	switch df.Mode {
	case "", drover.DistributionDirect:
		for _, c := range []struct {
			key string
			set bool
		}{{"seeds", df.Seeds != nil}, {"fanout", df.Fanout != nil}, {"port_range", df.PortRange != ""}} {
			if c.set {
				ps.add(at.with(c.key), "set distribution.mode: relay to relay bundles host to host, or remove "+c.key,
					"distribution.%s: only used with mode relay", c.key)
			}
		}
		return out
	case drover.DistributionRelay:
		out.Mode = drover.DistributionRelay
	default:
		ps.add(at.with("mode"), `use "direct" (this machine pushes to every host, the default) or "relay" (hosts pass the bundle on)`,
			"distribution.mode: %q is not a distribution mode", df.Mode)
		return out
	}
	out.Fanout, out.Seeds = drover.DefaultRelayFanout, drover.DefaultRelayFanout
	for _, c := range []struct {
		key string
		v   *int
		out *int
	}{{"seeds", df.Seeds, &out.Seeds}, {"fanout", df.Fanout, &out.Fanout}} {
		if c.v == nil {
			continue
		}
		*c.out = *c.v
		if *c.v < 1 || *c.v > maxFanout {
			ps.add(at.with(c.key), "use 1 to "+strconv.Itoa(maxFanout)+"; leave it out for "+strconv.Itoa(drover.DefaultRelayFanout),
				"distribution.%s: %d is out of range", c.key, *c.v)
		}
	}
	if df.PortRange != "" {
		lo, hi, ok := parsePortRange(df.PortRange)
		if !ok {
			ps.add(at.with("port_range"), "write it as FIRST-LAST, e.g. 41000-41099 (ports 1024-65535), or leave it out for any free port",
				"distribution.port_range: %q is not a port range", df.PortRange)
		}
		out.PortMin, out.PortMax = lo, hi
	}
	return out
}

func parsePortRange(s string) (lo, hi int, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		a, b = s, s
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}
