package runner

import (
	"fmt"
	"sort"
	"strings"

	"drover"
)

// hostReleases maps each release ID the host has been on to its version.
func hostReleases(st drover.HostState) map[string]string {
	out := map[string]string{}
	for _, e := range st.History {
		if e.To != "" {
			out[drover.SlotRelease(e.To)] = e.Version
		}
		if e.From != "" {
			if _, ok := out[drover.SlotRelease(e.From)]; !ok {
				out[drover.SlotRelease(e.From)] = ""
			}
		}
	}
	if st.Current != "" {
		id := drover.SlotRelease(st.Current)
		if st.Release != "" {
			id = st.Release
		}
		out[id] = st.Version
	}
	return out
}

// resolveTo turns `rollback --to` into a release ID. A release ID or slot
// that some host has been on is taken as it is. Otherwise to is read as a
// version: the release IDs of that version on the targeted hosts must be
// exactly one — `drover history` shows versions first, and a version that
// names two builds (a rebuild with other content) is ambiguous, so the
// operator picks by ID rather than drover guessing (exit 2, IDs listed).
func resolveTo(views map[string]*hostView, to string) (string, error) {
	if to == "" {
		return "", nil
	}
	ids := map[string]bool{}
	for _, v := range views {
		if v.Err != nil {
			continue
		}
		if v.State.Current == to {
			return to, nil
		}
		for _, e := range v.State.History {
			if e.To == to || e.From == to {
				return to, nil
			}
		}
		for id, version := range hostReleases(v.State) {
			if id == to {
				return to, nil
			}
			if version == to {
				ids[id] = true
			}
		}
	}
	switch len(ids) {
	case 0:
		return to, nil
	case 1:
		for id := range ids {
			return id, nil
		}
	}
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	sort.Strings(list)
	return "", drover.Errorf(drover.EINVALID, "--to %s names %d releases: %s", to, len(list), strings.Join(list, ", ")).
		WithHint("pass one release ID to --to (`drover history` shows each deploy's release)")
}

// firstReleaseError is the rollback of a host with nothing earlier: it
// says so plainly and what --to could name, instead of pointing at
// --limit as if the host were the problem.
func firstReleaseError(st drover.HostState) *drover.Error {
	if st.Current == "" {
		return drover.Errorf(drover.ENOTFOUND, "no release deployed here: nothing to roll back").
			WithHint("deploy a release first (`drover deploy --release DIR`)")
	}
	if st.IsForeign(st.Current) {
		// Another tool's release has no drover version or ID to name.
		return drover.Errorf(drover.ENOTFOUND, "no previous release to roll back to (current %s)", st.ReleaseLabel(st.Current)).
			WithHint("the host is on the release another tool deployed; to change it, deploy the release you want (`drover deploy --release DIR`)")
	}
	cur := drover.SlotRelease(st.Current)
	if st.Release != "" {
		cur = st.Release
	}
	var others []string
	for id, version := range hostReleases(st) {
		if id == cur {
			continue
		}
		if version != "" {
			others = append(others, fmt.Sprintf("%s (%s)", version, id))
		} else {
			others = append(others, id)
		}
	}
	sort.Strings(others)
	if len(others) == 0 {
		return drover.Errorf(drover.ENOTFOUND, "on its first release %s (%s): there is nothing earlier to roll back to", orNone(st.Version), cur).
			WithHint("the host has never been on another release, so --to has nothing to name either; to change it, deploy the release you want (`drover deploy --release DIR`)")
	}
	return drover.Errorf(drover.ENOTFOUND, "no previous release recorded (current %s, %s)", orNone(st.Version), cur).
		WithHint("--to can name a release this host was on: " + strings.Join(others, ", "))
}

// plural is "1 host", "2 hosts": messages a person reads say it right.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
