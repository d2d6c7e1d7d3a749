package rollout

// promotion.go decides whether a release may be deployed to an environment
// that requires another (environments.NAME.requires: {env, soak}): it
// replays the required environment's history, oldest first, and asks
// whether the release runs on every one of its hosts and has, with nothing
// going wrong there, for the soak time. Like the rest of the package it
// reads no clock: now comes in.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"drover"
)

// What a Promotion found missing, for programs (the words are in Message).
const (
	// MissingNone: the release may be deployed.
	MissingNone = ""
	// MissingNever: the release never succeeded in the required
	// environment (or, asked for whatever it runs, it runs no one release).
	MissingNever = "never_succeeded"
	// MissingReset: it succeeded there, but a failed deploy, a rollback, a
	// recovery or a deploy still running there since has reset its soak.
	MissingReset = "reset"
	// MissingHosts: some of the required environment's hosts do not run
	// it (a deploy --limit'ed to part of them, or one of another release
	// since).
	MissingHosts = "hosts"
	// MissingSoak: it runs everywhere there, but not for the soak time yet.
	MissingSoak = "soaking"
)

// Promotion is the verdict of Promotable.
type Promotion struct {
	// Missing is MissingNone when the release may be deployed.
	Missing string
	// Env is the required environment; Release the release judged (what
	// Env runs, when Promotable was asked for that).
	Env, Release string
	// Running is the release every host of Env runs by its history, ""
	// when no one release does; Version its version.
	Running, Version string
	// Since is when Running began to soak: the end of the deploy that put
	// it on the last of Env's hosts. Remaining is the soak left.
	Since     time.Time
	Remaining time.Duration
	// Blocker is the deploy, rollback or recovery that reset the soak
	// (MissingReset).
	Blocker *drover.DeployRecord
	// Uncovered are Env's hosts that do not run Release (MissingHosts),
	// with what each runs by history ("" for nothing known).
	Uncovered map[string]string
	// Message says what is missing, Hint what to do; both "" when OK.
	Message, Hint string
}

// OK reports whether the release may be deployed.
func (p Promotion) OK() bool { return p.Missing == MissingNone }

// Promotable judges release against req from history, the deploys,
// rollbacks and recoveries of req.Env in any order (Store.History gives
// them newest first). release "" judges whatever req.Env runs, for
// `drover promote`.
//
// Replayed oldest first, a deploy that succeeded (or found nothing to do)
// puts its release on the hosts it listed, each keeping the time it first
// got there; anything else — a deploy halted (before or after hosts
// switched), one that finished with failed hosts restored, needed a person
// or was interrupted,
// a rollback, a recovery, a deploy that has not finished — forgets what
// every host runs, so the soak starts again only with the next successful
// deploy of the release. That is the conservative reading: after a
// rolled-back deploy the hosts are back on the old release, but it was not
// running undisturbed, and a staging that was being repaired an hour ago
// is not evidence for production. A release soaks from the moment it runs
// on every one of req.Hosts (all hosts seen in history when none are
// given).
func Promotable(req drover.Requirement, history []drover.DeployRecord, release string, now time.Time) Promotion {
	h := replay(history)
	p := Promotion{Env: req.Env, Release: release}
	hosts := req.Hosts
	if len(hosts) == 0 {
		hosts = h.seen
	}
	running, since := h.uniform(hosts)
	p.Running, p.Version = running, h.versions[running]
	if release == "" {
		if running == "" {
			p.Missing = MissingNever
			p.Message = fmt.Sprintf("%s runs no one release by its history: %s", req.Env, h.describe(hosts))
			p.Hint = fmt.Sprintf("deploy a release to every host of %s first, then promote it", req.Env)
			return p
		}
		release, p.Release = running, running
	}
	if running == release {
		p.Since = since
		elapsed := now.Sub(since)
		if elapsed >= req.Soak {
			return p
		}
		p.Missing = MissingSoak
		p.Remaining = req.Soak - elapsed
		p.Message = fmt.Sprintf("release %s has run in %s for %s of its %s soak: %s to go (until %s)",
			release, req.Env, Span(max(elapsed, 0)), Span(req.Soak), Span(p.Remaining), since.Add(req.Soak).UTC().Format("15:04:05 MST"))
		p.Hint = fmt.Sprintf("run it again after %s; a failed deploy or a rollback in %s before then starts the soak again", since.Add(req.Soak).UTC().Format(time.RFC3339), req.Env)
		return p
	}
	last, ever := h.lastOK[release]
	switch b := h.resetAfter[release]; {
	case !ever:
		p.Missing = MissingNever
		p.Message = fmt.Sprintf("release %s never succeeded in %s", release, req.Env)
		if running != "" {
			p.Message += fmt.Sprintf(", which runs %s", running)
			if v := h.versions[running]; v != "" && strings.HasPrefix(release, v+"-") {
				p.Message += fmt.Sprintf(" (the same version %s, other content: a rebuilt bundle is another release)", v)
			}
		}
		p.Hint = fmt.Sprintf("deploy it to %s first (`drover deploy --env %s`), or promote what %s runs (`drover promote %s ENV`)", req.Env, req.Env, req.Env, req.Env)
	case b != nil:
		p.Missing = MissingReset
		p.Blocker = b
		p.Message = fmt.Sprintf("release %s succeeded in %s at %s, but %s since reset its soak",
			release, req.Env, end(last).UTC().Format(time.RFC3339), disturbance(b))
		p.Hint = fmt.Sprintf("deploy %s to %s again (hosts already on it are skipped) and let it soak %s", release, req.Env, Span(req.Soak))
	default:
		p.Missing = MissingHosts
		p.Uncovered = map[string]string{}
		for _, host := range hosts {
			if h.hostRel[host] != release {
				p.Uncovered[host] = h.hostRel[host]
			}
		}
		p.Message = fmt.Sprintf("release %s does not run on every host of %s: %s", release, req.Env, h.describe(hosts))
		p.Hint = fmt.Sprintf("deploy %s to all of %s (without --limit) and let it soak %s", release, req.Env, Span(req.Soak))
	}
	return p
}

// envHistory is an environment's history replayed.
type envHistory struct {
	// hostRel and hostAt: what each host runs by history and since when.
	hostRel map[string]string
	hostAt  map[string]time.Time
	// lastOK: each release's last successful deploy; resetAfter: the
	// first disturbance after it, if any.
	lastOK     map[string]drover.DeployRecord
	resetAfter map[string]*drover.DeployRecord
	versions   map[string]string
	// lastReset is the latest disturbance, for describing hosts it left
	// unknown; seen every host any deploy listed.
	lastReset *drover.DeployRecord
	seen      []string
}

func replay(history []drover.DeployRecord) *envHistory {
	recs := slices.Clone(history)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Started.Before(recs[j].Started) })
	h := &envHistory{hostRel: map[string]string{}, hostAt: map[string]time.Time{}, lastOK: map[string]drover.DeployRecord{},
		resetAfter: map[string]*drover.DeployRecord{}, versions: map[string]string{}}
	seen := map[string]bool{}
	for i := range recs {
		d := &recs[i]
		for _, dh := range d.Hosts {
			if !seen[dh.Name] {
				seen[dh.Name] = true
				h.seen = append(h.seen, dh.Name)
			}
		}
		if d.Kind == drover.KindDeploy && (d.Outcome == drover.OutcomeSucceeded || d.Outcome == drover.OutcomeNothing) && d.Release != "" {
			for _, dh := range d.Hosts {
				if h.hostRel[dh.Name] != d.Release {
					h.hostRel[dh.Name], h.hostAt[dh.Name] = d.Release, end(*d)
				}
			}
			h.lastOK[d.Release] = *d
			delete(h.resetAfter, d.Release)
			h.versions[d.Release] = d.Version
			continue
		}
		clear(h.hostRel)
		clear(h.hostAt)
		h.lastReset = d
		for rel := range h.lastOK {
			if h.resetAfter[rel] == nil {
				h.resetAfter[rel] = d
			}
		}
	}
	sort.Strings(h.seen)
	return h
}

// uniform returns the release every one of hosts runs, and since when it
// runs on all of them; "" when they do not run one release.
func (h *envHistory) uniform(hosts []string) (string, time.Time) {
	if len(hosts) == 0 {
		return "", time.Time{}
	}
	rel := h.hostRel[hosts[0]]
	var since time.Time
	for _, host := range hosts {
		if h.hostRel[host] != rel || rel == "" {
			return "", time.Time{}
		}
		if at := h.hostAt[host]; at.After(since) {
			since = at
		}
	}
	return rel, since
}

// describe says what each of hosts runs by history, grouped by release.
func (h *envHistory) describe(hosts []string) string {
	by := map[string][]string{}
	for _, host := range hosts {
		by[h.hostRel[host]] = append(by[h.hostRel[host]], host)
	}
	rels := make([]string, 0, len(by))
	for rel := range by {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	var parts []string
	for _, rel := range rels {
		names := strings.Join(by[rel], ", ")
		switch {
		case rel != "":
			parts = append(parts, fmt.Sprintf("%s on %s", rel, names))
		case h.lastReset != nil:
			parts = append(parts, fmt.Sprintf("nothing steady on %s since %s", names, disturbance(h.lastReset)))
		default:
			parts = append(parts, fmt.Sprintf("no successful deploy on %s", names))
		}
	}
	if len(parts) == 0 {
		return "it has no hosts"
	}
	return strings.Join(parts, "; ")
}

// disturbance names a record that resets a soak, in the history's words.
func disturbance(d *drover.DeployRecord) string {
	what := d.Kind + " " + d.ID
	if d.Release != "" && d.Kind == drover.KindDeploy {
		what = fmt.Sprintf("deploy %s of %s", d.ID, d.Release)
	}
	if d.Outcome == "" {
		return fmt.Sprintf("%s, started %s, has not finished (running, or interrupted)", what, d.Started.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%s (%s, %s)", what, drover.OutcomeOf(d.Outcome).Verdict, end(*d).UTC().Format(time.RFC3339))
}

// end is when a deploy finished, or started when it has not.
func end(d drover.DeployRecord) time.Time {
	if d.Finished.IsZero() {
		return d.Started
	}
	return d.Finished
}

// Span prints a duration to the second, without a trailing "0s" on whole
// minutes: "18m", "1h30m", "45s".
func Span(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
