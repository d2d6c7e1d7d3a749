package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"drover"
)

// Dir keeps release bundles on the machine running drover, under
// Root/<service>/<release-id>.tar.gz (drover.BundleStore): the bundle an
// environment was deployed from, byte for byte, for `drover promote` to
// deploy to the next. The release ID carries the content hash, and Open
// verifies a kept bundle again before it is used.
type Dir struct {
	// Root is the directory, usually <state_dir>/bundles.
	Root string
	// Most is how many bundles of a service stay, the most recently
	// deployed first; <= 0 means DefaultKeptBundles. Without a bound every
	// staging deploy would add a bundle to the state directory for ever.
	Most int
}

// DefaultKeptBundles is Dir.Most's default.
const DefaultKeptBundles = 10

var _ drover.BundleStore = Dir{}

// keptName is a release ID as a file name: version characters, then the
// hash; nothing that could climb out of Root (a history record names the
// release, and with a shared store someone else wrote that record).
var keptName = regexp.MustCompile(`^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,140}$`)

func (d Dir) path(service, id string) (string, error) {
	if !keptName.MatchString(service) || !keptName.MatchString(id) {
		return "", drover.Errorf(drover.EINVALID, "release %q of service %q cannot name a kept bundle", id, service)
	}
	return filepath.Join(d.Root, service, id+".tar.gz"), nil
}

// Path returns the kept bundle of release id. ENOTFOUND names the file.
func (d Dir) Path(service, id string) (string, error) {
	p, err := d.path(service, id)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", drover.Errorf(drover.ENOTFOUND, "the bundle of release %s is not kept: %s is gone", id, p).
			WithHint("deploy that release's bundle by hand (`drover deploy --release BUNDLE`; it is still checked against the history), or deploy it again where it came from")
	case err != nil:
		return "", drover.Errorf(drover.EINVALID, "kept bundle %s: %v", p, err)
	case !fi.Mode().IsRegular():
		return "", drover.Errorf(drover.EINVALID, "kept bundle %s is not a regular file", p)
	}
	return p, nil
}

// Keep copies rel's bundle in (or, when a bundle with its sha256 is kept
// already, marks it recently used), then removes the oldest beyond Most.
func (d Dir) Keep(ctx context.Context, service string, rel *drover.Release) error {
	p, err := d.path(service, rel.ID())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return drover.Errorf(drover.EINTERNAL, "keep bundle: %v", err).WithHint("check state_dir is writable")
	}
	now := time.Now()
	if sum, err := fileSHA256(ctx, p); err == nil && sum == rel.BundleSHA256 {
		os.Chtimes(p, now, now)
		return d.prune(filepath.Dir(p), p)
	}
	if err := copyChecked(ctx, rel.BundlePath, p, rel.BundleSHA256); err != nil {
		return drover.Errorf(drover.EINTERNAL, "keep bundle of %s in %s: %v", rel.ID(), filepath.Dir(p), err).WithHint("check state_dir is writable and has space")
	}
	return d.prune(filepath.Dir(p), p)
}

// copyChecked copies src to dst through a temporary file and a rename, and
// only when src still has sha256 sum: a bundle swapped on disk between its
// verification and now is not kept under the verified release's name.
func copyChecked(ctx context.Context, src, dst, sum string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".keep-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: in})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%s changed since it was verified (sha256 %s, want %s)", src, got, sum)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func fileSHA256(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// prune removes the service's oldest kept bundles beyond Most, never
// keep itself. Failing to prune leaves a file too many: not an error.
func (d Dir) prune(dir, keep string) error {
	n := d.Most
	if n <= 0 {
		n = DefaultKeptBundles
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type kept struct {
		path string
		mod  time.Time
	}
	var all []kept
	for _, e := range ents {
		if e.Type().IsRegular() && filepath.Ext(e.Name()) == ".gz" {
			if fi, err := e.Info(); err == nil {
				all = append(all, kept{filepath.Join(dir, e.Name()), fi.ModTime()})
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	for i, k := range all {
		if i >= n && k.path != keep {
			os.Remove(k.path)
		}
	}
	return nil
}
