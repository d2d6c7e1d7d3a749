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
	// Foreign describes, by slot, releases another tool (Capistrano, Scap,
	// an Ansible playbook, a script) put under releases/: how current
	// pointed at them, so restoring one puts back exactly that link. It
	// holds the slots that are current, previous or in History.
	Foreign map[string]Foreign `json:"foreign,omitempty"`
	// LiveDir is set, by reading the host and never stored, when current
	// is a directory ("dir") or a link out of releases/ ("link:<text>")
	// on a host drover does not know: there is nothing drover could
	// switch back to, so deploys refuse the host until `drover adopt` has
	// moved the directory into releases/.
	LiveDir string `json:"live_dir,omitempty"`
}

// Foreign is a release drover did not stage: a directory under releases/
// without .drover-slot.json that current pointed at.
type Foreign struct {
	// Link is current's target exactly as readlink(2) returned it
	// ("releases/20260101120000", or Capistrano's absolute
	// "/srv/app/releases/20260101120000").
	Link string `json:"link"`
	// Hash is the content hash of the directory (hostops.ForeignHash):
	// what was serving, independent of the name another tool gave it.
	// Filled in on the host when state.json is written; "" until then.
	Hash string `json:"hash,omitempty"`
}

// ForeignPrefix starts the slot name `drover adopt` gives a live
// directory it moves under releases/: foreign-<12 hex of its hash>.
const ForeignPrefix = "foreign-"

// IsForeign reports whether slot is a foreign release on this host.
func (s HostState) IsForeign(slot string) bool {
	_, ok := s.Foreign[slot]
	return slot != "" && ok
}

// ReleaseLabel names slot for people: "foreign releases/<slot>" for a
// foreign release, "none" for "", else the slot.
func (s HostState) ReleaseLabel(slot string) string {
	switch {
	case slot == "":
		return "none"
	case s.IsForeign(slot):
		return "foreign " + "releases/" + slot
	}
	return slot
}

// HostHistoryEntry records one change of the current link on a host.
type HostHistoryEntry struct {
	Action   string    `json:"action"` // promote | restore | rollback | adopt
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
	// Foreign is set when Current is a release another tool put there:
	// restoring re-creates current exactly as it was.
	Foreign *Foreign `json:"foreign,omitempty"`
}

// Snapshot returns the parts of s that a restore puts back.
func (s HostState) Snapshot() Snapshot {
	snap := Snapshot{Current: s.Current, Previous: s.Previous, Release: s.Release, Version: s.Version, ConfigHash: s.ConfigHash, Live: s.Live}
	if f, ok := s.Foreign[s.Current]; ok && s.Current != "" {
		snap.Foreign = &f
	}
	return snap
}

// Label names what the snapshot puts back, for people: "none" when the
// host had no release, "foreign releases/<slot>" for a release another tool
// put there, else the version (or the slot when the version is unknown).
// "none" is only ever a host that truly had nothing.
func (s Snapshot) Label() string {
	switch {
	case s.Current == "":
		return "none"
	case s.Foreign != nil:
		return "foreign releases/" + s.Current
	case s.Version != "":
		return s.Version
	}
	return s.Current
}

// Actions recorded in HostHistoryEntry.Action.
const (
	ActionPromote  = "promote"
	ActionRestore  = "restore"
	ActionRollback = "rollback"
	// ActionAdopt moved a live directory that was current into
	// releases/foreign-<hash> and linked current to it (`drover adopt`).
	ActionAdopt = "adopt"
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
