package config

import (
	"testing"

	"drover"
)

func TestConfig_Validate_Distribution(t *testing.T) {
	const fleet = "hosts: [{name: h01, address: /f/1}]\ngroups: [{name: all, hosts: ['*']}]\n"
	runErrCases(t, []errCase{
		{"mode", top + fleet + "distribution:\n  mode: torrent # <-\n", "", `distribution.mode: "torrent" is not a distribution mode`},
		{"fanout zero", top + fleet + "distribution:\n  mode: relay\n  fanout: 0 # <-\n", "", "distribution.fanout: 0 is out of range"},
		{"seeds too many", top + fleet + "distribution:\n  mode: relay\n  seeds: 400 # <-\n", "", "distribution.seeds: 400 is out of range"},
		{"port range", top + fleet + "distribution:\n  mode: relay\n  port_range: 41099-41000 # <-\n", "", `distribution.port_range: "41099-41000" is not a port range`},
		{"privileged ports", top + fleet + "distribution:\n  mode: relay\n  port_range: 80-90 # <-\n", "", "is not a port range"},
		{"fanout without relay", top + fleet + "distribution:\n  fanout: 8 # <-\n", "", "distribution.fanout: only used with mode relay"},
		{"unknown key", top + fleet + "distribution:\n  mode: relay\n  fan_out: 8 # <-\n", "", `unknown key "fan_out" in distribution`},
	})

	for _, c := range []struct {
		yaml string
		want drover.Distribution
	}{
		{"", drover.Distribution{}},
		{"distribution: {mode: direct}\n", drover.Distribution{}},
		{"distribution: {mode: relay}\n", drover.Distribution{Mode: drover.DistributionRelay, Seeds: 4, Fanout: 4}},
		{"distribution: {mode: relay, seeds: 2, fanout: 8, port_range: 41000-41099}\n",
			drover.Distribution{Mode: drover.DistributionRelay, Seeds: 2, Fanout: 8, PortMin: 41000, PortMax: 41099}},
	} {
		s, err := Parse("drover.yaml", []byte(top+fleet+c.yaml), "")
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if s.Distribution != c.want {
			t.Errorf("%q: %+v, want %+v", c.yaml, s.Distribution, c.want)
		}
		if s.Distribution.Relay() != (c.want.Mode == drover.DistributionRelay) {
			t.Errorf("%q: Relay() wrong", c.yaml)
		}
	}
}
