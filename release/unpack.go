package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"syscall"

	"drover"
)

// Unpack extracts a bundle stream into dest, an existing empty directory,
// verifying it as it goes, and returns its manifest. The manifest itself is
// written too, as drover.ManifestName at the top of dest.
//
// It refuses, with an EINVALID error naming the entry: absolute paths and
// ".." components, entries below a symlink, symlinks that are absolute or
// resolve outside dest, hard links, devices and fifos, setuid, setgid and
// sticky bits, entries not in the manifest, size or sha256 mismatches,
// files the manifest lists that never arrive, and duplicates.
//
// Every write goes through an os.Root opened on dest, which refuses to
// follow any path or symlink out of it: the checks above say why a bundle
// is bad, the os.Root makes sure that even a check we got wrong cannot
// write outside dest. On error dest is emptied again, so a caller never
// mistakes a half-extracted release for a staged one.
func Unpack(r io.Reader, dest string) (drover.Manifest, error) {
	return unpack(r, dest, true, nil)
}

// UnpackBundle is Unpack for the bundle whose sha256 and size a release
// carries (drover.Release's BundleSHA256 and BundleSize, which Open and
// Build set only for a bundle whose every entry matched its manifest). It
// hashes the whole stream and refuses, emptying dest, a stream that is
// not that bundle: damaged or replaced in transit. The entries are not
// hashed one by one: bytes with the bundle's sha256 are the bundle Open
// verified entry by entry, and hashing every file again doubled the
// hashing a host does to stage (bench/README.md). Everything else Unpack
// checks it checks; size <= 0 is not compared.
func UnpackBundle(r io.Reader, dest, sum string, size int64) (drover.Manifest, error) {
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(r, h)}
	var m drover.Manifest
	return unpack(cr, dest, false, func(got drover.Manifest) error {
		m = got
		// readBundle stops at the end of the tar stream; the bundle's
		// sha256 covers the whole file.
		if _, err := io.Copy(io.Discard, cr); err != nil {
			return drover.Errorf(drover.EFAILED, "release %s: receive bundle: %v", m.ID, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			return drover.Errorf(drover.EINVALID, "release %s: bundle sha256 is %s, expected %s", m.ID, got, sum).
				WithHint("the bundle was damaged or replaced in transit; stage again")
		}
		if size > 0 && cr.n != size {
			return drover.Errorf(drover.EINVALID, "release %s: bundle is %d bytes, expected %d", m.ID, cr.n, size)
		}
		return nil
	})
}

// unpack is Unpack, hashing every entry when hashFiles is set; check, when
// set, must accept the stream once readBundle is done with it, before
// anything is reported unpacked.
func unpack(r io.Reader, dest string, hashFiles bool, check func(drover.Manifest) error) (drover.Manifest, error) {
	fi, err := os.Stat(dest)
	if err != nil {
		return drover.Manifest{}, drover.Errorf(drover.EINVALID, "unpack into %s: %v", dest, err)
	}
	if !fi.IsDir() {
		return drover.Manifest{}, drover.Errorf(drover.EINVALID, "unpack into %s: not a directory", dest)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return drover.Manifest{}, drover.Errorf(drover.EINVALID, "unpack into %s: %v", dest, err)
	}
	defer root.Close()
	if names, err := readNames(root); err != nil {
		return drover.Manifest{}, drover.Errorf(drover.EINVALID, "unpack into %s: %v", dest, err)
	} else if len(names) > 0 {
		// Extracting over existing files would mix two releases, and
		// O_EXCL below would fail half way through.
		return drover.Manifest{}, drover.Errorf(drover.EINVALID, "unpack into %s: directory is not empty", dest)
	}

	u := &unpacker{root: root, dirs: map[string]bool{}}
	m, err := readBundle(r, hashFiles, u.manifest, u.entry)
	if err == nil && check != nil {
		err = check(m)
	}
	if err == nil {
		err = u.finish()
	}
	if err != nil {
		if rerr := emptyDir(root); rerr != nil {
			err = errors.Join(err, drover.Errorf(drover.EINTERNAL, "clean up %s: %v", dest, rerr))
		}
		return drover.Manifest{}, err
	}
	return m, nil
}

type unpacker struct {
	root *os.Root
	dirs map[string]bool
}

func (u *unpacker) manifest(raw []byte) error {
	return u.writeFile(drover.ManifestName, modeFile, bytes.NewReader(raw))
}

func (u *unpacker) entry(e entry) error {
	if err := u.mkdirs(path.Dir(e.File.Path)); err != nil {
		return entryError(e.File.Path, "%v", err)
	}
	if e.File.Link != "" {
		// os.Root.Symlink does not look at the target; checkManifest has
		// resolved it through every other link of the release already.
		if err := u.root.Symlink(e.File.Link, e.File.Path); err != nil {
			return entryError(e.File.Path, "%v", err)
		}
		return nil
	}
	return u.writeFile(e.File.Path, fs.FileMode(e.File.Mode), e.Content)
}

func (u *unpacker) mkdirs(dir string) error {
	if dir == "." || u.dirs[dir] {
		return nil
	}
	if err := u.mkdirs(path.Dir(dir)); err != nil {
		return err
	}
	if err := u.root.Mkdir(dir, 0o755); err != nil {
		return err
	}
	u.dirs[dir] = true
	return nil
}

// writeFile creates name (never opening an existing file or link: O_EXCL)
// and sets its mode explicitly, since the umask would otherwise decide
// whether the service can read its own files.
func (u *unpacker) writeFile(name string, mode fs.FileMode, content io.Reader) error {
	if mode.Perm()&0o111 != 0 {
		// An executable open for writing while another goroutine forks
		// is inherited by the child until it execs; running the file in
		// that window fails with ETXTBSY ("Text file busy": a validate
		// command or restart hook of a host staged in parallel). Holding
		// the fork lock while the file is open means no child can hold
		// it (the same lock the syscall package uses around fd creation).
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
	}
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return entryError(name, "%v", err)
	}
	_, err = io.Copy(f, content)
	if err == nil {
		err = f.Chmod(mode.Perm())
	}
	if err == nil {
		// A crash after promote must not leave current pointing at
		// files the kernel never wrote out.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var de *drover.Error
		if errors.As(err, &de) {
			return err
		}
		return entryError(name, "%v", tarErr(err))
	}
	return nil
}

// finish sets directory modes (the umask may have narrowed them) and
// flushes the directories themselves.
func (u *unpacker) finish() error {
	dirs := make([]string, 0, len(u.dirs)+1)
	for d := range u.dirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := u.root.Chmod(d, 0o755); err != nil {
			return drover.Errorf(drover.EINTERNAL, "unpack: %v", err)
		}
	}
	for _, d := range append(dirs, ".") {
		if err := syncDir(u.root, d); err != nil {
			return drover.Errorf(drover.EINTERNAL, "unpack: %v", err)
		}
	}
	return nil
}

func syncDir(root *os.Root, name string) error {
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func readNames(root *os.Root) ([]string, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

func emptyDir(root *os.Root) error {
	names, err := readNames(root)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, root.RemoveAll(n))
	}
	return errors.Join(errs...)
}
