package release

import (
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"drover"
)

// A write the disk refuses is the host's fault (EFAILED, with a hint), not
// the bundle's (EINVALID, exit 2); anything else wrong with an entry stays
// EINVALID. The full disk itself is tested for real in transport/ssh
// (TestServeOnAFullDisk); this is every errno the rule names.
func TestEntryErrorBlamesTheDiskForDiskErrors(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO} {
		err := entryError("bin/app", "%v", &fs.PathError{Op: "write", Path: "/srv/x/bin/app", Err: e})
		if drover.ErrorCode(err) != drover.EFAILED || drover.ErrorHint(err) == "" {
			t.Errorf("%v: %v (code %s, hint %q), want EFAILED with a hint", e, err, drover.ErrorCode(err), drover.ErrorHint(err))
		}
	}
	for _, cause := range []error{syscall.EEXIST, fmt.Errorf("bundle is truncated")} {
		if err := entryError("bin/app", "%v", cause); drover.ErrorCode(err) != drover.EINVALID {
			t.Errorf("%v: %v, want EINVALID", cause, err)
		}
	}
}
