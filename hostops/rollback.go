package hostops

import (
	"sort"
	"strings"

	"drover"
)

// RollbackTarget returns the snapshot an operator's `drover rollback [--to
// SLOT]` restores on this host; pass it to Restore with ActionRollback. See
// RollbackSnapshot for the rules; a to that is not on the host is ENOTFOUND
// listing the slots that are.
func (h *Host) RollbackTarget(st drover.HostState, to string) (drover.Snapshot, error) {
	meta := func(slot string) (SlotMeta, error) {
		if err := checkSlot(slot); err != nil {
			return SlotMeta{}, err
		}
		if !h.slotExists(slot) {
			return SlotMeta{}, drover.Errorf(drover.ENOTFOUND, "no release dir %s/%s", ReleasesDir, slot)
		}
		m, err := h.ReadSlotMeta(slot)
		if drover.ErrorCode(err) == drover.ENOTFOUND {
			// A slot made by hand or by an older drover: it exists, so
			// roll back to it with what little is known.
			return SlotMeta{Release: slot}, nil
		}
		return m, err
	}
	slots := func() []string { s, _ := h.Slots(); return s }
	return RollbackSnapshot(st, to, meta, slots)
}

// RollbackSnapshot computes a rollback target from a host's state and a
// way to read a slot's metadata (the slot's .drover-slot.json, e.g. through
// drover.HostConn.ReadFile(SlotMetaPath(slot)) and ParseSlotMeta; meta
// returns ENOTFOUND for a slot that is not on the host) and, optionally, to
// list the host's slots for the error when the target is not there (nil:
// the slots state.json mentions).
//
// The target is to, or the recorded previous release. The new previous is
// the release that was current before the target was last promoted, taken
// from history: rolling back from v2 to v1 must leave v1's own previous,
// not v2, so that a second rollback goes further back instead of
// bouncing to the release that was just abandoned.
func RollbackSnapshot(st drover.HostState, to string, meta func(slot string) (SlotMeta, error), slots func() []string) (drover.Snapshot, error) {
	target := to
	if target == "" {
		target = st.Previous
	}
	if target == "" {
		return drover.Snapshot{}, drover.Errorf(drover.ENOTFOUND, "host has no previous release").
			WithHint("pass --to RELEASE-ID to choose one, or deploy")
	}
	if target == st.Current {
		return st.Snapshot(), nil
	}
	m, err := meta(target)
	if err != nil {
		if drover.ErrorCode(err) == drover.ENOTFOUND {
			known := knownSlots(st)
			if slots != nil {
				known = slots()
			}
			return drover.Snapshot{}, notOnHost(target, known)
		}
		return drover.Snapshot{}, err
	}
	prev := st.PromotedFrom(target)
	if f, ok := st.Foreign[target]; ok {
		// Another tool's release: back exactly as current pointed at it.
		return drover.Snapshot{Current: target, Previous: prev, Foreign: &f}, nil
	}
	return drover.Snapshot{Current: target, Previous: prev, Release: m.Release, Version: m.Version, ConfigHash: m.ConfigHash}, nil
}

func notOnHost(slot string, slots []string) error {
	list := "none"
	if len(slots) > 0 {
		list = strings.Join(slots, ", ")
	}
	return drover.Errorf(drover.ENOTFOUND, "release %s is not on the host (releases on the host: %s)", slot, list).
		WithHint("pass one of the listed releases to --to")
}

// knownSlots lists the slots state.json mentions, for an error message
// when the host's directory listing is not at hand.
func knownSlots(st drover.HostState) []string {
	set := map[string]bool{}
	for _, s := range []string{st.Current, st.Previous} {
		if s != "" {
			set[s] = true
		}
	}
	for _, e := range st.History {
		for _, s := range []string{e.From, e.To} {
			if s != "" {
				set[s] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
