package hostops

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"drover"
)

// Promote points current at releases/<slot> and records it in state.json:
// previous becomes the old current. The link is swapped before state.json
// is written, so after a crash between the two, running the same Promote
// again finds the link already right and writes the state it missed, with
// the correct previous. Promoting the slot that is already current changes
// nothing.
func (h *Host) Promote(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error) {
	if err := checkSlot(req.Slot); err != nil {
		return drover.HostState{}, err
	}
	if !h.slotExists(req.Slot) {
		return drover.HostState{}, drover.Errorf(drover.EFAILED, "promote: release dir %s/%s does not exist", ReleasesDir, req.Slot).
			WithHint("stage the release on this host first")
	}
	if req.Color != "" {
		return h.promoteColor(ctx, req) // bluegreen.go
	}
	st, err := h.State(ctx)
	if err != nil {
		return st, err
	}
	if h.currentTarget() != req.Slot {
		if err := h.pointCurrent(req.Slot); err != nil {
			return st, err
		}
	}
	if st.Current == req.Slot {
		return st, nil
	}
	rel, version, configHash := req.Release, req.Version, req.ConfigHash
	if meta, err := h.ReadSlotMeta(req.Slot); err == nil {
		if rel == "" {
			rel = meta.Release
		}
		if version == "" {
			version = meta.Version
		}
		if configHash == "" {
			configHash = meta.ConfigHash
		}
	}
	at := req.At
	if at.IsZero() {
		at = h.now()
	}
	from := st.Current
	st.Previous = from
	st.Current = req.Slot
	st.Release, st.Version, st.ConfigHash = rel, version, configHash
	st.DeployedAt = at.UTC()
	st.DeployID = req.DeployID
	st.History = append(st.History, drover.HostHistoryEntry{
		Action: drover.ActionPromote, From: from, To: req.Slot, Version: version, DeployID: req.DeployID, At: at.UTC(),
	})
	if err := h.writeState(st); err != nil {
		return st, err
	}
	return h.State(ctx)
}

// Restore puts the host back on a snapshot: current and previous, release,
// version and config hash become exactly req.To. This, and not "promote the
// previous release", is how a halted deploy undoes itself: a promote would
// record the broken release as previous, and the next `drover rollback`
// would land right back on it.
func (h *Host) Restore(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
	action := req.Action
	if req.Color != "" && (action == "" || action == drover.ActionRestore || action == drover.ActionRollback || action == drover.ActionFinalize) {
		return h.restoreColor(ctx, req) // bluegreen.go
	}
	switch action {
	case "":
		action = drover.ActionRestore
	case drover.ActionRestore, drover.ActionRollback:
	case drover.ActionAdopt:
		return h.Adopt(ctx, req) // foreign.go
	default:
		return drover.HostState{}, drover.Errorf(drover.EINVALID, "restore: action %q is not %s, %s or %s", action, drover.ActionRestore, drover.ActionRollback, drover.ActionAdopt)
	}
	to := req.To
	if to.Current != "" {
		if err := checkSlot(to.Current); err != nil {
			return drover.HostState{}, err
		}
		if !h.slotExists(to.Current) {
			return drover.HostState{}, drover.Errorf(drover.EFAILED, "release dir %s/%s is gone; restore it by hand or deploy", ReleasesDir, to.Current)
		}
	}
	if to.Previous != "" {
		if err := checkSlot(to.Previous); err != nil {
			return drover.HostState{}, err
		}
	}
	st, err := h.State(ctx)
	if err != nil {
		return st, err
	}
	// A foreign release goes back exactly as current pointed at it. A
	// snapshot that lost the record (the journal of a crashed deploy keeps
	// only the slot) is completed from state.json, or from the directory:
	// a slot without .drover-slot.json is foreign.
	foreign := to.Foreign
	if to.Current != "" && foreign == nil && !h.isDroverSlot(to.Current) {
		f := h.foreign(st, to.Current)
		foreign = &f
	}
	if foreign != nil {
		if slot, ok := h.linkSlot(foreign.Link); !ok || slot != to.Current {
			return st, drover.Errorf(drover.EINVALID, "restore: link %q does not lead to %s/%s", foreign.Link, ReleasesDir, to.Current)
		}
	}
	live := h.currentTarget()
	liveLink, _ := os.Readlink(filepath.Join(h.Root, CurrentLink))
	inPlace := live == to.Current && (foreign == nil || liveLink == foreign.Link)
	if inPlace && sameSnapshot(st.Snapshot(), to) {
		return st, nil
	}
	if !inPlace {
		switch {
		case to.Current == "":
			err = h.removeCurrent()
		case foreign != nil:
			err = h.pointCurrentLink(foreign.Link, to.Current)
		default:
			err = h.pointCurrent(to.Current)
		}
		if err != nil {
			return st, err
		}
	}
	at := req.At
	if at.IsZero() {
		at = h.now()
	}
	// From is what was live: after a crash half way through a promote,
	// the link may already point past what state.json says.
	from := st.Current
	if live != "" {
		from = live
	}
	st.Current, st.Previous = to.Current, to.Previous
	st.Release, st.Version, st.ConfigHash = to.Release, to.Version, to.ConfigHash
	if foreign != nil {
		st.Foreign = cloneForeign(st.Foreign)
		if old, ok := st.Foreign[to.Current]; ok && old.Link == foreign.Link && foreign.Hash == "" {
			foreign.Hash = old.Hash
		}
		st.Foreign[to.Current] = *foreign
		st.Release, st.Version, st.ConfigHash = "", "", ""
	}
	st.DeployedAt = at.UTC()
	st.DeployID = req.DeployID
	st.History = append(st.History, drover.HostHistoryEntry{
		Action: action, From: from, To: to.Current, Version: to.Version, DeployID: req.DeployID, At: at.UTC(), Reason: req.Reason,
	})
	if err := h.writeState(st); err != nil {
		return st, err
	}
	return h.State(ctx)
}

// currentTarget returns the slot the current link points at, "" when
// there is no link.
func (h *Host) currentTarget() string {
	t, err := os.Readlink(filepath.Join(h.Root, CurrentLink))
	if err != nil {
		return ""
	}
	t = filepath.ToSlash(filepath.Clean(t))
	if s, ok := strings.CutPrefix(t, ReleasesDir+"/"); ok {
		return s
	}
	if filepath.IsAbs(t) && filepath.Dir(filepath.FromSlash(t)) == h.releasesDir() {
		return filepath.Base(t)
	}
	return t
}

// pointCurrent swaps current to releases/<slot>: a new link under a
// temporary name renamed over the old one. rename(2) is atomic, so at every
// instant current is either the old or the new release; removing and
// re-creating the link would leave a moment (or, after a crash, forever)
// with no current at all. The link is relative so the deploy root can be
// moved or mounted elsewhere.
func (h *Host) pointCurrent(slot string) error {
	tmp := filepath.Join(h.Root, CurrentLink+".tmp-"+randomSuffix())
	if err := os.Symlink(filepath.Join(ReleasesDir, slot), tmp); err != nil {
		return drover.Errorf(drover.EFAILED, "switch current to %s: %v", slot, err)
	}
	cur := filepath.Join(h.Root, CurrentLink)
	if fi, err := os.Lstat(cur); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		os.Remove(tmp)
		return drover.Errorf(drover.EFAILED, "switch current to %s: %s is not a symlink", slot, cur).
			WithHint("run `drover adopt` once: it moves the directory into releases/ and links current to it; drover manages current as a symlink into releases/")
	}
	if err := os.Rename(tmp, cur); err != nil {
		os.Remove(tmp)
		return drover.Errorf(drover.EFAILED, "switch current to %s: %v", slot, err)
	}
	if err := syncDir(h.Root); err != nil {
		return drover.Errorf(drover.EFAILED, "switch current to %s: %v", slot, err)
	}
	return nil
}

// removeCurrent removes the current link: restoring a host whose first
// ever deploy failed leaves it with no release, as it was. Only a link to
// a release drover staged is removed: a host serving another tool's
// release (foreign.go) or a live directory must never be left without a
// current.
func (h *Host) removeCurrent() error {
	cur := filepath.Join(h.Root, CurrentLink)
	fi, err := os.Lstat(cur)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return drover.Errorf(drover.EFAILED, "remove current: %s is not a symlink", cur)
	}
	if link, err := os.Readlink(cur); err == nil {
		if slot, ok := h.linkSlot(link); !ok || (h.slotExists(slot) && !h.isDroverSlot(slot)) {
			return drover.Errorf(drover.EFAILED, "remove current: it points at %s, which drover did not stage; left in place", link).
				WithHint("`drover status` shows the host; deploy or roll back to a release instead")
		}
	}
	if err := os.Remove(cur); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return drover.Errorf(drover.EFAILED, "remove current: %v", err)
	}
	if err := syncDir(h.Root); err != nil {
		return drover.Errorf(drover.EFAILED, "remove current: %v", err)
	}
	return nil
}

// sameSnapshot compares snapshots by value, the foreign record included.
func sameSnapshot(a, b drover.Snapshot) bool {
	fa, fb := a.Foreign, b.Foreign
	a.Foreign, b.Foreign = nil, nil
	if a != b || (fa == nil) != (fb == nil) {
		return false
	}
	// The hash is filled in on the host; the link is what is put back.
	return fa == nil || fa.Link == fb.Link
}
