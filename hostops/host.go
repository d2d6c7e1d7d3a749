package hostops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"drover"
)

// Names under the deploy root and inside a slot.
const (
	ReleasesDir  = "releases"
	CurrentLink  = "current"
	SlotMetaName = ".drover-slot.json"
	stagePrefix  = ".stage-"
)

// MaxHistory is how many entries state.json keeps: enough to find the
// release before the previous one for `drover rollback`, bounded so the
// file does not grow with every deploy for years.
const MaxHistory = 100

// Host is one deploy root on a local filesystem.
type Host struct {
	// Root is the deploy root.
	Root string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RunValidate runs a config file's validate command in dir; nil runs
	// it with `sh -c` through RunShell.
	RunValidate func(ctx context.Context, dir, command string) (drover.ExecResult, error)
	// ValidateTimeout bounds one validate command; 0 means
	// drover.DefaultHookTimeout.
	ValidateTimeout time.Duration
	// Notify is told what Lock waits for (and what it killed); nil
	// says nothing.
	Notify func(msg string)
	// LockWait bounds Lock's wait for a holder that recorded no hook
	// deadline; 0 means drover.DefaultHookTimeout.
	LockWait time.Duration
}

// SlotMeta is .drover-slot.json in a slot: what the directory holds, so a
// later stage can tell whether it may reuse it and a rollback can say which
// release it goes back to without trusting the directory name.
type SlotMeta struct {
	Release    string    `json:"release"`
	Version    string    `json:"version"`
	ConfigHash string    `json:"config_hash"`
	StagedAt   time.Time `json:"staged_at"`
}

func (h *Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Host) releasesDir() string        { return filepath.Join(h.Root, ReleasesDir) }
func (h *Host) slotDir(slot string) string { return filepath.Join(h.Root, ReleasesDir, slot) }

// State reads state.json. A host never deployed to has none and returns
// the zero HostState.
//
// What is live overrides it where another tool put it there (foreign.go):
// a host Capistrano deployed has no state.json but a current link, and its
// release is current, never "none".
func (h *Host) State(ctx context.Context) (drover.HostState, error) {
	st, err := h.readState()
	if err != nil {
		return st, err
	}
	return h.overlayLive(st), nil
}

// readState reads state.json as it is stored.
func (h *Host) readState() (drover.HostState, error) {
	var st drover.HostState
	b, err := os.ReadFile(filepath.Join(h.Root, drover.StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, drover.Errorf(drover.EFAILED, "read %s: %v", drover.StateFile, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, drover.Errorf(drover.EFAILED, "%s is corrupt: %v", filepath.Join(h.Root, drover.StateFile), err).
			WithHint("compare it with `ls -l current releases/` and fix or remove it by hand")
	}
	return st, nil
}

// writeState replaces state.json atomically: a temporary file, fsync,
// rename, fsync of the directory. A crash in the middle leaves the old or
// the new file, never a half-written one that would make the host look
// never deployed (and the next deploy's "previous" empty).
func (h *Host) writeState(st drover.HostState) error {
	if n := len(st.History); n > MaxHistory {
		st.History = append([]drover.HostHistoryEntry(nil), st.History[n-MaxHistory:]...)
	}
	st.LiveDir = "" // read from the host, never stored
	trimForeign(&st)
	h.hashForeign(&st)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return drover.Errorf(drover.EINTERNAL, "encode state: %v", err)
	}
	if err := writeFileAtomic(h.Root, drover.StateFile, append(b, '\n')); err != nil {
		return drover.Errorf(drover.EFAILED, "write %s: %v", drover.StateFile, err)
	}
	return nil
}

func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadFile reads a file relative to the deploy root (plan diffs read
// current/<config>). Paths that leave the deploy root are refused, also
// through symlinks; a missing file is ENOTFOUND.
func (h *Host) ReadFile(ctx context.Context, rel string) ([]byte, error) {
	if !filepath.IsLocal(rel) {
		return nil, drover.Errorf(drover.EINVALID, "read %s: path must be relative and inside the deploy root", rel)
	}
	root, err := os.OpenRoot(h.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, drover.Errorf(drover.ENOTFOUND, "read %s: deploy root %s does not exist", rel, h.Root)
	}
	if err != nil {
		return nil, drover.Errorf(drover.EFAILED, "read %s: %v", rel, err)
	}
	defer root.Close()
	b, err := root.ReadFile(rel)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, drover.Errorf(drover.ENOTFOUND, "read %s: no such file", rel)
	case strings.Contains(err.Error(), "escapes"):
		return nil, drover.Errorf(drover.EINVALID, "read %s: path leads outside the deploy root", rel)
	default:
		return nil, drover.Errorf(drover.EFAILED, "read %s: %v", rel, err)
	}
}

// ReadSlotMeta reads releases/<slot>/.drover-slot.json.
func (h *Host) ReadSlotMeta(slot string) (SlotMeta, error) {
	var m SlotMeta
	if err := checkSlot(slot); err != nil {
		return m, err
	}
	b, err := os.ReadFile(filepath.Join(h.slotDir(slot), SlotMetaName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, drover.Errorf(drover.ENOTFOUND, "release dir %s/%s has no %s", ReleasesDir, slot, SlotMetaName)
	}
	if err != nil {
		return m, drover.Errorf(drover.EFAILED, "read %s/%s/%s: %v", ReleasesDir, slot, SlotMetaName, err)
	}
	return ParseSlotMeta(b)
}

// ParseSlotMeta decodes a .drover-slot.json, for callers that read it
// through a drover.HostConn.
func ParseSlotMeta(b []byte) (SlotMeta, error) {
	var m SlotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, drover.Errorf(drover.EFAILED, "%s is corrupt: %v", SlotMetaName, err)
	}
	return m, nil
}

// SlotMetaPath is where a slot's metadata lives relative to the deploy
// root, for drover.HostConn.ReadFile.
func SlotMetaPath(slot string) string { return ReleasesDir + "/" + slot + "/" + SlotMetaName }

// checkSlot refuses slot names that are not a single directory name under
// releases/: a slot name comes from state.json, a request or the command
// line, and "../x" must not become a current link pointing anywhere.
func checkSlot(slot string) error {
	if slot == "" || slot == "." || slot == ".." || strings.ContainsAny(slot, "/\\\x00") ||
		strings.HasPrefix(slot, ".") || len(slot) > 255 {
		return drover.Errorf(drover.EINVALID, "%q is not a release slot name", slot)
	}
	return nil
}

// exists reports whether releases/<slot> is a directory.
func (h *Host) slotExists(slot string) bool {
	fi, err := os.Lstat(h.slotDir(slot))
	return err == nil && fi.IsDir()
}

// Slots lists the slot directories under releases/, sorted by name.
func (h *Host) Slots() ([]string, error) {
	ents, err := os.ReadDir(h.releasesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, drover.Errorf(drover.EFAILED, "list %s: %v", ReleasesDir, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && checkSlot(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func randomSuffix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
