package ssh

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"drover/hostops"
)

// TestStateScriptReadsForeignLayouts runs the survey's shell command on
// the layouts other tools leave, and checks it reads current as
// hostops.Host does on the host itself.
func TestStateScriptReadsForeignLayouts(t *testing.T) {
	run := func(root string) (string, hostops.Live) {
		t.Helper()
		out, err := exec.Command("sh", "-c", stateScript(root)).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return splitLive(string(out))
	}
	root := t.TempDir()
	if st, l := run(root); st != "" || l != (hostops.Live{}) {
		t.Fatalf("empty root: %q %+v", st, l)
	}
	// Capistrano: an absolute link, through a symlinked path to the root.
	rel := filepath.Join(root, "releases", "20260101120000")
	os.MkdirAll(rel, 0o755)
	alias := filepath.Join(t.TempDir(), "alias")
	os.Symlink(root, alias)
	link := filepath.Join(alias, "releases", "20260101120000")
	os.Symlink(link, filepath.Join(root, "current"))
	if st, l := run(root); st != "" || l != (hostops.Live{Kind: hostops.LiveLink, Link: link, Slot: "20260101120000"}) {
		t.Fatalf("capistrano: %q %+v", st, l)
	}
	// A drover slot, with state.json.
	os.WriteFile(filepath.Join(rel, hostops.SlotMetaName), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(root, "state.json"), []byte("{\"current\":\"x\"}\n"), 0o644)
	if st, l := run(root); st != "{\"current\":\"x\"}\n" || !l.Drover || l.Slot != "20260101120000" {
		t.Fatalf("drover slot: %q %+v", st, l)
	}
	// A link out of releases/.
	os.Remove(filepath.Join(root, "current"))
	os.Symlink(t.TempDir(), filepath.Join(root, "current"))
	if _, l := run(root); l.Kind != hostops.LiveLink || l.Slot != "" {
		t.Fatalf("outside link: %+v", l)
	}
	// A live directory.
	os.Remove(filepath.Join(root, "current"))
	os.Mkdir(filepath.Join(root, "current"), 0o755)
	if _, l := run(root); l.Kind != hostops.LiveDir {
		t.Fatalf("live dir: %+v", l)
	}
}
