// Package report answers the questions people ask of a fleet and its
// history: is this deploy still running (status.go), what did each host do
// in a deploy (timeline.go), which release should the fleet be on and
// which hosts are not (stragglers.go), and how two environments differ
// (envdiff.go). It reads a drover.Store and runner.HostStatus values and
// returns plain data; cmd/drover prints it as tables or JSON. Keeping the
// policy here, not in the CLI, lets it be tested without a fleet and keeps
// the server and the CLI from answering the same question two ways.
package report
