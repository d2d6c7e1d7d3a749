package drover

import "time"

// StateFile is the per-host record under the deploy root.
const StateFile = "state.json"

// HostState is the content of state.json on a host. Current and Previous
// name directories under releases/ ("slots"); a slot is the release ID, or
// <release-id>+<8 hex of the config hash> when the same release was staged
// again with different rendered config (a promoted directory is never
// modified, so a config change needs a directory of its own).
type HostState struct {
	Current  string `json:"current"`
	Previous string `json:"previous"`
	// Release and Version describe Current.
	Release    string             `json:"release,omitempty"`
	Version    string             `json:"version"`
	ConfigHash string             `json:"config_hash,omitempty"`
	DeployedAt time.Time          `json:"deployed_at"`
	DeployID   string             `json:"deploy_id"`
	History    []HostHistoryEntry `json:"history"`
	// Live is the colour serving on a blue/green host ("" with strategy
	// rolling); Idle is the other colour (bluegreen.go).
	Live string     `json:"live,omitempty"`
	Idle *IdleColor `json:"idle,omitempty"`
}

// HostHistoryEntry records one change of the current link on a host.
type HostHistoryEntry struct {
	Action   string    `json:"action"` // promote | restore | rollback
	From     string    `json:"from"`   // slot before ("" = none)
	To       string    `json:"to"`     // slot after ("" = none)
	Version  string    `json:"version,omitempty"`
	DeployID string    `json:"deploy_id,omitempty"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason,omitempty"`
}

// Snapshot is what a host was on before a deploy touched it: restoring it
// puts back both current and previous, so a later rollback never lands on
// the release that was just rolled back (the Ansible-wrapper incident).
type Snapshot struct {
	Current    string `json:"current"`
	Previous   string `json:"previous"`
	Release    string `json:"release,omitempty"`
	Version    string `json:"version,omitempty"`
	ConfigHash string `json:"config_hash,omitempty"`
	// Live is the colour that served on a blue/green host.
	Live string `json:"live,omitempty"`
}

// Snapshot returns the parts of s that a restore puts back.
func (s HostState) Snapshot() Snapshot {
	return Snapshot{Current: s.Current, Previous: s.Previous, Release: s.Release, Version: s.Version, ConfigHash: s.ConfigHash, Live: s.Live}
}

// Actions recorded in HostHistoryEntry.Action.
const (
	ActionPromote  = "promote"
	ActionRestore  = "restore"
	ActionRollback = "rollback"
)

// PromotedFrom returns what was current before slot was last promoted ("" if
// unknown): the previous that goes with slot when a rollback makes it
// current again, so a second rollback keeps walking back instead of
// bouncing to the release that was just abandoned.
func (s HostState) PromotedFrom(slot string) string {
	for i := len(s.History) - 1; i >= 0; i-- {
		if e := s.History[i]; e.Action == ActionPromote && e.To == slot {
			if e.From == slot {
				return ""
			}
			return e.From
		}
	}
	return ""
}
