package hostops

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"drover"
)

// linkShared makes every shared dir of req exist under
// <root>/shared/<name> and links it into the staging directory at <name>,
// before config files are rendered and validated: a validate like
// `nginx -t` opens the log and pid files its config names, and failed on
// a fresh release with no log directory until the operator added a
// before_stage mkdir by hand (issue 17).
//
// The link is relative (../../shared/logs for "logs"), so it holds after
// the staging directory is renamed to its slot, and when the deploy root
// is reached by another path. Shared data is never inside a release:
// a rollback is a swap of current and keeps it, and Prune, which only
// removes directories under releases/ (os.RemoveAll removes a link, never
// what it points to), never deletes it.
//
// A release that ships a file, a link or a non-empty directory where a
// shared dir goes is refused, naming the file: replacing it would drop
// content the release was built with, silently. An empty directory (a
// placeholder such as logs/ kept with the sources) is replaced by the
// link. Directories on the way to a nested shared dir (var/ for var/run)
// are made in the release when missing and must be real directories:
// a release shipping var as a link must not make drover create the link
// somewhere else.
func (h *Host) linkShared(stage, id string, shared []string, scratch bool) error {
	if len(shared) == 0 {
		return nil
	}
	if a, b, ok := drover.SharedDirsOverlap(shared); ok {
		return drover.Errorf(drover.EINVALID, "shared dirs %q and %q overlap", a, b).
			WithHint("list a directory once in shared_dirs, and not also one inside it")
	}
	root, err := os.OpenRoot(stage)
	if err != nil {
		return drover.Errorf(drover.EFAILED, "stage: %v", err)
	}
	defer root.Close()
	for _, name := range shared {
		if err := drover.CheckSharedDir(name); err != nil {
			return drover.Errorf(drover.EINVALID, "shared dir: %v", err).
				WithHint("shared_dirs entries are relative paths inside the release, like logs or var/run")
		}
		if err := h.linkOne(root, id, name, scratch); err != nil {
			return err
		}
	}
	return nil
}

func (h *Host) linkOne(root *os.Root, id, name string, scratch bool) error {
	where := "shared dir " + name
	shipped := func(p, what string) error {
		return drover.Errorf(drover.EINVALID, "%s: release %s ships %s (%s) where the link to %s/%s would go", where, id, p, what, drover.SharedDir, name).
			WithHint(fmt.Sprintf("remove %s from the release's source directory (the shared dir replaces it), or take %s out of shared_dirs", p, name))
	}
	// The directories on the way, inside the release.
	segs := strings.Split(name, "/")
	for i := 1; i < len(segs); i++ {
		dir := strings.Join(segs[:i], "/")
		fi, err := root.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := root.Mkdir(dir, 0o755); err != nil {
				return drover.Errorf(drover.EFAILED, "%s: make %s in the release: %v", where, dir, err)
			}
		case err != nil:
			return drover.Errorf(drover.EFAILED, "%s: %v", where, err)
		case !fi.IsDir():
			return shipped(dir, kindOf(fi))
		}
	}
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return drover.Errorf(drover.EFAILED, "%s: %v", where, err)
	case fi.IsDir():
		// Remove fails on a directory that is not empty: that is content.
		if err := root.Remove(name); err != nil {
			return shipped(name+"/", "a directory with files in it")
		}
	default:
		return shipped(name, kindOf(fi))
	}

	if scratch {
		// Validate: an empty directory in the scratch release.
		if err := root.Mkdir(name, 0o755); err != nil {
			return drover.Errorf(drover.EFAILED, "%s: make it in the release: %v", where, err)
		}
		return nil
	}
	// The shared directory itself, under the deploy root. It may be a
	// link the operator made (logs on another disk); it must lead to a
	// directory.
	dst := filepath.Join(h.Root, drover.SharedDir, filepath.FromSlash(name))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return drover.Errorf(drover.EFAILED, "%s: make %s: %v", where, dst, err).
			WithHint("a file is in the way, or the deploy root is not writable by the deploy user")
	}
	if fi, err := os.Stat(dst); err != nil || !fi.IsDir() {
		return drover.Errorf(drover.EFAILED, "%s: %s is not a directory", where, dst)
	}
	target := strings.Repeat("../", 2+strings.Count(name, "/")) + path.Join(drover.SharedDir, name)
	if err := root.Symlink(target, name); err != nil {
		return drover.Errorf(drover.EFAILED, "%s: link it into the release: %v", where, err)
	}
	return nil
}

func kindOf(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "a symlink"
	case fi.IsDir():
		return "a directory"
	default:
		return "a file"
	}
}
