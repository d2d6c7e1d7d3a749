package hostops

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"drover"
)

// Blue/green hosts (strategy: blue-green) keep, beside current, a link per
// colour: blue -> releases/<slot> and green -> releases/<slot>, the release
// each colour's process runs. current always points at the live colour's
// release, so status, rollback and history read the same as with a rolling
// deploy; state.json adds live (the colour serving) and idle (the other
// colour: its release and whether its process is kept running, until when).

// checkColor refuses anything but blue and green: a colour names a link
// under the deploy root.
func checkColor(c string) error {
	if c != drover.ColorBlue && c != drover.ColorGreen {
		return drover.Errorf(drover.EINVALID, "%q is not a colour (blue or green)", c)
	}
	return nil
}

// ColorTarget returns the slot a colour's link points at, "" when none.
func (h *Host) ColorTarget(color string) string {
	if checkColor(color) != nil {
		return ""
	}
	return h.linkTarget(color)
}

// linkTarget is currentTarget for any link under the deploy root.
func (h *Host) linkTarget(name string) string {
	t, err := os.Readlink(filepath.Join(h.Root, name))
	if err != nil {
		return ""
	}
	t = filepath.ToSlash(filepath.Clean(t))
	if s, ok := cutReleases(t); ok {
		return s
	}
	if filepath.IsAbs(t) && filepath.Dir(filepath.FromSlash(t)) == h.releasesDir() {
		return filepath.Base(t)
	}
	return t
}

func cutReleases(t string) (string, bool) {
	p := ReleasesDir + "/"
	if len(t) > len(p) && t[:len(p)] == p {
		return t[len(p):], true
	}
	return "", false
}

// pointColor swaps the colour's link to releases/<slot>, atomically.
func (h *Host) pointColor(color, slot string) error {
	if h.linkTarget(color) == slot {
		return nil
	}
	tmp := filepath.Join(h.Root, color+".tmp-"+randomSuffix())
	if err := os.Symlink(filepath.Join(ReleasesDir, slot), tmp); err != nil {
		return drover.Errorf(drover.EFAILED, "point %s at %s: %v", color, slot, err)
	}
	if err := os.Rename(tmp, filepath.Join(h.Root, color)); err != nil {
		os.Remove(tmp)
		return drover.Errorf(drover.EFAILED, "point %s at %s: %v", color, slot, err)
	}
	if err := syncDir(h.Root); err != nil {
		return drover.Errorf(drover.EFAILED, "point %s at %s: %v", color, slot, err)
	}
	return nil
}

// promoteColor is Promote on a blue/green host: the colour now serving
// req.Slot becomes live; the colour that served before becomes idle and,
// when it ran a release, is recorded running until req.KeepUntil. Its
// links change in the order that keeps every link true at every instant:
// the colour's link, then current, then state.json.
func (h *Host) promoteColor(ctx context.Context, req drover.PromoteRequest) (drover.HostState, error) {
	if err := checkColor(req.Color); err != nil {
		return drover.HostState{}, err
	}
	st, err := h.State(ctx)
	if err != nil {
		return st, err
	}
	if err := h.pointColor(req.Color, req.Slot); err != nil {
		return st, err
	}
	if h.currentTarget() != req.Slot {
		if err := h.pointCurrent(req.Slot); err != nil {
			return st, err
		}
	}
	if st.Current == req.Slot && st.Live == req.Color {
		return st, nil
	}
	rel, version, configHash := req.Release, req.Version, req.ConfigHash
	if meta, err := h.ReadSlotMeta(req.Slot); err == nil {
		rel, version, configHash = or(rel, meta.Release), or(version, meta.Version), or(configHash, meta.ConfigHash)
	}
	at := req.At
	if at.IsZero() {
		at = h.now()
	}
	old := st.Snapshot()
	idle := &drover.IdleColor{Color: drover.OtherColor(req.Color)}
	if old.Live == req.Color && st.Idle != nil {
		// The live colour promoted again (a crash between the link and
		// state.json): the idle colour is as it was.
		idle = st.Idle
	} else if old.Current != "" && old.Live == idle.Color {
		idle.Slot, idle.Release, idle.Version = old.Current, old.Release, old.Version
		idle.Running, idle.KeepUntil = true, req.KeepUntil.UTC()
	} else if old.Current != "" && old.Live == "" {
		// The first blue/green deploy of a host deployed rolling: the
		// old release ran outside any colour and is not tracked.
		idle.Slot, idle.Release, idle.Version = "", "", ""
	}
	st.Previous, st.Current = old.Current, req.Slot
	st.Release, st.Version, st.ConfigHash = rel, version, configHash
	st.Live, st.Idle = req.Color, idle
	st.DeployedAt, st.DeployID = at.UTC(), req.DeployID
	st.History = append(st.History, drover.HostHistoryEntry{
		Action: drover.ActionPromote, From: old.Current, To: req.Slot, Version: version, DeployID: req.DeployID, At: at.UTC(),
		Reason: "traffic to " + req.Color,
	})
	if err := h.writeState(st); err != nil {
		return st, err
	}
	return h.State(ctx)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// restoreColor is Restore on a blue/green host. With ActionFinalize it
// records the idle colour req.Color as stopped. Otherwise the colour
// req.Color serves req.To.Current again: its link and current point there,
// state.json holds exactly the snapshot, and the colour it leaves is idle,
// recorded running until req.KeepUntil (zero: it is being stopped).
func (h *Host) restoreColor(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
	if err := checkColor(req.Color); err != nil {
		return drover.HostState{}, err
	}
	st, err := h.State(ctx)
	if err != nil {
		return st, err
	}
	if req.Action == drover.ActionFinalize {
		if st.Idle == nil || st.Idle.Color != req.Color {
			if st.Live == req.Color {
				return st, drover.Errorf(drover.EINVALID, "finalize: %s is the live colour", req.Color)
			}
			st.Idle = &drover.IdleColor{Color: req.Color}
		}
		if !st.Idle.Running && st.Idle.KeepUntil.IsZero() {
			return st, nil
		}
		st.Idle.Running, st.Idle.KeepUntil = false, time.Time{}
		if err := h.writeState(st); err != nil {
			return st, err
		}
		return h.State(ctx)
	}
	to := req.To
	if to.Current == "" {
		// A first deploy switched back to nothing: no colour serves.
		if err := h.removeCurrent(); err != nil {
			return st, err
		}
	} else {
		if err := checkSlot(to.Current); err != nil {
			return st, err
		}
		if !h.slotExists(to.Current) {
			return st, drover.Errorf(drover.EFAILED, "release dir %s/%s is gone; restore it by hand or deploy", ReleasesDir, to.Current)
		}
		if err := h.pointColor(req.Color, to.Current); err != nil {
			return st, err
		}
		if err := h.pointCurrent(to.Current); err != nil {
			return st, err
		}
	}
	at := req.At
	if at.IsZero() {
		at = h.now()
	}
	action := req.Action
	if action == "" {
		action = drover.ActionRestore
	}
	from := st.Current
	idle := &drover.IdleColor{Color: drover.OtherColor(req.Color), Slot: st.Current, Release: st.Release, Version: st.Version}
	if st.Live != idle.Color {
		// The colour left was not serving (a switch that failed before
		// it moved anything): what it runs is the slot it points at.
		idle.Slot = h.linkTarget(idle.Color)
		idle.Release, idle.Version = "", ""
		if meta, err := h.ReadSlotMeta(idle.Slot); err == nil {
			idle.Release, idle.Version = meta.Release, meta.Version
		}
	}
	idle.Running = !req.KeepUntil.IsZero()
	idle.KeepUntil = req.KeepUntil.UTC()
	if !idle.Running {
		idle.KeepUntil = time.Time{}
	}
	st.Current, st.Previous = to.Current, to.Previous
	st.Release, st.Version, st.ConfigHash = to.Release, to.Version, to.ConfigHash
	st.Live, st.Idle = req.Color, idle
	if to.Current == "" {
		st.Live = ""
	}
	st.DeployedAt, st.DeployID = at.UTC(), req.DeployID
	st.History = append(st.History, drover.HostHistoryEntry{
		Action: action, From: from, To: to.Current, Version: to.Version, DeployID: req.DeployID, At: at.UTC(), Reason: req.Reason,
	})
	if err := h.writeState(st); err != nil {
		return st, err
	}
	return h.State(ctx)
}
