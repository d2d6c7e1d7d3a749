package release

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"drover"
)

// Mode bits a release keeps. Build normalises every file to one of these:
// the same tree checked out with umask 002 on one machine and 022 on another
// must be the same release.
const (
	modeExec    = 0o755
	modeFile    = 0o644
	modeSymlink = 0o777
)

// maxManifestSize bounds the manifest a bundle may carry, so a hostile
// bundle cannot make a host allocate without limit before anything is
// verified.
const maxManifestSize = 64 << 20

var versionRE = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)

// ValidVersion reports whether v can be a release version: it becomes part
// of a directory name on every host, so it is limited to [A-Za-z0-9._+-].
func ValidVersion(v string) error {
	if !versionRE.MatchString(v) || v == "." || v == ".." || len(v) > 128 {
		return drover.Errorf(drover.EINVALID, "release version %q: use 1 to 128 of the characters A-Z a-z 0-9 . _ + -", v)
	}
	return nil
}

// ContentHash returns the hex sha256 over the sorted lines
// "path\x00mode\x00sha256-or-link\n" of files.
func ContentHash(files []drover.ManifestFile) string {
	sorted := append([]drover.ManifestFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	h := sha256.New()
	for _, f := range sorted {
		v := f.SHA256
		if f.Link != "" {
			v = f.Link
		}
		fmt.Fprintf(h, "%s\x00%o\x00%s\n", f.Path, f.Mode, v)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// releaseID is <version>-<12 hex of the content hash>.
func releaseID(version, contentHash string) string {
	return version + "-" + contentHash[:12]
}

// checkPath refuses a path that is not a plain relative path inside the
// release: absolute paths and ".." components are how a tarball writes
// outside the directory it is extracted to.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("NUL byte in path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("absolute path")
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return fmt.Errorf("path contains \"..\"")
		}
		if vcsDir(c) {
			return fmt.Errorf("%s is version-control metadata, which a release must not carry: its config runs commands "+
				"(git's core.fsmonitor, hooks) when git looks at the directory, e.g. when a release is built from it; "+
				"drover release build leaves .git, .hg and .svn out, so rebuild the bundle with it", c)
		}
	}
	if path.Clean(p) != p || p == "." {
		return fmt.Errorf("path is not clean (want %q)", path.Clean(p))
	}
	if p == drover.ManifestName {
		return fmt.Errorf("path is the manifest's reserved name")
	}
	return nil
}

// vcsDir reports whether a path component is version-control metadata.
// Case is ignored: on a case-insensitive file system .GIT is git's too.
func vcsDir(name string) bool {
	for _, v := range []string{".git", ".hg", ".svn"} {
		if strings.EqualFold(name, v) {
			return true
		}
	}
	return false
}

// entryError names a bundle entry in an EINVALID error, or in an EFAILED
// one when what failed is the disk it was written to (diskError).
func entryError(name, format string, args ...any) error {
	for _, a := range args {
		if err, ok := a.(error); ok && diskError(err) {
			return drover.Errorf(drover.EFAILED, "bundle entry %q: %s", name, fmt.Sprintf(format, args...)).
				WithHint("the host's disk refused the write: free space (or fix the file system) where the release is unpacked, then run the deploy again")
		}
	}
	return drover.Errorf(drover.EINVALID, "bundle entry %q: %s", name, fmt.Sprintf(format, args...))
}

// diskError reports whether err is the disk's fault, not the bundle's: a
// full disk, a quota, a read-only file system, an I/O error. Called
// EINVALID, it would exit 2, which tells the operator to fix an input
// that is fine, and send them away from the host that needs them.
func diskError(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// checkManifest verifies that m describes a release Build could have made:
// safe, unique paths, no file below a symlink or below another file,
// symlinks that stay inside the release, permission bits only, well-formed
// hashes, and a content hash and ID that match the files. It returns the
// files by path.
func checkManifest(m *drover.Manifest) (map[string]drover.ManifestFile, error) {
	if err := ValidVersion(m.Version); err != nil {
		return nil, drover.Errorf(drover.EINVALID, "manifest: %v", err)
	}
	byPath := make(map[string]drover.ManifestFile, len(m.Files))
	links := map[string]string{}
	for _, f := range m.Files {
		if err := checkPath(f.Path); err != nil {
			return nil, entryError(f.Path, "%v", err)
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, entryError(f.Path, "listed twice in the manifest")
		}
		byPath[f.Path] = f
		if f.Link != "" {
			if f.Mode != modeSymlink || f.SHA256 != "" || f.Size != 0 {
				return nil, entryError(f.Path, "symlink with mode, size or sha256 set")
			}
			links[f.Path] = f.Link
			continue
		}
		if f.Mode&^0o777 != 0 {
			return nil, entryError(f.Path, "mode %o has bits other than permissions (setuid, setgid, sticky)", f.Mode)
		}
		if f.Mode != modeExec && f.Mode != modeFile {
			return nil, entryError(f.Path, "mode %o: want 755 or 644", f.Mode)
		}
		if f.Size < 0 {
			return nil, entryError(f.Path, "negative size")
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size {
			return nil, entryError(f.Path, "sha256 %q is not 64 hex digits", f.SHA256)
		}
	}
	for _, f := range m.Files {
		// A file below a symlink would be written through the link, which
		// is how "symlink to /etc, then etc/cron.d/x" escapes an extractor
		// that checks each entry on its own. A file below another file is
		// simply unrepresentable.
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			if p, ok := byPath[dir]; ok {
				if p.Link != "" {
					return nil, entryError(f.Path, "parent %q is a symlink", dir)
				}
				return nil, entryError(f.Path, "parent %q is a file", dir)
			}
		}
		if f.Link != "" {
			if err := checkLink(f.Path, f.Link, links); err != nil {
				return nil, entryError(f.Path, "%v", err)
			}
		}
	}
	hash := ContentHash(m.Files)
	if m.ContentHash != hash {
		return nil, drover.Errorf(drover.EINVALID, "manifest: content hash %q does not match the files (%s)", m.ContentHash, hash)
	}
	if want := releaseID(m.Version, hash); m.ID != want {
		return nil, drover.Errorf(drover.EINVALID, "manifest: release id %q does not match version and content (%s)", m.ID, want)
	}
	return byPath, nil
}

// checkLink refuses a symlink at name with the given target unless the
// target, resolved the way the kernel would through the release's other
// symlinks, stays inside the release. A purely lexical check is not enough:
// with "d/up -> .." the target "d/up/../x" looks like "d/x" but is "../x".
func checkLink(name, target string, links map[string]string) error {
	if target == "" {
		return fmt.Errorf("empty symlink target")
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Errorf("symlink target %q is absolute", target)
	}
	if strings.ContainsRune(target, 0) {
		return fmt.Errorf("NUL byte in symlink target")
	}
	hops := 0
	if _, err := resolve(path.Dir(name), target, links, &hops); err != nil {
		return fmt.Errorf("symlink target %q: %v", target, err)
	}
	return nil
}

// resolve resolves rel against dir ("." is the release root) following the
// release's symlinks, and fails if any step leaves the release. It returns
// the resolved path relative to the root.
func resolve(dir, rel string, links map[string]string, hops *int) (string, error) {
	var stack []string
	if dir != "." {
		stack = strings.Split(dir, "/")
	}
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return "", fmt.Errorf("leads outside the release")
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		cur := strings.Join(stack, "/")
		if t, ok := links[cur]; ok {
			if *hops++; *hops > 40 {
				return "", fmt.Errorf("too many levels of symlinks")
			}
			if strings.HasPrefix(t, "/") {
				return "", fmt.Errorf("goes through %q, an absolute symlink", cur)
			}
			r, err := resolve(path.Dir(cur), t, links, hops)
			if err != nil {
				return "", err
			}
			stack = nil
			if r != "." {
				stack = strings.Split(r, "/")
			}
		}
	}
	if len(stack) == 0 {
		return ".", nil
	}
	return strings.Join(stack, "/"), nil
}
