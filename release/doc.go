// Package release builds and verifies release bundles.
//
// A bundle is a gzip-compressed tar file. Its first entry is the manifest,
// drover.ManifestName, which lists every regular file and symlink of the
// release with its permission bits, size and sha256 (or link target). After
// the manifest come the entries themselves, sorted by path. Directories are
// not entries: they are implied by the paths of the files under them, so an
// empty directory is not part of a release (put a placeholder file in it).
//
// The content hash is the sha256 over one line per file,
// "path\x00mode\x00sha256-or-link\n", sorted by path; the release ID is
// <version>-<first 12 hex of the content hash>. Two builds of the same tree
// have the same ID on any machine: modes are normalised to 0755 or 0644 (a
// umask or a git checkout must not change the identity of a release), and
// the tar stream has fixed owners and timestamps.
//
// A bundle is data from elsewhere, so it is treated as hostile until it has
// been verified: Open and Unpack refuse anything a bundle built by Build
// would never contain (absolute or ".." paths, entries below a symlink,
// symlinks leading out of the release, hard links, devices, setuid bits,
// entries missing from the manifest or not matching it). Unpack writes only
// through an os.Root, so even a bug in these checks cannot write outside the
// destination: that is the tarball path traversal (CVE-2007-4559 and its many
// descendants) that has written /etc/cron.d files from "release archives".
package release
