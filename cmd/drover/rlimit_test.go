package main

import (
	"strings"
	"syscall"
	"testing"
)

// drover raises its own soft limit to the hard one: a fleet larger than
// the usual soft limit of 1,024 must not fail for lack of descriptors the
// hard limit allows.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig)
	if orig.Max < 512 {
		t.Fatalf("hard open-file limit %d on this machine is too low to test raising (need 512)", orig.Max)
	}
	low := syscall.Rlimit{Cur: 256, Max: orig.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	soft, hard := raiseFileLimit()
	var now syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now)
	if soft != orig.Max || hard != orig.Max || now.Cur != orig.Max {
		t.Fatalf("after raising: returned %d/%d, limit now %d, want the hard limit %d", soft, hard, now.Cur, orig.Max)
	}
}

func TestFileLimitWarning(t *testing.T) {
	if w := fileLimitWarning(200, 1024, 1024); w != "" {
		t.Errorf("200 hosts within 1024: %q", w)
	}
	w := fileLimitWarning(2000, 1024, 1024)
	for _, want := range []string{"2000 hosts", "2064 open files", "limit is 1024", "ulimit -Hn"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning %q lacks %q", w, want)
		}
	}
}
