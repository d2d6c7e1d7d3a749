package hostops

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"drover"
)

// geteuid is os.Geteuid; a test sets it to see a host not running as root.
var geteuid = os.Geteuid

// writeRendered writes a rendered config file to dest through root,
// replacing a regular file of the release but never writing through a
// symlink: a release's link "hello.conf -> shared/hello.conf" must not
// turn rendering into an edit of another file.
//
// The file gets f's mode (0640 unless the config says otherwise: config
// files hold secrets, and 0644 in a 0755 tree let every local user read
// them), and its owner and group when the config names them. Only root
// can give a file away, so owner/group on a host where drover host is not
// root is an error rather than a file left with the wrong owner.
func writeRendered(root *os.Root, dest string, f drover.RenderedFile) error {
	uid, gid, err := lookupOwner(f.Owner, f.Group)
	if err != nil {
		return err
	}
	if fi, err := root.Lstat(dest); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s exists in the release and is not a regular file", dest)
		}
		if err := root.Remove(dest); err != nil {
			return err
		}
	}
	if dir := filepath.Dir(dest); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if f.FileMode()&0o111 != 0 {
		// As in release.Unpack: an executable open for writing while
		// another goroutine forks is inherited by the child, and running
		// it then fails with ETXTBSY.
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
	}
	// Created 0600 and widened after: the content is never readable by
	// more than the final mode allows, whatever the umask.
	w, err := root.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = w.Write(f.Content)
	if err == nil && (uid >= 0 || gid >= 0) {
		err = w.Chown(uid, gid)
	}
	if err == nil {
		err = w.Chmod(f.FileMode())
	}
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// configFileError names the file, keeping a *drover.Error's code and hint.
func configFileError(dest string, err error) error {
	var de *drover.Error
	if errors.As(err, &de) {
		return &drover.Error{Code: de.Code, Message: "config file " + dest + ": " + de.Message, Hint: de.Hint}
	}
	return drover.Errorf(drover.EINVALID, "config file %s: %v", dest, err)
}

// lookupOwner resolves owner and group (names or numeric ids) to ids on
// this host; -1 leaves one unchanged.
func lookupOwner(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner == "" && group == "" {
		return uid, gid, nil
	}
	if euid := geteuid(); euid != 0 {
		return 0, 0, drover.Errorf(drover.EINVALID, "owner/group (%s:%s) need drover host to run as root, and it runs as uid %d", owner, group, euid).
			WithHint("deploy to this host as root (ssh.user: root), or leave config_files[].owner and group out and give the deploy user's group access with mode")
	}
	if owner != "" {
		if uid, err = strconv.Atoi(owner); err != nil {
			u, lerr := user.Lookup(owner)
			if lerr != nil {
				return 0, 0, drover.Errorf(drover.EINVALID, "owner %q: no such user on this host", owner).
					WithHint("create the user on every host, or use its numeric id")
			}
			uid, _ = strconv.Atoi(u.Uid)
		}
	}
	if group != "" {
		if gid, err = strconv.Atoi(group); err != nil {
			g, lerr := user.LookupGroup(group)
			if lerr != nil {
				return 0, 0, drover.Errorf(drover.EINVALID, "group %q: no such group on this host", group).
					WithHint("create the group on every host, or use its numeric id")
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	return uid, gid, nil
}
