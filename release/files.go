package release

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path"

	"drover"
)

// maxBundleFile bounds one file read out of a bundle by ReadFiles: config
// templates, never payloads.
const maxBundleFile = 16 << 20

// ReadFiles reads the named regular files out of r's bundle, so
// the controller (and a simulated host) can render each host's config
// without touching a host: to tell which hosts are already up to date, and
// to show config diffs in plan. A name missing from the bundle is missing
// from the result.
func ReadFiles(r *drover.Release, names []string) (map[string][]byte, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[path.Clean(n)] = true
	}
	bundle := r.BundlePath
	f, err := os.Open(bundle)
	if err != nil {
		return nil, drover.Errorf(drover.ENOTFOUND, "release bundle %s: %v", bundle, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "release bundle %s: %v", bundle, err)
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for len(out) < len(want) {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "release bundle %s: %v", bundle, err)
		}
		name := path.Clean(hdr.Name)
		if !want[name] || hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxBundleFile))
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "release bundle %s: %s: %v", bundle, name, err)
		}
		out[name] = b
	}
	return out, nil
}
