package hostops

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"drover"
)

// StaleStage is how old a .stage- directory must be before Prune removes
// it: far longer than any stage runs, so Prune never pulls a directory
// from under a stage in progress.
const StaleStage = time.Hour

// Prune removes old release directories and returns the slots it removed.
//
// Current, previous (from state.json and the live current link) and the
// slots in protect are never removed, and count towards keep. Directories
// drover did not stage (another tool's releases, foreign.go) are not
// removed either (see PruneForeign). Of the other slots, the newest are kept (by staged_at in .drover-slot.json, then
// modification time) until keep slots remain. Leftover .stage- directories
// and temporary files older than StaleStage, from a stage or a write that
// crashed, are removed too.
//
// A slot is renamed to a .stage- name before it is deleted: deleting in
// place could crash half way and leave a directory whose metadata still
// claims a release whose files are gone, which a later stage would reuse.
func (h *Host) Prune(ctx context.Context, keep int, protect ...string) ([]string, error) {
	return h.prune(ctx, keep, false, protect)
}

// PruneForeign is Prune that also removes foreign releases (another
// tool's directories under releases/), once the operator said so
// (prune_foreign: true): they count towards keep like drover's own, the
// oldest by modification time go first, and one that is current or
// previous, from state.json or the live current link, is never removed —
// it is what a failed deploy or a rollback goes back to.
func (h *Host) PruneForeign(ctx context.Context, keep int, protect ...string) ([]string, error) {
	return h.prune(ctx, keep, true, protect)
}

func (h *Host) prune(ctx context.Context, keep int, foreign bool, protect []string) ([]string, error) {
	st, err := h.State(ctx)
	if err != nil {
		return nil, err
	}
	slots, err := h.Slots()
	if err != nil {
		return nil, err
	}
	guard := map[string]bool{}
	for _, s := range append([]string{st.Current, st.Previous, h.currentTarget()}, protect...) {
		if s != "" {
			guard[s] = true
		}
	}
	type cand struct {
		slot string
		at   time.Time
	}
	var others []cand
	kept := 0
	for _, s := range slots {
		if guard[s] {
			kept++
			continue
		}
		if !foreign && !h.isDroverSlot(s) {
			// Another tool's release (foreign.go): the operator's to
			// remove, by hand or with prune_foreign, once nothing needs
			// to go back to it.
			continue
		}
		c := cand{slot: s}
		if m, err := h.ReadSlotMeta(s); err == nil && !m.StagedAt.IsZero() {
			c.at = m.StagedAt
		} else if fi, err := os.Stat(h.slotDir(s)); err == nil {
			c.at = fi.ModTime()
		}
		others = append(others, c)
	}
	sort.SliceStable(others, func(i, j int) bool {
		if !others[i].at.Equal(others[j].at) {
			return others[i].at.After(others[j].at)
		}
		return others[i].slot > others[j].slot
	})
	var removed []string
	for _, c := range others {
		if kept < keep {
			kept++
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, drover.Errorf(drover.ETIMEOUT, "prune: %v", err)
		}
		trash := filepath.Join(h.releasesDir(), stagePrefix+"prune-"+randomSuffix())
		if err := os.Rename(h.slotDir(c.slot), trash); err != nil {
			return removed, drover.Errorf(drover.EFAILED, "prune %s/%s: %v", ReleasesDir, c.slot, err)
		}
		if err := os.RemoveAll(trash); err != nil {
			return removed, drover.Errorf(drover.EFAILED, "prune %s/%s: %v", ReleasesDir, c.slot, err)
		}
		removed = append(removed, c.slot)
	}
	h.removeStale()
	sort.Strings(removed)
	return removed, nil
}

// removeStale removes .stage- directories and temporary files left by a
// crash. Errors are ignored: the next Prune tries again.
func (h *Host) removeStale() {
	cutoff := h.now().Add(-StaleStage)
	stale := func(dir, prefix string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), prefix) {
				continue
			}
			fi, err := os.Lstat(filepath.Join(dir, e.Name()))
			if err != nil || fi.ModTime().After(cutoff) {
				continue
			}
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	stale(h.releasesDir(), stagePrefix)
	stale(h.Root, CurrentLink+".tmp-")
	stale(h.Root, drover.StateFile+".tmp-")
}
