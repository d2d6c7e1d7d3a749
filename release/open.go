package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"drover"
)

// Open reads the bundle file at path, verifies it completely (the manifest
// first, every entry listed with a matching size and sha256, nothing
// unlisted, duplicated or unsafe, content hash and ID consistent) and
// returns the release. A missing file is ENOTFOUND; anything wrong with
// the bundle is EINVALID naming the entry.
func Open(ctx context.Context, path string) (*drover.Release, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "release %s: %v", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, withBundleHint(notFoundOr(err, "release "+path))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, drover.Errorf(drover.EINVALID, "release %s is a directory, not a bundle", path)
	}
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(&ctxReader{ctx: ctx, r: f}, h)}
	m, err := readBundle(cr, true, nil, func(entry) error { return nil })
	if err != nil {
		if e := ctx.Err(); e != nil {
			return nil, drover.Errorf(drover.ETIMEOUT, "release %s: %v", path, e)
		}
		return nil, withDamagedHint(wrapWhere(err, "release "+path))
	}
	// The bundle's sha256 covers the whole file, including whatever the
	// gzip reader did not need.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, drover.Errorf(drover.EINVALID, "release %s: %v", path, err)
	}
	return &drover.Release{Manifest: m, BundlePath: abs, BundleSHA256: hex.EncodeToString(h.Sum(nil)), BundleSize: cr.n}, nil
}

// Resolve turns the --release argument of a deploy into a verified
// release. A directory is built into cacheDir; its version is the given
// one or, when that is "", the content of a VERSION file at its root. A
// file is opened as a bundle, and a given version must match the
// manifest's: deploying "v2" from a file that holds v1 is a typo that must
// stop before any host is touched.
func Resolve(ctx context.Context, src, version, service, cacheDir string, now time.Time) (*drover.Release, error) {
	return resolveRelease(ctx, src, version, service, cacheDir, now, false)
}

// ResolveReusing is Resolve for a cacheDir that lasts between runs: a
// directory whose tree, version and revision were packed before reuses
// that bundle (BuildOptions.Reuse).
func ResolveReusing(ctx context.Context, src, version, service, cacheDir string, now time.Time) (*drover.Release, error) {
	return resolveRelease(ctx, src, version, service, cacheDir, now, true)
}

func resolveRelease(ctx context.Context, src, version, service, cacheDir string, now time.Time, reuse bool) (*drover.Release, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, withBundleHint(notFoundOr(err, "release "+src))
	}
	if !fi.IsDir() {
		r, err := Open(ctx, src)
		if err != nil {
			return nil, err
		}
		if version != "" && version != r.Manifest.Version {
			return nil, drover.Errorf(drover.EINVALID, "release %s is version %s, not %s", src, r.Manifest.Version, version).
				WithHint("drop --version or pass the bundle built for " + version)
		}
		if service != "" && r.Manifest.Service != "" && r.Manifest.Service != service {
			return nil, drover.Errorf(drover.EINVALID, "release %s is for service %s, not %s", src, r.Manifest.Service, service).
				WithHint("pass a bundle of " + service + ", or check service: in the config")
		}
		return r, nil
	}
	version, err = DirVersion(src, version)
	if err != nil {
		return nil, err
	}
	return Build(ctx, src, BuildOptions{Service: service, Version: version, CacheDir: cacheDir, Now: now, Reuse: reuse})
}

// withDamagedHint says what to do about a bundle that failed verification
// when the error has no more specific advice.
func withDamagedHint(err error) error {
	if e, ok := err.(*drover.Error); ok && e.Code == drover.EINVALID && e.Hint == "" {
		return e.WithHint("the bundle was damaged or changed after `drover release build`: copy it again or build it again")
	}
	return err
}

func withBundleHint(err error) error {
	if e, ok := err.(*drover.Error); ok && e.Code == drover.ENOTFOUND {
		return e.WithHint("pass a release directory or a bundle made by `drover release build`")
	}
	return err
}

// wrapWhere sets Where on a *drover.Error that has none.
func wrapWhere(err error, where string) error {
	if e, ok := err.(*drover.Error); ok && e.Where == "" {
		return e.At(where)
	}
	return err
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// DirVersion is the version of directory release src: version when given,
// else the content of src/VERSION. `drover deploy --release DIR` and
// `drover release build DIR` both read it here, so a directory deploys and
// builds as the same version.
func DirVersion(src, version string) (string, error) {
	if version != "" {
		return version, nil
	}
	f, err := os.Open(filepath.Join(src, "VERSION"))
	if err != nil {
		return "", drover.Errorf(drover.EINVALID, "--version is required for a directory release").
			WithHint("pass --version V or put a VERSION file at the root of " + src)
	}
	defer f.Close()
	// A version is at most 128 characters (ValidVersion); reading a little
	// more lets ValidVersion name an over-long one without reading a huge
	// file whole.
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	return strings.TrimSpace(string(b)), nil
}
