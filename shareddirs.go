package drover

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
)

// SharedDir is where shared_dirs live under a deploy root: a shared dir
// "logs" is <deploy_root>/shared/logs on every host, made once and linked
// into every release as <release>/logs (Capistrano's linked_dirs). What a
// service writes there (logs, pid files, uploads) outlives releases: a
// rollback swaps current and the data stays, and pruning, which only ever
// removes directories under releases/, never reaches it.
const SharedDir = "shared"

// CheckSharedDir refuses a shared_dirs entry that is not a clean relative
// path inside a release: the name becomes both a link inside the release
// and a directory under <deploy_root>/shared, so "../x" or "/var" would
// make drover create or link a directory outside the deploy root.
func CheckSharedDir(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case strings.ContainsRune(name, 0) || strings.Contains(name, "\\"):
		return fmt.Errorf("%q holds a NUL or a backslash", name)
	case path.IsAbs(name):
		return fmt.Errorf("%q is absolute; name a directory inside the release, like logs", name)
	case name == "." || path.Clean(name) == ".":
		return fmt.Errorf("%q is the release directory itself", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return fmt.Errorf("%q leaves the release directory", name)
		}
	}
	if path.Clean(name) != name {
		return fmt.Errorf("%q is not a clean path; write it as %q", name, path.Clean(name))
	}
	switch strings.SplitN(name, "/", 2)[0] {
	case ManifestName, ".drover-slot.json":
		return fmt.Errorf("%q is a name drover keeps for itself", name)
	}
	return nil
}

// SharedDirsOverlap returns the first pair where one shared dir is the
// other or lies inside it ("logs" and "logs/nginx"): the inner one would be
// linked through the outer one's link, into the shared directory itself.
func SharedDirsOverlap(names []string) (a, b string, ok bool) {
	for i, x := range names {
		for _, y := range names[i+1:] {
			if x == y || strings.HasPrefix(y, x+"/") || strings.HasPrefix(x, y+"/") {
				return x, y, true
			}
		}
	}
	return "", "", false
}

// InSharedDir returns the shared dir that p (a path inside the release)
// is or lies in, "" when none: a config file rendered there would be
// written through the link into the shared directory, where every release
// sees it and no rollback takes it back.
func InSharedDir(p string, shared []string) string {
	p = path.Clean(p)
	for _, s := range shared {
		if p == s || strings.HasPrefix(p, s+"/") {
			return s
		}
	}
	return ""
}

// SlotHash is the hash a staged slot records and the controller compares
// to tell whether a host already runs the wanted release as configured:
// ConfigHash of the rendered files, and, when shared_dirs is set, the
// shared dir names too — adding one must restage hosts whose release
// directory lacks its link. Without shared dirs it is ConfigHash exactly,
// so hosts staged before shared_dirs existed stay up to date.
func SlotHash(files []RenderedFile, shared []string) string {
	h := ConfigHash(files)
	if len(shared) == 0 {
		return h
	}
	names := append([]string(nil), shared...)
	sort.Strings(names)
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\x00shared_dirs", h)
	for _, n := range names {
		fmt.Fprintf(sum, "\x00%s", n)
	}
	return hex.EncodeToString(sum.Sum(nil))
}
