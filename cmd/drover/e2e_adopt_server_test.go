package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/examples/hello"
	"drover/internal/localfleet"
)

// TestE2EAdoptThroughServer: `drover adopt --server` runs in the server
// as deploy and rollback do: a viewer's token is refused with nothing
// changed, a deployer's adopts every host's live directory.
func TestE2EAdoptThroughServer(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: adoptGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	for _, h := range f.Hosts {
		if err := hello.WriteRelease(filepath.Join(f.DeployRoot(h.Name), "current"), "1.4.2", true); err != nil {
			t.Fatal(err)
		}
	}
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	ops := createToken(t, tokens, "ops", "deployer")
	viewer := createToken(t, tokens, "watcher", "viewer")
	url := startServer(t, f.Config, tokens)

	before := hostsDigest(t, f)
	r := runDrover(t, "adopt", "-c", f.Config, "--server", url, "--token", viewer, "--yes")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "viewer") {
		t.Errorf("viewer's adopt: %s", r)
	}
	if d := diffDigests(before, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("a refused adopt changed hosts:\n%s", strings.Join(d, "\n"))
	}

	r = runDrover(t, "adopt", "-c", f.Config, "--server", url, "--token", ops, "--yes")
	mustExit(t, r, 0)
	for _, h := range f.Hosts {
		link, err := os.Readlink(filepath.Join(f.DeployRoot(h.Name), "current"))
		if err != nil || !strings.HasPrefix(link, "releases/foreign-") {
			t.Fatalf("%s: after adopt through the server current -> %q (%v)\n%s", h.Name, link, err, r)
		}
		if !strings.Contains(r.stdout, h.Name+": adopted: current -> "+link+" (foreign)") {
			t.Errorf("output lacks %s's adoption: %s", h.Name, r)
		}
	}
	// Again: nothing to adopt, said per host.
	r = runDrover(t, "adopt", "-c", f.Config, "--server", url, "--token", ops, "--yes", "--json")
	mustExit(t, r, 0)
	if strings.Count(r.stdout, `"adopted": false`) != 2 {
		t.Errorf("second adopt: %s", r)
	}
}
