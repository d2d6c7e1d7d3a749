package config

import (
	"strings"

	"drover"
)

// BlueGreenFile is the blue_green block, used with strategy: blue-green:
//
//	strategy: blue-green
//	blue_green:
//	  ports: {blue: "{{.Host.Vars.port}}", green: "{{.Host.Vars.green_port}}"}
//	  start_idle: "bin/start-colour {{.Root}} {{.Slot.Color}} {{.Slot.Port}}"
//	  stop_idle: "bin/stop-colour {{.Root}} {{.Slot.Color}}"
//	  keep_old: 30m
//
// Traffic moves through the rotation: rotation.haproxy with a server per
// colour (server: "{{.Host.Name}}-{{.Slot.Color}}"), or hooks.repool and
// hooks.depool, which then see .Slot.
type BlueGreenFile struct {
	Ports     BlueGreenPorts `yaml:"ports"`
	StartIdle string         `yaml:"start_idle"`
	StopIdle  string         `yaml:"stop_idle"`
	KeepOld   string         `yaml:"keep_old"`
}

// BlueGreenPorts are the port templates of the two colours.
type BlueGreenPorts struct {
	Blue  string `yaml:"blue"`
	Green string `yaml:"green"`
}

// checkBlueGreen validates strategy and blue_green.
func (f *File) checkBlueGreen(ps *problems, s *drover.Spec) {
	// Rolling stays "" in the spec: the zero value is the default.
	switch f.Strategy {
	case "", drover.StrategyRolling:
	case drover.StrategyBlueGreen:
		s.Strategy = drover.StrategyBlueGreen
	default:
		ps.add(p("strategy"), `use "rolling" (the default) or "blue-green"`, "strategy: %q is not a strategy", f.Strategy)
		return
	}
	bg := f.BlueGreen
	if s.Strategy != drover.StrategyBlueGreen {
		if bg != nil {
			ps.add(p("blue_green"), "add strategy: blue-green, or remove the blue_green block",
				"blue_green: set, but the strategy is rolling")
		}
		return
	}
	if bg == nil {
		ps.add(p("strategy"), `add a blue_green block: ports: {blue: "{{.Host.Vars.port}}", green: "{{.Host.Vars.green_port}}"}, start_idle and stop_idle`,
			"strategy: blue-green needs the blue_green block: each colour's port and the start_idle and stop_idle hooks")
		return
	}
	at := p("blue_green")
	if bg.Ports.Blue == "" || bg.Ports.Green == "" {
		ps.add(at.with("ports"), `give both colours a port, e.g. ports: {blue: "{{.Host.Vars.port}}", green: "{{.Host.Vars.green_port}}"}`,
			"blue_green.ports: blue and green are both required")
	} else if bg.Ports.Blue == bg.Ports.Green {
		ps.add(at.with("ports", "green"), "the two colours run side by side and need a port each",
			"blue_green.ports: blue and green are the same (%s)", bg.Ports.Blue)
	}
	if bg.StartIdle == "" {
		ps.add(at, "a command run in the new release's directory that starts the colour .Slot.Color on .Slot.Port",
			"blue_green.start_idle: required")
	}
	if bg.StopIdle == "" {
		ps.add(at, "a command that stops the colour .Slot.Color", "blue_green.stop_idle: required")
	}
	s.BlueGreen = drover.BlueGreenSpec{
		Ports:     map[string]string{drover.ColorBlue: bg.Ports.Blue, drover.ColorGreen: bg.Ports.Green},
		StartIdle: bg.StartIdle,
		StopIdle:  bg.StopIdle,
		KeepOld:   f.duration(ps, at.with("keep_old"), bg.KeepOld, drover.DefaultKeepOld),
	}
	hp := f.Rotation.HAProxy
	switch {
	case hp == nil && (f.Hooks.Repool == "" || f.Hooks.Depool == ""):
		ps.add(p("strategy"), `add rotation.haproxy with server: "{{.Host.Name}}-{{.Slot.Color}}", or hooks.repool and hooks.depool that see .Slot.Color`,
			"strategy: blue-green needs a way to switch traffic between the colours: rotation.haproxy, or hooks.repool and hooks.depool")
	case hp != nil && !strings.Contains(hp.Server, ".Slot.Color"):
		ps.add(p("rotation", "haproxy", "server"), `name a server per colour, e.g. server: "{{.Host.Name}}-{{.Slot.Color}}"`,
			"rotation.haproxy.server: with strategy blue-green it must name each colour's server ({{.Slot.Color}}), got %q", hp.Server)
	}
}

// blueGreenTemplates are the blue_green templates, executed per host by
// execTemplates like every other.
func (f *File) blueGreenTemplates() []tmpl {
	bg := f.BlueGreen
	if bg == nil {
		return nil
	}
	at := p("blue_green")
	return []tmpl{
		{at: at.with("ports", "blue"), text: bg.Ports.Blue},
		{at: at.with("ports", "green"), text: bg.Ports.Green},
		{at: at.with("start_idle"), text: bg.StartIdle, command: true},
		{at: at.with("stop_idle"), text: bg.StopIdle, command: true},
	}
}
