package drover

import "strings"

// The slot format: the name of a release's directory under releases/ on a
// host. A slot is the release ID, or <release-id>+<8 hex of the config
// hash> when the same release was staged again with different rendered
// config: a promoted directory is never modified, so a config change needs
// a directory of its own. Staging (hostops, transport/sim), restoring
// (runner) and the reports (report/) read it through these functions only.

// slotSep separates the release ID from the config hash in a slot.
const slotSep = "+"

// slotHashLen is how much of the config hash a slot name carries.
const slotHashLen = 8

// SlotCandidates returns the slots release id with config hash configHash
// may be staged into, in the order to try them: its own, then the one
// named after its config.
func SlotCandidates(id, configHash string) [2]string {
	return [2]string{id, ConfigSlot(id, configHash)}
}

// ConfigSlot is the slot of release id with config hash configHash when
// the release's own slot holds other config.
func ConfigSlot(id, configHash string) string {
	return id + slotSep + configHash[:min(slotHashLen, len(configHash))]
}

// SlotRelease is the release ID slot holds.
func SlotRelease(slot string) string {
	id, _, _ := strings.Cut(slot, slotSep)
	return id
}

// SlotHolds reports whether slot holds release id (with any config).
func SlotHolds(slot, id string) bool {
	return slot != "" && (slot == id || strings.HasPrefix(slot, id+slotSep))
}
