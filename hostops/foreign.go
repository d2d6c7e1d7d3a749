package hostops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"drover"
)

// A foreign release is one another tool put on the host: Capistrano and
// Scap leave current -> releases/<timestamp> with no state.json, an
// Ansible playbook or a script may leave the same or a live directory as
// current. The first drover deploy to such a host is the riskiest one: if
// it fails, the host must go back to exactly what was serving, and a
// snapshot that said "none" removed current instead (issue 20). So a
// release directory without .drover-slot.json that current points at is
// recorded as a release like any other, with the link's exact text and a
// content hash.

// ForeignHash is the content hash of a directory tree: sha256 over every
// entry's path, type, permission bits and content (a symlink's target),
// in path order. Names and times do not count: the same tree staged by
// another tool under another name hashes the same.
func ForeignHash(ctx context.Context, dir string) (string, error) {
	sum := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		fmt.Fprintf(sum, "%s\x00%s\x00%o\x00", filepath.ToSlash(rel), mode.Type(), mode.Perm())
		switch {
		case mode.IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			sum.Write(h.Sum(nil))
		case mode&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			io.WriteString(sum, t)
		}
		sum.Write([]byte{0})
		return nil
	})
	if err != nil {
		return "", drover.Errorf(drover.EFAILED, "hash %s: %v", dir, err)
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

// linkSlot returns the slot under releases/ that a current link's text
// names, in any of the forms the tools write: "releases/x", "./releases/x",
// or an absolute path into this deploy root's releases/ (Capistrano),
// also through a symlinked path to it. ok is false for a link that leads
// anywhere else.
func (h *Host) linkSlot(link string) (slot string, ok bool) {
	if link == "" || strings.ContainsRune(link, 0) {
		return "", false
	}
	p := link
	if !filepath.IsAbs(p) {
		p = filepath.Join(h.Root, p)
	}
	p = filepath.Clean(p)
	slot = filepath.Base(p)
	if checkSlot(slot) != nil {
		return "", false
	}
	dir := filepath.Dir(p)
	if dir == filepath.Clean(h.releasesDir()) {
		return slot, true
	}
	a, err1 := filepath.EvalSymlinks(dir)
	b, err2 := filepath.EvalSymlinks(h.releasesDir())
	if err1 == nil && err2 == nil && a == b {
		return slot, true
	}
	return "", false
}

// isDroverSlot reports whether releases/<slot> holds .drover-slot.json,
// i.e. drover staged it.
func (h *Host) isDroverSlot(slot string) bool {
	_, err := os.Lstat(filepath.Join(h.slotDir(slot), SlotMetaName))
	return err == nil
}

// foreign returns what is known of foreign slot: its record in st, else
// the default link. The hash is filled in when state.json is written.
func (h *Host) foreign(st drover.HostState, slot string) drover.Foreign {
	if f, ok := st.Foreign[slot]; ok {
		return f
	}
	return drover.Foreign{Link: ReleasesDir + "/" + slot}
}

// Live is what a host's current is, as read on its filesystem.
type Live struct {
	// Kind is "" (no current), LiveLink or LiveDir.
	Kind string
	// Link is the link's text, exactly as readlink returned it.
	Link string
	// Slot is the directory under releases/ the link leads to, "" when it
	// leads elsewhere or nowhere.
	Slot string
	// Drover is true when that directory holds .drover-slot.json.
	Drover bool
}

// Kinds of Live.
const (
	LiveLink = "link"
	LiveDir  = "dir"
)

// OverlayLive makes st say what is live when another tool put it there;
// it is the same for every transport (transport/ssh reads Live with a
// shell command, so a survey installs nothing on the host):
//
//   - no state.json and current -> releases/X: X is the current foreign
//     release, never "none";
//   - another tool deployed after drover: its release is current and
//     drover's becomes previous;
//   - current a directory, or a link out of releases/ on a host drover
//     does not know: LiveDir is set ("dir" or "link:<text>") and deploys
//     refuse the host until `drover adopt`.
//
// A link to a drover slot that state.json does not name yet (a promote
// interrupted between the link and state.json) is left alone: Promote
// repairs it.
func OverlayLive(st drover.HostState, l Live) drover.HostState {
	switch {
	case l.Kind == LiveDir:
		st.LiveDir = LiveDir
		return st
	case l.Kind != LiveLink:
		return st
	case l.Slot == "":
		if st.Current == "" {
			st.LiveDir = "link:" + l.Link
		}
		return st
	case l.Slot == st.Current || l.Drover:
		return st
	}
	f, ok := st.Foreign[l.Slot]
	if !ok || f.Link != l.Link {
		f = drover.Foreign{Link: l.Link}
	}
	if st.Current != "" {
		st.Previous = st.Current
	}
	st.Current = l.Slot
	st.Release, st.Version, st.ConfigHash = "", "", ""
	st.Foreign = cloneForeign(st.Foreign)
	st.Foreign[l.Slot] = f
	return st
}

// live reads what current is on this host.
func (h *Host) live() Live {
	cur := filepath.Join(h.Root, CurrentLink)
	fi, err := os.Lstat(cur)
	switch {
	case err != nil:
		return Live{}
	case fi.IsDir():
		return Live{Kind: LiveDir}
	case fi.Mode()&fs.ModeSymlink == 0:
		return Live{}
	}
	link, err := os.Readlink(cur)
	if err != nil {
		return Live{}
	}
	l := Live{Kind: LiveLink, Link: link}
	if slot, ok := h.linkSlot(link); ok && h.slotExists(slot) {
		l.Slot, l.Drover = slot, h.isDroverSlot(slot)
	}
	return l
}

// overlayLive is OverlayLive with what is live on this host.
func (h *Host) overlayLive(st drover.HostState) drover.HostState {
	return OverlayLive(st, h.live())
}

// ForeignHashTimeout bounds hashing one foreign release when state.json
// is written: a tree of gigabytes must not hold up a promote or a
// restore; its hash is then left empty and tried again at the next write.
const ForeignHashTimeout = 20 * time.Second

// hashForeign fills in the content hash of the foreign releases st
// records without one, before state.json is written: reading the state
// (every survey) does not pay for hashing a tree.
func (h *Host) hashForeign(st *drover.HostState) {
	for slot, f := range st.Foreign {
		if f.Hash != "" || !h.slotExists(slot) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), ForeignHashTimeout)
		hash, err := ForeignHash(ctx, h.slotDir(slot))
		cancel()
		if err == nil {
			f.Hash = hash
			st.Foreign[slot] = f
		}
	}
}

func cloneForeign(m map[string]drover.Foreign) map[string]drover.Foreign {
	out := make(map[string]drover.Foreign, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// trimForeign keeps the foreign records state.json still refers to, so
// the map stays as bounded as History.
func trimForeign(st *drover.HostState) {
	if len(st.Foreign) == 0 {
		st.Foreign = nil
		return
	}
	used := map[string]bool{st.Current: true, st.Previous: true}
	for _, e := range st.History {
		used[e.From], used[e.To] = true, true
	}
	for s := range st.Foreign {
		if !used[s] {
			delete(st.Foreign, s)
		}
	}
	if len(st.Foreign) == 0 {
		st.Foreign = nil
	}
}

// pointCurrentLink swaps current to exactly link (a foreign release's own
// link text), atomically like pointCurrent.
func (h *Host) pointCurrentLink(link, slot string) error {
	tmp := filepath.Join(h.Root, CurrentLink+".tmp-"+randomSuffix())
	if err := os.Symlink(link, tmp); err != nil {
		return drover.Errorf(drover.EFAILED, "switch current to %s: %v", link, err)
	}
	cur := filepath.Join(h.Root, CurrentLink)
	if fi, err := os.Lstat(cur); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		os.Remove(tmp)
		return drover.Errorf(drover.EFAILED, "switch current to %s: %s is not a symlink", slot, cur).
			WithHint("run `drover adopt` to move the directory into releases/")
	}
	if err := os.Rename(tmp, cur); err != nil {
		os.Remove(tmp)
		return drover.Errorf(drover.EFAILED, "switch current to %s: %v", link, err)
	}
	if err := syncDir(h.Root); err != nil {
		return drover.Errorf(drover.EFAILED, "switch current to %s: %v", link, err)
	}
	return nil
}

// Adopt moves a live directory that is current into
// releases/foreign-<12 hex of its hash> and leaves current a link to it,
// in one atomic step: the service keeps running from the same directory
// (the same inode, reachable by the same path through the link), and at
// no instant is there no current. A host whose current is already a link
// is left alone.
//
// The exchange is renameat2(RENAME_EXCHANGE): first a link is made at the
// new slot's path whose text, "releases/foreign-x", is relative to the
// deploy root, then it and the directory trade places. A rename of the
// directory followed by a new link would leave, for a moment or after a
// crash forever, no current: the next restart would have nothing to
// start.
func (h *Host) Adopt(ctx context.Context, req drover.RestoreRequest) (drover.HostState, error) {
	cur := filepath.Join(h.Root, CurrentLink)
	fi, err := os.Lstat(cur)
	if errors.Is(err, fs.ErrNotExist) {
		return drover.HostState{}, drover.Errorf(drover.ENOTFOUND, "adopt: %s does not exist, nothing to adopt", cur).
			WithHint("deploy: a host with no current has nothing to put back")
	}
	if err != nil {
		return drover.HostState{}, drover.Errorf(drover.EFAILED, "adopt: %v", err)
	}
	st, err := h.State(ctx)
	if err != nil {
		return st, err
	}
	if !fi.IsDir() {
		if link, ok := strings.CutPrefix(st.LiveDir, "link:"); ok {
			return st, drover.Errorf(drover.EINVALID, "adopt: current points outside %s/, at %s: drover only moves a directory that is current", ReleasesDir, link).
				WithHint("copy that tree into " + filepath.Join(h.Root, ReleasesDir) + "/ and point current at the copy (ln -sfn), then deploy")
		}
		return st, nil
	}
	hash, err := ForeignHash(ctx, cur)
	if err != nil {
		return st, err
	}
	slot := drover.ForeignPrefix + hash[:12]
	if err := os.MkdirAll(h.releasesDir(), 0o755); err != nil {
		return st, drover.Errorf(drover.EFAILED, "adopt: %v", err)
	}
	dst := h.slotDir(slot)
	if fi, err := os.Lstat(dst); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return st, drover.Errorf(drover.EFAILED, "adopt: %s/%s already exists", ReleasesDir, slot).
				WithHint("a copy of the same tree is already under releases/: remove one of them by hand")
		}
		os.Remove(dst) // the link of an adopt that crashed before the exchange
	}
	link := ReleasesDir + "/" + slot
	if err := os.Symlink(link, dst); err != nil {
		return st, drover.Errorf(drover.EFAILED, "adopt: %v", err)
	}
	if err := exchange(cur, dst); err != nil {
		os.Remove(dst)
		return st, drover.Errorf(drover.EFAILED, "adopt: exchange %s with %s: %v", cur, dst, err).
			WithHint(exchangeHint + "; nothing was changed")
	}
	// The exchange is done; a failed sync only weakens durability, and
	// state.json below is synced on its own.
	_ = syncDir(h.Root)
	_ = syncDir(h.releasesDir())
	at := req.At
	if at.IsZero() {
		at = h.now()
	}
	prev := ""
	if st.Current != "" && h.slotExists(st.Current) {
		prev = st.Current
	}
	st.LiveDir = ""
	st.Foreign = cloneForeign(st.Foreign)
	st.Foreign[slot] = drover.Foreign{Link: link, Hash: hash}
	st.Current, st.Previous = slot, prev
	st.Release, st.Version, st.ConfigHash = "", "", ""
	st.DeployedAt, st.DeployID = at.UTC(), req.DeployID
	st.History = append(st.History, drover.HostHistoryEntry{Action: drover.ActionAdopt, To: slot, DeployID: req.DeployID, At: at.UTC(), Reason: req.Reason})
	if err := h.writeState(st); err != nil {
		return st, err
	}
	return h.State(ctx)
}

// IsSlotName reports whether s may name a directory under releases/, for
// callers that learn a slot name from a host (transport/ssh).
func IsSlotName(s string) bool { return checkSlot(s) == nil }
