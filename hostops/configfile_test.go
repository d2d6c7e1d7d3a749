package hostops

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"drover"
)

func fileMode(t *testing.T, p string) (fs.FileMode, uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode(), st.Uid, st.Gid
}

// A staged release's files: rendered config files 0640 by default (they
// hold secrets; 0644 let every local user read them), the mode the config
// asks for, and the release's own files 0644/0755 in 0755 directories.
func TestStagedFileModes(t *testing.T) {
	f := newFixture(t)
	v1 := f.build("v1", map[string]string{"etc/secret.tmpl": "key = {{.Host.Name}}\n", "doc/readme": "x"})
	req := f.req(v1, 8001, "")
	req.ConfigFiles = append(req.ConfigFiles, drover.ConfigFile{Template: "etc/secret.tmpl", Dest: "etc/secret.conf", Mode: 0o600})
	res, err := f.h.StageFile(context.Background(), v1.BundlePath, req)
	if err != nil {
		t.Fatal(err)
	}
	slot := filepath.Join(f.h.Root, "releases", res.Slot)
	for name, want := range map[string]fs.FileMode{
		"hello.conf":      drover.DefaultConfigFileMode,
		"etc/secret.conf": 0o600,
		"bin/app":         0o755,
		"doc":             fs.ModeDir | 0o755,
		"etc":             fs.ModeDir | 0o755,
	} {
		if got, _, _ := fileMode(t, filepath.Join(slot, name)); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
	// The default hash is unchanged by the new fields; another mode is
	// another config.
	def := drover.ConfigHash([]drover.RenderedFile{{Dest: "a", Content: []byte("x")}})
	if def != drover.ConfigHash([]drover.RenderedFile{{Dest: "a", Content: []byte("x"), Mode: drover.DefaultConfigFileMode}}) ||
		def == drover.ConfigHash([]drover.RenderedFile{{Dest: "a", Content: []byte("x"), Mode: 0o600}}) ||
		def == drover.ConfigHash([]drover.RenderedFile{{Dest: "a", Content: []byte("x"), Owner: "app"}}) {
		t.Error("config hash does not follow the file's mode and owner")
	}
}

// owner/group are applied by a host running as root, and refused with what
// to do by one that is not (a file left with the wrong owner would be a
// service that cannot read its config, found at restart).
func TestStagedFileOwner(t *testing.T) {
	f := newFixture(t)
	v1 := f.build("v1", nil)
	req := f.req(v1, 8001, "")
	req.ConfigFiles[0].Owner, req.ConfigFiles[0].Group, req.ConfigFiles[0].Mode = "nobody", "65534", 0o440
	res, err := f.h.StageFile(context.Background(), v1.BundlePath, req)
	if euid := os.Geteuid(); euid != 0 {
		// Not root (CI is): the real refusal, then the rest with a faked euid.
		if err == nil || !strings.Contains(err.Error(), "need drover host to run as root") {
			t.Fatalf("as uid %d: err = %v, want the refusal", euid, err)
		}
	} else {
		if err != nil {
			t.Fatal(err)
		}
		mode, uid, gid := fileMode(t, filepath.Join(f.h.Root, "releases", res.Slot, "hello.conf"))
		if mode != 0o440 || uid != 65534 || gid != 65534 {
			t.Fatalf("hello.conf: mode %v uid %d gid %d, want 0440 nobody:65534", mode, uid, gid)
		}
	}

	for _, tc := range []struct {
		name         string
		owner, group string
		euid         int
		want         string
	}{
		{"not root", "nobody", "", 1000, "need drover host to run as root, and it runs as uid 1000"},
		{"group only, not root", "", "nogroup", 1000, "need drover host to run as root"},
		{"unknown user", "no-such-user-x", "", 0, `owner "no-such-user-x": no such user`},
		{"unknown group", "", "no-such-group-x", 0, `group "no-such-group-x": no such group`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			v1 := f.build("v1", nil)
			geteuid = func() int { return tc.euid }
			defer func() { geteuid = os.Geteuid }()
			req := f.req(v1, 8001, "")
			req.ConfigFiles[0].Owner, req.ConfigFiles[0].Group = tc.owner, tc.group
			_, err := f.h.StageFile(context.Background(), v1.BundlePath, req)
			if err == nil || drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "config file hello.conf") || drover.ErrorHint(err) == "" {
				t.Fatalf("err = %v (hint %q), want EINVALID %q", err, drover.ErrorHint(err), tc.want)
			}
			if got := f.releaseEntries(); len(got) != 0 {
				t.Fatalf("releases/ holds %v after a refused stage", got)
			}
		})
	}
}
