package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"drover"
)

// BuildOptions says what Build makes.
type BuildOptions struct {
	Service string
	Version string
	// Out is the bundle path. "" means <Service>-<ID>.tar.gz in CacheDir.
	Out string
	// CacheDir is where a bundle goes when Out is "": "" means
	// drover-releases under os.TempDir().
	CacheDir string
	// Now is recorded as Manifest.Created; zero means time.Now().
	Now time.Time
	// Reuse, with Out "", returns the bundle already in CacheDir for the
	// same service, version, revision and content instead of packing the
	// tree again (its Created is when it was first built). The cached
	// bundle is verified completely first, as any bundle is (Open): a
	// damaged or changed one is built again. Older bundles beyond
	// KeepCached are removed.
	Reuse bool
}

// KeepCached is how many bundles a reusing build keeps in its cache
// directory: enough for the releases a rollback or a retry goes back
// to, few enough that a release every hour does not fill the disk.
const KeepCached = 5

// bundleEpoch is the modification time of every tar entry, so the same
// tree gives the same bytes (apart from the manifest's Created).
var bundleEpoch = time.Unix(0, 0).UTC()

// srcFile is one file found by the walk.
type srcFile struct {
	drover.ManifestFile
	abs string
}

// Build packs the directory src into a bundle and returns the release.
//
// It takes regular files, directories and symlinks whose relative target
// stays inside src; anything else (devices, fifos, sockets, absolute or
// escaping symlinks) is an EINVALID error naming the path, because a host
// would refuse the bundle anyway and it is better to learn that now.
// Skipped: version-control metadata (.git, .hg and .svn directories, and
// .git files of submodules and work trees: a host refuses a bundle
// carrying them, see checkPath), a
// drover-release.json at the root (the manifest of an unpacked release used
// as a source) and the output file when it lies inside src.
func Build(ctx context.Context, src string, o BuildOptions) (*drover.Release, error) {
	if err := ValidVersion(o.Version); err != nil {
		return nil, err
	}
	src, err := filepath.Abs(src)
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "release source %s: %v", src, err)
	}
	if fi, err := os.Stat(src); err != nil {
		return nil, notFoundOr(err, "release source "+src)
	} else if !fi.IsDir() {
		return nil, drover.Errorf(drover.EINVALID, "release source %s is not a directory", src)
	}
	outAbs := ""
	if o.Out != "" {
		if outAbs, err = filepath.Abs(o.Out); err != nil {
			return nil, drover.Errorf(drover.EINVALID, "release output %s: %v", o.Out, err)
		}
	}

	files, err := walkSource(ctx, src, outAbs)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	m := drover.Manifest{
		Service:  o.Service,
		Version:  o.Version,
		Created:  now.UTC(),
		Revision: gitRevision(ctx, src, outAbs),
	}
	for _, f := range files {
		m.Files = append(m.Files, f.ManifestFile)
	}
	m.ContentHash = ContentHash(m.Files)
	m.ID = releaseID(m.Version, m.ContentHash)
	// Build's own output must pass the checks a host applies; catching a
	// mistake here beats every host refusing the bundle.
	if _, err := checkManifest(&m); err != nil {
		return nil, err
	}

	if outAbs == "" {
		dir := o.CacheDir
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "drover-releases")
		}
		name := m.ID + ".tar.gz"
		if serviceNameRE.MatchString(o.Service) {
			name = o.Service + "-" + name
		}
		if outAbs, err = filepath.Abs(filepath.Join(dir, name)); err != nil {
			return nil, drover.Errorf(drover.EINVALID, "release cache %s: %v", dir, err)
		}
	}
	if o.Reuse && o.Out == "" {
		if r := cached(ctx, outAbs, &m); r != nil {
			return r, nil
		}
	}
	sum, size, err := writeBundle(ctx, outAbs, &m, files)
	if err != nil {
		return nil, err
	}
	if o.Reuse && o.Out == "" {
		pruneCache(filepath.Dir(outAbs), outAbs, KeepCached)
	}
	return &drover.Release{Manifest: m, BundlePath: outAbs, BundleSHA256: sum, BundleSize: size}, nil
}

// cached returns the bundle at path when it holds exactly the release m
// describes (the source tree was walked and hashed for m just now), or
// nil. Packing a large tree again costs seconds of compression on every
// deploy of the same release (a retry, the next environment, a rollback);
// verifying the cached bundle costs one read. A bundle that fails
// verification or describes anything else is packed again over it.
func cached(ctx context.Context, path string, m *drover.Manifest) *drover.Release {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	r, err := Open(ctx, path)
	if err != nil {
		return nil
	}
	c := r.Manifest
	if c.ID != m.ID || c.ContentHash != m.ContentHash || c.Service != m.Service || c.Version != m.Version ||
		c.Revision != m.Revision || ContentHash(c.Files) != m.ContentHash {
		return nil
	}
	now := time.Now()
	os.Chtimes(path, now, now) // the most recently used is kept longest
	return r
}

// pruneCache removes the bundles in dir beyond the keep most recently
// used, never keepPath. Errors are ignored: a bundle left behind costs
// disk, not correctness.
func pruneCache(dir, keepPath string, keep int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type bundle struct {
		path string
		mod  time.Time
	}
	var bs []bundle
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".tar.gz") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		bs = append(bs, bundle{filepath.Join(dir, e.Name()), fi.ModTime()})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].mod.After(bs[j].mod) })
	kept := 0
	for _, b := range bs {
		// A bundle used within the hour may be one a concurrent deploy is
		// still streaming to its hosts.
		if b.path == keepPath || kept < keep-1 || time.Since(b.mod) < time.Hour {
			if b.path != keepPath {
				kept++
			}
			continue
		}
		os.Remove(b.path)
	}
}

// bundleLevel is the gzip level of bundles; see writeBundle.
const bundleLevel = gzip.DefaultCompression

var serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// walkSource lists the files of src, sorted by path, with their sha256.
func walkSource(ctx context.Context, src, outAbs string) ([]srcFile, error) {
	var files []srcFile
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return drover.Errorf(drover.EINVALID, "release source %s: %v", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == src {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if vcsDir(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == drover.ManifestName || p == outAbs {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return drover.Errorf(drover.EINVALID, "release source %s: %v", p, err)
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			return nil
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return drover.Errorf(drover.EINVALID, "release source %s: %v", p, err)
			}
			files = append(files, srcFile{ManifestFile: drover.ManifestFile{Path: rel, Mode: modeSymlink, Link: filepath.ToSlash(target)}, abs: p})
		case mode.IsRegular():
			sum, n, err := hashFile(p)
			if err != nil {
				return drover.Errorf(drover.EINVALID, "release source %s: %v", p, err)
			}
			perm := uint32(modeFile)
			if mode&0o111 != 0 {
				perm = modeExec
			}
			files = append(files, srcFile{ManifestFile: drover.ManifestFile{Path: rel, Mode: perm, Size: n, SHA256: sum}, abs: p})
		default:
			return drover.Errorf(drover.EINVALID, "release source %s: %s is not a regular file, directory or symlink", p, fileKind(mode))
		}
		return nil
	})
	if err != nil {
		if e := ctx.Err(); e != nil {
			return nil, drover.Errorf(drover.ETIMEOUT, "release build: %v", e)
		}
		var de *drover.Error
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, drover.Errorf(drover.EINVALID, "release source %s: %v", src, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	// Symlinks are checked once every path is known, because whether a
	// target stays inside depends on the other symlinks it goes through.
	links := map[string]string{}
	for _, f := range files {
		if f.Link != "" {
			links[f.Path] = f.Link
		}
	}
	for _, f := range files {
		if f.Link != "" {
			if err := checkLink(f.Path, f.Link, links); err != nil {
				return nil, drover.Errorf(drover.EINVALID, "release source %s: %v", f.abs, err).
					WithHint("a release must be self-contained: copy the file into the release or make the link relative and inside it")
			}
		}
	}
	return files, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a fifo"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return "mode " + m.String()
	}
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// writeBundle writes the bundle to a temporary file next to out and
// renames it into place, so an interrupted build never leaves a truncated
// bundle under the name a deploy will use. Files are hashed again while
// they are copied: a file that changed since the walk would make the
// bundle disagree with its own manifest.
func writeBundle(ctx context.Context, out string, m *drover.Manifest, files []srcFile) (string, int64, error) {
	raw, err := encodeManifest(m)
	if err != nil {
		return "", 0, drover.Errorf(drover.EINTERNAL, "encode manifest: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", 0, drover.Errorf(drover.EINVALID, "release output %s: %v", out, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return "", 0, drover.Errorf(drover.EINVALID, "release output %s: %v", out, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	sum := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, sum)}
	// gzip's default level, not its best: on a 37 MB Go binary level 9
	// took 2.6 times the CPU of level 6 for a bundle 0.3% smaller
	// (bench/README.md), seconds of every directory deploy spent for
	// nothing. Hosts read either (the format is the same).
	zw, _ := gzip.NewWriterLevel(cw, bundleLevel)
	tw := tar.NewWriter(zw)
	hdr := func(name string, typ byte, mode int64, size int64, link string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, Linkname: link, ModTime: bundleEpoch, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(drover.ManifestName, tar.TypeReg, modeFile, int64(len(raw)), "")); err != nil {
		return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle: %v", err)
	}
	if _, err := tw.Write(raw); err != nil {
		return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle: %v", err)
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return "", 0, drover.Errorf(drover.ETIMEOUT, "release build: %v", err)
		}
		if f.Link != "" {
			if err := tw.WriteHeader(hdr(f.Path, tar.TypeSymlink, modeSymlink, 0, f.Link)); err != nil {
				return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle: %v", err)
			}
			continue
		}
		if err := tw.WriteHeader(hdr(f.Path, tar.TypeReg, int64(f.Mode), f.Size, "")); err != nil {
			return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle: %v", err)
		}
		if err := copyVerified(tw, f); err != nil {
			return "", 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle: %v", err)
	}
	if err := zw.Close(); err != nil {
		return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle: %v", err)
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle %s: %v", out, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle %s: %v", out, err)
	}
	if err := tmp.Close(); err != nil {
		return "", 0, drover.Errorf(drover.EINTERNAL, "write bundle %s: %v", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", 0, drover.Errorf(drover.EINVALID, "release output %s: %v", out, err)
	}
	return hex.EncodeToString(sum.Sum(nil)), cw.n, nil
}

func copyVerified(w io.Writer, f srcFile) error {
	in, err := os.Open(f.abs)
	if err != nil {
		return drover.Errorf(drover.EINVALID, "release source %s: %v", f.abs, err)
	}
	defer in.Close()
	h := sha256.New()
	// Copy at most Size+1 bytes: a grown file must fail here, not make
	// the tar writer report a confusing "write too long".
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(in, f.Size+1))
	if err == nil && (n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256) {
		err = fmt.Errorf("file changed while the release was being built")
	}
	if err != nil {
		return drover.Errorf(drover.EINVALID, "release source %s: %v", f.abs, err).WithHint("build again once nothing is writing to the source tree")
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// gitRevision returns HEAD of the git work tree src is in, with "-dirty"
// when the tree under src has uncommitted changes, or "" when src is not in
// a work tree or git is not installed: a revision is a help for people
// reading history, never a requirement to build.
func gitRevision(ctx context.Context, src, outAbs string) string {
	if _, err := exec.LookPath("git"); err != nil {
		return ""
	}
	out, err := exec.CommandContext(ctx, "git", gitArgs(src, "rev-parse", "HEAD")...).Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if rev == "" {
		return ""
	}
	args := gitArgs(src, "status", "--porcelain", "--", ".")
	// The bundle being written into the tree must not make it "dirty".
	if rel, err := filepath.Rel(src, outAbs); outAbs != "" && err == nil && filepath.IsLocal(rel) {
		args = append(args, ":(exclude)"+filepath.ToSlash(rel))
	}
	st, err := exec.CommandContext(ctx, "git", args...).Output()
	if err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "-dirty"
	}
	return rev
}

// gitArgs runs git on src without letting the repository's own config
// run anything: core.fsmonitor names a command git status runs, and hooks
// are commands too. A source directory can be an unpacked bundle or a
// checkout someone else controls; reading its revision must not execute
// it. --no-optional-locks keeps status from writing the index.
func gitArgs(src string, args ...string) []string {
	return append([]string{"--no-optional-locks", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-C", src}, args...)
}

// notFoundOr maps a missing path to ENOTFOUND and anything else to
// EINVALID, naming what.
func notFoundOr(err error, what string) error {
	if errors.Is(err, fs.ErrNotExist) {
		return drover.Errorf(drover.ENOTFOUND, "%s: no such file or directory", what)
	}
	return drover.Errorf(drover.EINVALID, "%s: %v", what, err)
}
