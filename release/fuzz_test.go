package release

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover"
)

// FuzzUnpack feeds arbitrary bytes to Unpack as a bundle (a host unpacks
// what the controller or a relay sent it; a bundle is not trusted).
// Properties: no panic; nothing is ever written outside dest (a sibling
// directory stays empty and dest's parent holds only the two); a refused
// bundle leaves dest empty; an accepted one holds exactly its manifest's
// files, with no special bits, no version-control metadata and no symlink
// resolving outside dest.
func FuzzUnpack(f *testing.F) {
	good := []craftEntry{reg("a/b/c.txt", "c"), link("a/link", "b/c.txt"), link("top", "a/b"),
		{Name: "bin/run", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\n"}}
	f.Add(craft(f, good, nil))
	f.Add(craft(f, []craftEntry{reg("ok", "ok"), reg("../sibling/x", "pwned")}, nil))
	f.Add(craft(f, []craftEntry{link("etc", "../sibling"), reg("etc/x", "pwned")}, nil))
	f.Add(craft(f, []craftEntry{reg("ok", "ok"), reg(".git/config", fsmonitorConfig)}, nil))
	f.Add(craft(f, []craftEntry{reg("ok", "ok"), {Name: "su", Type: tar.TypeReg, Mode: 0o4755, Body: "x"}}, nil))
	f.Fuzz(func(t *testing.T, bundle []byte) {
		base := t.TempDir()
		dest, sibling := filepath.Join(base, "dest"), filepath.Join(base, "sibling")
		for _, d := range []string{dest, sibling} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		m, err := Unpack(bytes.NewReader(bundle), dest)
		if got := strings.Join(dirNames(t, base), ","); got != "dest,sibling" {
			t.Fatalf("unpack wrote outside dest: %s holds %s", base, got)
		}
		assertEmpty(t, sibling)
		if err != nil {
			if drover.ErrorCode(err) != drover.EINVALID && drover.ErrorCode(err) != drover.EINTERNAL {
				t.Fatalf("refusal code %q: %v", drover.ErrorCode(err), err)
			}
			assertEmpty(t, dest)
			return
		}
		listed := map[string]drover.ManifestFile{drover.ManifestName: {Mode: modeFile}}
		for _, mf := range m.Files {
			listed[mf.Path] = mf
		}
		walkErr := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dest {
				return err
			}
			rel, _ := filepath.Rel(dest, p)
			rel = filepath.ToSlash(rel)
			for _, c := range strings.Split(rel, "/") {
				if vcsDir(c) {
					t.Fatalf("unpacked version-control metadata %s", rel)
				}
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				t.Fatalf("%s has special bits %v", rel, info.Mode())
			}
			if d.IsDir() {
				return nil
			}
			if _, ok := listed[rel]; !ok {
				t.Fatalf("%s is not in the manifest", rel)
			}
			if info.Mode()&fs.ModeSymlink != 0 {
				real, err := filepath.EvalSymlinks(p)
				if err != nil {
					return nil // dangling inside dest is allowed
				}
				if r, err := filepath.Rel(dest, real); err != nil || !filepath.IsLocal(r) {
					t.Fatalf("symlink %s resolves outside dest: %s", rel, real)
				}
			}
			return nil
		})
		if walkErr != nil {
			t.Fatal(walkErr)
		}
	})
}
