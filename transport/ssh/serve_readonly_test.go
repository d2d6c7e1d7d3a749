package ssh

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestServeReadsCreateNothing: state and read-file on a host never
// deployed create no deploy root (`drover status` and `drover plan` leave
// such a host as they found it); stage would.
func TestServeReadsCreateNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "srv", "hello")
	o := ServeOptions{Root: root}
	for _, op := range []string{OpState, OpReadFile} {
		r := o.do(context.Background(), op, Request{Path: "releases/x/hello.conf"}, nil)
		if op == OpState && r.Error != nil {
			t.Errorf("%s on a fresh host: %+v", op, r.Error)
		}
		if _, err := os.Lstat(root); !os.IsNotExist(err) {
			t.Fatalf("%s created the deploy root (%v)", op, err)
		}
	}
}
