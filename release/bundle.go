package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"drover"
)

// entry is one verified-so-far bundle entry handed to a visitor: for a
// regular file, Content yields exactly File.Size bytes; the sha256 is
// checked after the visitor returns, so a visitor that writes the content
// somewhere must be prepared to throw it away when readBundle fails.
type entry struct {
	File    drover.ManifestFile
	Content io.Reader
}

// readBundle reads a bundle stream, verifies it against its own manifest
// and calls visit for the manifest's raw bytes and then for every entry, in
// stream order. Every refusal is an EINVALID *drover.Error naming the
// entry. It returns the manifest once every listed file was seen and
// matched. Without hashFiles the entries' sha256 are not checked (their
// paths, types, modes and sizes still are): only for a stream whose own
// sha256 the caller checks against a bundle readBundle verified before
// (UnpackBundle).
func readBundle(r io.Reader, hashFiles bool, visitManifest func(raw []byte) error, visit func(e entry) error) (drover.Manifest, error) {
	var m drover.Manifest
	zr, err := gzip.NewReader(r)
	if err != nil {
		return m, drover.Errorf(drover.EINVALID, "bundle is not gzip-compressed: %v", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)

	hdr, err := tr.Next()
	if err != nil {
		return m, drover.Errorf(drover.EINVALID, "bundle has no manifest: %v", tarErr(err))
	}
	// The manifest comes first so that every later entry can be checked
	// against it as it streams past, before anything is written for it.
	if hdr.Name != drover.ManifestName || hdr.Typeflag != tar.TypeReg {
		return m, entryError(hdr.Name, "the first entry must be the manifest %s", drover.ManifestName)
	}
	if hdr.Size > maxManifestSize {
		return m, entryError(hdr.Name, "manifest of %d bytes is too large", hdr.Size)
	}
	raw, err := io.ReadAll(tr)
	if err != nil {
		return m, entryError(hdr.Name, "%v", tarErr(err))
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, entryError(hdr.Name, "manifest is not valid JSON: %v", err)
	}
	files, err := checkManifest(&m)
	if err != nil {
		return m, err
	}
	if visitManifest != nil {
		if err := visitManifest(raw); err != nil {
			return m, err
		}
	}

	seen := make(map[string]bool, len(files))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, drover.Errorf(drover.EINVALID, "bundle is corrupt after %d entries: %v", len(seen), tarErr(err))
		}
		name := hdr.Name
		if err := checkPath(name); err != nil {
			return m, entryError(name, "%v", err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeSymlink: // the reader reports old-style TypeRegA as TypeReg
		case tar.TypeLink:
			// A hard link to a file outside the destination (or to one
			// the service later rewrites) aliases files across releases.
			return m, entryError(name, "hard links are not allowed")
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return m, entryError(name, "device and fifo entries are not allowed")
		case tar.TypeDir:
			return m, entryError(name, "directory entries are not part of a release")
		default:
			return m, entryError(name, "entry type %q is not allowed", hdr.Typeflag)
		}
		// setuid/setgid/sticky: a release that installs a setuid binary
		// hands root to whoever can run it.
		if hdr.Mode&0o7000 != 0 {
			return m, entryError(name, "mode %o has setuid, setgid or sticky bits", hdr.Mode)
		}
		f, ok := files[name]
		if !ok {
			return m, entryError(name, "not listed in the manifest")
		}
		if seen[name] {
			return m, entryError(name, "appears twice in the bundle")
		}
		seen[name] = true
		if hdr.Typeflag == tar.TypeSymlink {
			if f.Link == "" {
				return m, entryError(name, "is a symlink but the manifest lists a file")
			}
			if hdr.Linkname != f.Link {
				return m, entryError(name, "symlink target %q, manifest says %q", hdr.Linkname, f.Link)
			}
			if err := visit(entry{File: f}); err != nil {
				return m, err
			}
			continue
		}
		if f.Link != "" {
			return m, entryError(name, "is a file but the manifest lists a symlink")
		}
		if uint32(hdr.Mode&0o777) != f.Mode {
			return m, entryError(name, "mode %o, manifest says %o", hdr.Mode&0o777, f.Mode)
		}
		if hdr.Size != f.Size {
			return m, entryError(name, "size %d, manifest says %d", hdr.Size, f.Size)
		}
		var h hash.Hash
		cr := &countReader{r: tr}
		if hashFiles {
			h = sha256.New()
			cr.r = io.TeeReader(tr, h)
		}
		if err := visit(entry{File: f, Content: cr}); err != nil {
			return m, err
		}
		// Drain whatever the visitor left so the hash covers the entry.
		if _, err := io.Copy(io.Discard, cr); err != nil {
			return m, entryError(name, "%v", tarErr(err))
		}
		if cr.n != f.Size {
			return m, entryError(name, "read %d bytes, manifest says %d", cr.n, f.Size)
		}
		if h == nil {
			continue
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			return m, entryError(name, "sha256 %s, manifest says %s", got, f.SHA256)
		}
	}
	for _, f := range m.Files {
		if !seen[f.Path] {
			return m, entryError(f.Path, "listed in the manifest but missing from the bundle")
		}
	}
	return m, nil
}

// tarErr turns the tar and gzip readers' errors into something an operator
// can act on.
func tarErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("bundle is truncated")
	}
	if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
		return fmt.Errorf("bundle is corrupt: %v", err)
	}
	return err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// encodeManifest is the manifest's byte form inside a bundle.
func encodeManifest(m *drover.Manifest) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
