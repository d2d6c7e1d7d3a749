package ssh

import (
	"strings"

	"drover"
	"drover/hostops"
)

// liveMarker separates state.json from what current is in the output of
// stateScript. It cannot occur in state.json: JSON escapes newlines.
const liveMarker = "\n#drover-live\n"

// stateScript prints state.json (if any), then what current is: "link",
// its text, and when it leads to a directory of releases/ that
// directory's name and "drover" or "foreign" (has .drover-slot.json or
// not); or "dir" for a live directory. A host another tool deployed
// (Capistrano, Scap, Ansible) has a current and no state.json, and its
// release must be read as the current one, never as "none"
// (hostops.OverlayLive). Plain POSIX sh, so a survey installs nothing.
func stateScript(root string) string {
	q := drover.ShellQuote
	file, cur, rel := q(root+"/"+drover.StateFile), q(root+"/"+hostops.CurrentLink), q(root+"/"+hostops.ReleasesDir)
	return "if [ -e " + file + " ]; then cat " + file + "; fi; printf '" + strings.ReplaceAll(liveMarker, "\n", `\n`) + "'; " +
		"if [ -L " + cur + " ]; then echo link; readlink " + cur + "; " +
		"t=$(cd -P " + cur + " 2>/dev/null && pwd); r=$(cd -P " + rel + " 2>/dev/null && pwd); " +
		`if [ -n "$t" ] && [ -n "$r" ] && [ "${t%/*}" = "$r" ]; then echo "${t##*/}"; ` +
		"if [ -e " + cur + "/" + hostops.SlotMetaName + " ]; then echo drover; else echo foreign; fi; fi; " +
		"elif [ -d " + cur + " ]; then echo dir; fi"
}

// splitLive splits stateScript's output into state.json and what is live.
// Output without the marker (an older host side) is all state.json.
func splitLive(out string) (state string, l hostops.Live) {
	state, rest, ok := strings.Cut(out, liveMarker)
	if !ok {
		return out, l
	}
	lines := strings.Split(strings.TrimRight(rest, "\n"), "\n")
	switch lines[0] {
	case hostops.LiveDir:
		l.Kind = hostops.LiveDir
	case hostops.LiveLink:
		l.Kind = hostops.LiveLink
		if len(lines) > 1 {
			l.Link = lines[1]
		}
		if len(lines) > 3 && hostops.IsSlotName(lines[2]) {
			l.Slot, l.Drover = lines[2], lines[3] == "drover"
		}
	}
	return state, l
}
