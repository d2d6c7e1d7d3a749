package server

import (
	"os"
	"path/filepath"
	"strings"

	"drover"
)

// This file decides which paths a deploy request may name as its release.
//
// {"release": "/any/dir"} used to pack whatever directory the server could
// read — its own ~/.ssh included — into a release and ship it to every
// host, world-readable; and the error for a refused path told whether it
// existed and what it was. So a path is taken only inside the releases
// directory the operator named (drover server --releases-dir), after
// every symlink is resolved, for every role: an admin token is a network
// credential too, and the server's files are not the admin's to read
// through it. Every refusal is the same sentence, whether the path exists,
// is a file, a dangling link or a link out of the directory.

// releasesDir resolves the configured releases directory once, so that a
// symlinked /srv/releases compares equal to the paths resolved below it.
func releasesDir(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", drover.Errorf(drover.EINVALID, "--releases-dir %s: %v", dir, err)
		}
		dir = abs
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", drover.Errorf(drover.EINVALID, "--releases-dir %s: %v", dir, err).
			WithHint("create the directory that deployers put releases in, or drop --releases-dir to accept uploaded bundles only")
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.IsDir() {
		return "", drover.Errorf(drover.EINVALID, "--releases-dir %s is not a directory", dir)
	}
	return real, nil
}

// releasePath returns the resolved path of a release a request named, or
// the one refusal that says nothing about the path.
func (s *Server) releasePath(path string) (string, error) {
	if s.cfg.ReleasesDir == "" {
		return "", drover.Errorf(drover.EFORBIDDEN, "this server takes no release paths: it was started without --releases-dir").
			WithHint("upload a bundle (drover deploy --server does), or start the server with --releases-dir DIR and put releases there")
	}
	refused := drover.Errorf(drover.EFORBIDDEN, "release %q is not a release in the server's releases directory %s", path, s.cfg.ReleasesDir).
		WithHint("put the release directory or bundle inside " + s.cfg.ReleasesDir + ", or upload a bundle")
	real, err := filepath.EvalSymlinks(filepath.Clean(path))
	if err != nil || !inside(s.cfg.ReleasesDir, real) {
		return "", refused
	}
	return real, nil
}

// inside reports whether path is dir or below it; both are clean and
// absolute.
func inside(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
