package release

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"drover"
)

// ReadFiles returns the named regular files of a bundle, cleaned names
// matching; a symlink, a directory or a missing name is left out; a
// missing or corrupt bundle is an error naming it.
func TestReadFiles(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "hello.tar.gz")
	r, err := Build(ctx, sampleTree(t), BuildOptions{Service: "hello", Version: "1.2.0", Out: out, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFiles(r, []string{"./hello.conf.tmpl", "static/current.css", "static", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["hello.conf.tmpl"]) != "port = {{.Host.Vars.port}}\n" {
		t.Errorf("ReadFiles = %q, want hello.conf.tmpl only", got)
	}
	if _, err := ReadFiles(&drover.Release{BundlePath: filepath.Join(t.TempDir(), "missing.tar.gz")}, []string{"x"}); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("missing bundle: %v, want ENOTFOUND", err)
	}
	notgz := filepath.Join(t.TempDir(), "x.tar.gz")
	if err := os.WriteFile(notgz, []byte("not gzip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFiles(&drover.Release{BundlePath: notgz}, []string{"x"}); drover.ErrorCode(err) != drover.EINVALID {
		t.Errorf("not a bundle: %v, want EINVALID", err)
	}
}
