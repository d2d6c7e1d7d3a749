package drover

import "time"

// Blue/green (strategy: blue-green). Every host runs the service twice, side
// by side: colour blue and colour green, each on its own port. One colour is
// live (the load balancer sends it traffic, current points at its release);
// the other is idle. A deploy stages the new release into the idle colour,
// starts it there, checks it, and only then switches traffic to it. The old
// colour keeps running until `drover finalize` (or the keep_old window has
// passed, when the next run finalizes it), so switching back is instant.

// Strategies (Spec.Strategy).
const (
	StrategyRolling   = "rolling"
	StrategyBlueGreen = "blue-green"
)

// Colours of a blue/green host.
const (
	ColorBlue  = "blue"
	ColorGreen = "green"
)

// OtherColor returns the colour that is not c.
func OtherColor(c string) string {
	if c == ColorBlue {
		return ColorGreen
	}
	return ColorBlue
}

// DefaultKeepOld is how long the old colour keeps running after a switch
// when blue_green.keep_old is not set.
const DefaultKeepOld = 30 * time.Minute

// ActionFinalize is the RestoreRequest.Action that records the idle colour
// as stopped (after its stop_idle hook ran); it changes no link.
const ActionFinalize = "finalize"

// BlueGreenSpec is the blue_green: block of drover.yaml.
type BlueGreenSpec struct {
	// Ports are templates (host templates, e.g. "{{.Host.Vars.port}}")
	// giving each colour's port on a host; templates see it as .Slot.Port.
	Ports map[string]string
	// StartIdle starts the idle colour's process from its release
	// directory (run there, .Slot is the colour); StopIdle stops a colour.
	StartIdle string
	StopIdle  string
	// KeepOld is how long the old colour keeps running after a switch
	// before the next run of drover finalizes it.
	KeepOld time.Duration
}

// IdleColor is the colour that is not live on a blue/green host, in
// state.json: what it holds and whether its process still runs (the old
// colour after a switch, until finalize).
type IdleColor struct {
	Color   string `json:"color"`
	Slot    string `json:"slot,omitempty"`
	Release string `json:"release,omitempty"`
	Version string `json:"version,omitempty"`
	// Running is true while the colour's process is kept for an instant
	// switch back; KeepUntil is when the next run may stop it.
	Running   bool      `json:"running"`
	KeepUntil time.Time `json:"keep_until,omitzero"`
}

// TemplateSlot is .Slot in templates: the colour a blue/green step acts on
// and its port. Zero with strategy rolling.
type TemplateSlot struct {
	Color string
	Port  string
}
