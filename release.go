package drover

import "time"

// ManifestName is the manifest file at the top of every release.
const ManifestName = "drover-release.json"

// Manifest describes a release: what it is and the sha256 of every file.
// It is written by `drover release build` and verified before use.
type Manifest struct {
	Service string `json:"service"`
	Version string `json:"version"`
	// ID is <version>-<12 hex of ContentHash>.
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Revision is the source revision when the source was a git work tree.
	Revision string `json:"revision,omitempty"`
	// ContentHash is the sha256 over every file's path, mode and sha256.
	ContentHash string         `json:"content_hash"`
	Files       []ManifestFile `json:"files"`
}

// ManifestFile is one regular file or symlink of a release.
type ManifestFile struct {
	Path   string `json:"path"`
	Mode   uint32 `json:"mode"` // permission bits only
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Link is the target of a symlink (relative, inside the release).
	Link string `json:"link,omitempty"`
}

// Release is a built, verified release bundle on the machine running drover.
type Release struct {
	Manifest Manifest
	// BundlePath is the .tar.gz on this machine.
	BundlePath string
	// BundleSHA256 is the sha256 of the bundle file, checked on arrival.
	BundleSHA256 string
	BundleSize   int64
}

// ID returns the release ID.
func (r *Release) ID() string { return r.Manifest.ID }

// Version returns the release version.
func (r *Release) Version() string { return r.Manifest.Version }
