// Package hostops is what happens on a target host: receiving and unpacking
// a release, rendering its config files, switching the current link and
// keeping state.json. It works on a local filesystem; transport/local calls
// it directly on a directory, and `drover host ...` runs it on a remote
// host for transport/ssh.
//
// The layout under the deploy root:
//
//	releases/<slot>/          an unpacked release + this host's rendered config
//	releases/<slot>/.drover-slot.json   what the slot holds (SlotMeta)
//	releases/.stage-<random>/ a release being staged; never current
//	current -> releases/<slot>
//	state.json                drover.HostState
//
// A directory under releases/ without .drover-slot.json is another tool's
// (Capistrano, Scap, an Ansible playbook): a foreign release (foreign.go).
// When current points at one, it is the host's current release — never
// "none" — and state.json records the link's exact text under "foreign",
// so restoring it puts back that very link. Such directories are never
// replaced, and pruned only with PruneForeign (prune_foreign), never
// while current or previous. A live directory as current is moved under
// releases/foreign-<hash> by Adopt, in one atomic exchange.
//
// A slot is the release ID, or <release-id>+<8 hex of the config hash> when
// the same release is staged again with different rendered config while
// its own directory is current or previous. A directory that was ever
// promoted is never modified: rolling back is a swap of the current link,
// and it must bring back the config that was running with the code, not
// today's config pasted into yesterday's directory.
//
// Config files are rendered with exactly the drover.TemplateData the
// controller sent, through drover.RenderConfigFiles, and hashed with
// drover.ConfigHash: the controller renders the same way to tell which
// hosts already run the wanted release and config. Validate commands see
// .Path = the rendered file in the staging directory.
//
// Every change that matters is atomic on a crash. Staging happens in a
// .stage- directory renamed into place only when complete; the current link
// is swapped by renaming a new link over it; state.json is written to a
// temporary file, synced and renamed. A crash therefore leaves either the
// old or the new version of each, and state.json is written after the link
// so that re-running the same promote repairs it.
//
// Mutual exclusion is not this package's job: one deploy at a time per
// service is guaranteed by the deploy lock (drover.Store). Temporary names
// are random, so even overlapping calls never corrupt a file; the last
// writer of state.json wins.
package hostops
