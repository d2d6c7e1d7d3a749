package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover"
)

// craftEntry is one raw tar entry of a hand-made bundle.
type craftEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Body     string
	Link     string
	Unlisted bool // leave it out of the manifest
}

// craft makes a bundle whose manifest honestly describes the listed
// entries (so the content hash and ID are right), then appends extra
// entries: a bundle made by an attacker who knows the format.
func craft(t testing.TB, entries []craftEntry, tamper func(m *drover.Manifest)) []byte {
	t.Helper()
	m := drover.Manifest{Service: "evil", Version: "v1"}
	for _, e := range entries {
		if e.Unlisted {
			continue
		}
		f := drover.ManifestFile{Path: e.Name, Mode: uint32(e.Mode)}
		switch e.Type {
		case tar.TypeSymlink:
			f.Link = e.Link
		default:
			sum := sha256.Sum256([]byte(e.Body))
			f.SHA256 = hex.EncodeToString(sum[:])
			f.Size = int64(len(e.Body))
		}
		m.Files = append(m.Files, f)
	}
	m.ContentHash = ContentHash(m.Files)
	m.ID = releaseID(m.Version, m.ContentHash)
	if tamper != nil {
		tamper(&m)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: drover.ManifestName, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(raw))})
	tw.Write(raw)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Link, Format: tar.FormatPAX}
		if e.Type == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("craft %s: %v", e.Name, err)
		}
		if e.Type == tar.TypeReg {
			tw.Write([]byte(e.Body))
		}
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// fsmonitorConfig is a git config whose core.fsmonitor touches the file
// named by $PWNED.
const fsmonitorConfig = "[core]\n\trepositoryformatversion = 0\n\tfsmonitor = \"touch \\\"$PWNED\\\"; false\"\n"

func reg(name, body string) craftEntry {
	return craftEntry{Name: name, Type: tar.TypeReg, Mode: 0o644, Body: body}
}

func link(name, target string) craftEntry {
	return craftEntry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Link: target}
}

func unlisted(e craftEntry) craftEntry { e.Unlisted = true; return e }

func TestUnpackRefusesMaliciousBundles(t *testing.T) {
	type tc struct {
		entries []craftEntry
		tamper  func(m *drover.Manifest)
		// want is a substring of the error: the entry it names.
		want string
	}
	// Every case runs with dest = base/dest next to base/sibling, and
	// "SIBLING" in a name or target is replaced by the sibling's absolute
	// path: the attacks aim there.
	cases := map[string]tc{
		"dot-dot path listed":      {entries: []craftEntry{reg("ok", "ok"), reg("../sibling/x", "pwned")}, want: `"../sibling/x"`},
		"dot-dot path unlisted":    {entries: []craftEntry{reg("ok", "ok"), unlisted(reg("../sibling/x", "pwned"))}, want: `"../sibling/x"`},
		"dot-dot inside path":      {entries: []craftEntry{reg("ok", "ok"), unlisted(reg("a/../../sibling/x", "pwned"))}, want: `"a/../../sibling/x"`},
		"absolute path listed":     {entries: []craftEntry{reg("SIBLING/x", "pwned")}, want: "absolute path"},
		"absolute path unlisted":   {entries: []craftEntry{reg("ok", "ok"), unlisted(reg("SIBLING/x", "pwned"))}, want: "absolute path"},
		"symlink to dir then file": {entries: []craftEntry{link("etc", "SIBLING"), reg("etc/x", "pwned")}, want: `"etc"`},
		"file through an inside symlink": {
			entries: []craftEntry{link("etc", "sub"), reg("sub/keep", "k"), reg("etc/x", "pwned")},
			want:    `"etc/x": parent "etc" is a symlink`,
		},
		"symlink then file, only link listed": {
			entries: []craftEntry{link("etc", "sub"), reg("sub/keep", "k"), unlisted(reg("etc/x", "pwned"))},
			want:    `"etc/x": not listed`,
		},
		"absolute symlink":          {entries: []craftEntry{reg("ok", "ok"), link("l", "SIBLING")}, want: "absolute"},
		"absolute symlink unlisted": {entries: []craftEntry{reg("ok", "ok"), unlisted(link("l", "SIBLING"))}, want: `"l"`},
		"escaping symlink":          {entries: []craftEntry{reg("ok", "ok"), link("a/b", "../../x")}, want: `"a/b"`},
		"escaping via another link": {entries: []craftEntry{link("d/up", ".."), link("e", "d/up/../sibling")}, want: `"e"`},
		"hard link":                 {entries: []craftEntry{reg("ok", "ok"), {Name: "h", Type: tar.TypeLink, Link: "ok", Mode: 0o644}}, want: "hard link"},
		"hard link outside":         {entries: []craftEntry{reg("ok", "ok"), unlisted(craftEntry{Name: "h", Type: tar.TypeLink, Link: "SIBLING/x"})}, want: "hard link"},
		"char device":               {entries: []craftEntry{reg("ok", "ok"), unlisted(craftEntry{Name: "null", Type: tar.TypeChar, Mode: 0o666})}, want: "device"},
		"fifo":                      {entries: []craftEntry{reg("ok", "ok"), unlisted(craftEntry{Name: "p", Type: tar.TypeFifo, Mode: 0o644})}, want: "fifo"},
		"directory entry":           {entries: []craftEntry{reg("ok", "ok"), unlisted(craftEntry{Name: "d", Type: tar.TypeDir, Mode: 0o755})}, want: `"d"`},
		"setuid bit":                {entries: []craftEntry{reg("ok", "ok"), {Name: "su", Type: tar.TypeReg, Mode: 0o4755, Body: "x"}}, want: `"su"`},
		"setuid in tar only": {
			entries: []craftEntry{reg("ok", "ok"), {Name: "su", Type: tar.TypeReg, Mode: 0o4755, Body: "x"}},
			tamper:  func(m *drover.Manifest) { fixMode(m, "su", 0o755) },
			want:    "setuid",
		},
		"unlisted file": {entries: []craftEntry{reg("ok", "ok"), unlisted(reg("extra", "x"))}, want: `"extra": not listed`},
		// A .git/config with core.fsmonitor runs its command when git
		// looks at the release (release build reads the revision).
		"git metadata":          {entries: []craftEntry{reg("ok", "ok"), reg(".git/config", fsmonitorConfig)}, want: `".git/config": .git is version-control metadata`},
		"git metadata unlisted": {entries: []craftEntry{reg("ok", "ok"), unlisted(reg(".git/config", fsmonitorConfig))}, want: `".git/config"`},
		"nested git metadata":   {entries: []craftEntry{reg("ok", "ok"), reg("vendor/x/.git/config", fsmonitorConfig)}, want: `.git is version-control metadata`},
		"git file":              {entries: []craftEntry{reg("ok", "ok"), reg("sub/.git", "gitdir: ../evil")}, want: `version-control metadata`},
		"upper-case git":        {entries: []craftEntry{reg("ok", "ok"), reg(".GIT/config", fsmonitorConfig)}, want: `version-control metadata`},
		"mercurial metadata":    {entries: []craftEntry{reg("ok", "ok"), reg(".hg/hgrc", "[hooks]\n")}, want: `.hg is version-control metadata`},
		"subversion metadata":   {entries: []craftEntry{reg("ok", "ok"), reg(".svn/entries", "x")}, want: `.svn is version-control metadata`},
		"hash mismatch": {
			entries: []craftEntry{reg("ok", "ok"), reg("bin/app", "evil code")},
			tamper: func(m *drover.Manifest) {
				sum := sha256.Sum256([]byte("good code"))
				setFile(m, "bin/app", func(f *drover.ManifestFile) { f.SHA256 = hex.EncodeToString(sum[:]) })
			},
			want: `"bin/app": sha256`,
		},
		"size mismatch": {
			entries: []craftEntry{reg("ok", "ok"), reg("bin/app", "evil code")},
			tamper:  func(m *drover.Manifest) { setFile(m, "bin/app", func(f *drover.ManifestFile) { f.Size = 4 }) },
			want:    `"bin/app": size`,
		},
		"content hash mismatch": {
			entries: []craftEntry{reg("ok", "ok")},
			tamper:  func(m *drover.Manifest) { m.ContentHash = strings.Repeat("0", 64) },
			want:    "content hash",
		},
		"missing file": {
			entries: []craftEntry{reg("ok", "ok")},
			tamper: func(m *drover.Manifest) {
				m.Files = append(m.Files, drover.ManifestFile{Path: "gone", Mode: 0o644, SHA256: strings.Repeat("a", 64)})
				m.ContentHash = ContentHash(m.Files)
				m.ID = releaseID(m.Version, m.ContentHash)
			},
			want: `"gone": listed in the manifest but missing`,
		},
		"duplicate entry": {entries: []craftEntry{reg("ok", "ok"), unlisted(reg("ok", "second"))}, want: `"ok": appears twice`},
		"manifest not first": {
			entries: []craftEntry{reg("ok", "ok")},
			want:    "the first entry must be the manifest",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			dest := filepath.Join(base, "dest")
			sibling := filepath.Join(base, "sibling")
			os.Mkdir(dest, 0o755)
			os.Mkdir(sibling, 0o755)
			fix := func(s string) string { return strings.ReplaceAll(s, "SIBLING", sibling) }
			var entries []craftEntry
			for _, e := range c.entries {
				e.Name, e.Link = fix(e.Name), fix(e.Link)
				entries = append(entries, e)
			}
			var bundle []byte
			if name == "manifest not first" {
				bundle = rawTar(t, reg("ok", "ok"), reg(drover.ManifestName, "{}"))
			} else {
				bundle = craft(t, entries, c.tamper)
			}
			_, err := Unpack(bytes.NewReader(bundle), dest)
			wantCode(t, err, drover.EINVALID)
			if want := fix(c.want); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
			assertEmpty(t, sibling)
			assertEmpty(t, dest)
			if names := dirNames(t, base); strings.Join(names, " ") != "dest sibling" {
				t.Fatalf("base holds %v", names)
			}
			// UnpackBundle too, given the stream's own sha256 — all but
			// the files' hashes, which the bundle's sha256 stands for
			// (TestUnpackBundleHashesTheStreamNotEachFile).
			if name != "hash mismatch" {
				sum := sha256.Sum256(bundle)
				_, err := UnpackBundle(bytes.NewReader(bundle), dest, hex.EncodeToString(sum[:]), int64(len(bundle)))
				wantCode(t, err, drover.EINVALID)
				if want := fix(c.want); !strings.Contains(err.Error(), want) {
					t.Fatalf("UnpackBundle: error %q does not contain %q", err, want)
				}
				assertEmpty(t, sibling)
				assertEmpty(t, dest)
			}
			// Open applies the same checks to a bundle file.
			p := filepath.Join(t.TempDir(), "evil.tar.gz")
			os.WriteFile(p, bundle, 0o644)
			if _, err := Open(t.Context(), p); drover.ErrorCode(err) != drover.EINVALID {
				t.Fatalf("Open: %v", err)
			}
		})
	}
}

func TestUnpackRequiresEmptyDest(t *testing.T) {
	dest := t.TempDir()
	os.WriteFile(filepath.Join(dest, "x"), nil, 0o644)
	_, err := Unpack(bytes.NewReader(craft(t, []craftEntry{reg("ok", "ok")}, nil)), dest)
	wantCode(t, err, drover.EINVALID)
	if _, err := os.Stat(filepath.Join(dest, "x")); err != nil {
		t.Fatal("Unpack removed a file it did not write")
	}
	_, err = Unpack(bytes.NewReader(nil), filepath.Join(dest, "missing"))
	wantCode(t, err, drover.EINVALID)
}

func TestUnpackCraftedGoodBundle(t *testing.T) {
	// The crafting helper itself produces bundles Unpack accepts, so the
	// refusals above are about the attack and not the helper.
	dest := t.TempDir()
	m, err := Unpack(bytes.NewReader(craft(t, []craftEntry{
		reg("a/b/c.txt", "c"), link("a/link", "b/c.txt"), link("top", "a/b"),
		{Name: "bin/run", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\n"},
	}, nil)), dest)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 4 {
		t.Fatalf("files %+v", m.Files)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "top/c.txt")); err != nil || string(b) != "c" {
		t.Fatalf("top/c.txt: %q %v", b, err)
	}
}

func rawTar(t *testing.T, entries ...craftEntry) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		tw.WriteHeader(&tar.Header{Name: e.Name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.Body))})
		tw.Write([]byte(e.Body))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func setFile(m *drover.Manifest, p string, f func(*drover.ManifestFile)) {
	for i := range m.Files {
		if m.Files[i].Path == p {
			f(&m.Files[i])
		}
	}
	m.ContentHash = ContentHash(m.Files)
	m.ID = releaseID(m.Version, m.ContentHash)
}

func fixMode(m *drover.Manifest, p string, mode uint32) {
	setFile(m, p, func(f *drover.ManifestFile) { f.Mode = mode })
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	if names := dirNames(t, dir); len(names) > 0 {
		t.Fatalf("%s is not empty: %v", dir, names)
	}
}

// TestUnpackBundleChecksTheStream: UnpackBundle accepts only the bundle
// whose sha256 and size it is given; anything else (damaged in transit,
// another bundle, cut short) is refused and dest left empty.
func TestUnpackBundleChecksTheStream(t *testing.T) {
	bundle := craft(t, []craftEntry{reg("a/b.txt", "b"), reg("payload", strings.Repeat("x", 100000))}, nil)
	sum := sha256.Sum256(bundle)
	good := hex.EncodeToString(sum[:])
	damaged := bytes.Clone(bundle)
	damaged[len(damaged)-5] ^= 0xff // the gzip trailer: the tar stream still reads
	cases := map[string]struct {
		stream []byte
		sum    string
		size   int64
		code   string
		want   string
	}{
		"other sha256":   {bundle, strings.Repeat("0", 64), int64(len(bundle)), drover.EINVALID, "bundle sha256 is " + good},
		"other size":     {bundle, good, int64(len(bundle)) + 1, drover.EINVALID, "bytes, expected"},
		"damaged":        {damaged, good, int64(len(bundle)), drover.EINVALID, ""},
		"cut short":      {bundle[:len(bundle)-20], good, int64(len(bundle)), drover.EINVALID, ""},
		"size unchecked": {bundle, good, 0, "", ""},
		"the bundle":     {bundle, good, int64(len(bundle)), "", ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dest := t.TempDir()
			m, err := UnpackBundle(bytes.NewReader(c.stream), dest, c.sum, c.size)
			if c.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(filepath.Join(dest, "a/b.txt")); err != nil || string(b) != "b" || len(m.Files) != 2 {
					t.Fatalf("a/b.txt %q %v, manifest %+v", b, err, m.Files)
				}
				return
			}
			wantCode(t, err, c.code)
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			assertEmpty(t, dest)
		})
	}
}

// TestUnpackBundleHashesTheStreamNotEachFile: given the bundle's sha256,
// the entries are not hashed again (the bundle's sha256 covers them: Open
// and Build set it only for a bundle whose every entry matched). Shown
// with a bundle whose manifest lies about a file's sha256, which Unpack
// and Open refuse and UnpackBundle, given that very stream's sha256,
// does not look for. Staging 8 MB hashed 16 MB on every host before.
func TestUnpackBundleHashesTheStreamNotEachFile(t *testing.T) {
	bundle := craft(t, []craftEntry{reg("bin/app", "evil code")}, func(m *drover.Manifest) {
		sum := sha256.Sum256([]byte("good code"))
		setFile(m, "bin/app", func(f *drover.ManifestFile) { f.SHA256 = hex.EncodeToString(sum[:]) })
	})
	if _, err := Unpack(bytes.NewReader(bundle), t.TempDir()); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Unpack: %v, want the file's sha256 refused", err)
	}
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	os.WriteFile(p, bundle, 0o644)
	if _, err := Open(t.Context(), p); err == nil {
		t.Fatal("Open accepted a bundle whose file does not match its manifest")
	}
	sum := sha256.Sum256(bundle)
	if _, err := UnpackBundle(bytes.NewReader(bundle), t.TempDir(), hex.EncodeToString(sum[:]), int64(len(bundle))); err != nil {
		t.Fatalf("UnpackBundle hashed the file again: %v", err)
	}
}

// BenchmarkUnpack: the CPU a host spends unpacking an 8 MB incompressible
// file, as the bench/sshdeploy job ships, with every file hashed (Unpack,
// plus the bundle's own sha256 as staging checked it) and with the
// bundle's sha256 alone (UnpackBundle).
func BenchmarkUnpack(b *testing.B) {
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	bundle := craft(b, []craftEntry{reg("payload.bin", string(payload))}, nil)
	sum := sha256.Sum256(bundle)
	for _, name := range []string{"Unpack", "UnpackBundle"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				b.StopTimer()
				dest := b.TempDir()
				b.StartTimer()
				var err error
				if name == "Unpack" {
					h := sha256.New()
					_, err = Unpack(io.TeeReader(bytes.NewReader(bundle), h), dest)
					h.Sum(nil)
				} else {
					_, err = UnpackBundle(bytes.NewReader(bundle), dest, hex.EncodeToString(sum[:]), int64(len(bundle)))
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
