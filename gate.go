package drover

import (
	"time"
)

// Gates after a group: smoke tests and invariants. Both run on the machine
// running drover (the controller), never on a host — a smoke test goes
// through the load balancer the way users do, and an invariant reads a
// statistics endpoint (or a command's output) that speaks for the whole
// service. So their templates see no .Host: only GateData.
//
// An invariant is the lesson of the migration in docs/why.md#compare-before-after that destroyed
// data because nothing compared before and after: a JSON document is
// captured once before the deploy switches anything and compared, rule by
// rule, after groups. A violation halts the deploy and rolls back every
// host it switched.

// Invariant comparison points (Invariant.After).
const (
	// InvariantAfterGroup compares after every group, so a canary that
	// loses data stops the deploy before the rest of the fleet follows.
	InvariantAfterGroup = "group"
	// InvariantAfterDeploy compares once, after the last group.
	InvariantAfterDeploy = "deploy"
)

// Invariant rule operators (InvariantRule.Op).
const (
	OpEqual  = "equal"  // after equals the reference
	OpGTE    = "gte"    // after >= the reference
	OpLTE    = "lte"    // after <= the reference
	OpWithin = "within" // |after - reference| <= Percent% of |reference|
)

// DefaultInvariantTimeout bounds fetching an invariant's document: one
// HTTP GET or command, retried while it fails until the timeout.
const DefaultInvariantTimeout = 10 * time.Second

// Invariant is a JSON document captured before a deploy and compared
// after groups. Exactly one of URL and Command is set.
type Invariant struct {
	Name string
	// URL is fetched with GET (source http); the body is the document.
	URL string
	// Command runs with `sh -c` on the controller, in the config file's
	// directory (source command); its standard output is the document.
	Command string
	Rules   []InvariantRule
	// After is InvariantAfterGroup or InvariantAfterDeploy.
	After string
	// Timeout bounds one fetch, retried while it fails.
	Timeout time.Duration
}

// InvariantRule compares the value at Path after a group with a reference:
// the value captured before the deploy, or Value when it is set.
type InvariantRule struct {
	// Path is a JSON path: $ then .key and [n] steps, like $.orders.count.
	Path string
	Op   string
	// Value, when not nil, is the reference instead of the value before.
	Value *float64
	// Percent is the tolerance of OpWithin.
	Percent float64
}

// GateData is what smoke check and invariant templates see.
type GateData struct {
	Release TemplateRelease
	Service string
	Env     string
}

// NewGateData returns the data gate templates see for a release.
func NewGateData(s *Spec, releaseID, version string) GateData {
	return GateData{Release: TemplateRelease{ID: releaseID, Version: version}, Service: s.Service, Env: s.Env}
}

// RenderGateCheck renders a smoke check for the controller: addresses and
// URLs plainly, the command with every value shell-quoted. A template
// naming .Host fails: a smoke check runs once, for no host.
func RenderGateCheck(c CheckSpec, data GateData) (CheckSpec, error) {
	return renderCheck(c, "smoke "+c.Name, data, func(name, text string) (string, error) {
		return RenderGateCommand(name, text, data)
	})
}

// RenderGateCommand renders a command template run on the controller with
// `sh -c`, checked and quoted exactly as RenderCommand does.
func RenderGateCommand(name, text string, data GateData) (string, error) {
	return renderCommand(name, text, data)
}
