package rollout

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Converge decides the rounds of `drover converge`: given, at the start of
// each round, which hosts are not on the desired release yet (and which of
// them did not answer), it says whether the fleet converged, the budget is
// spent or the release itself was found bad, which hosts to deploy to,
// which to replace first, and how long to wait after the round.
//
// It is the super-loop of docs/why.md#super-loop — retry, verify the world, retry with
// growing waits — made finite and replayable: no clock, no I/O, jitter from
// a seeded source. The runner surveys the fleet, calls Next, runs the
// replace hooks and the deploy, reports the round with Ended, sleeps Wait,
// and surveys again.
//
// The stopping rule: host trouble keeps the loop going, release trouble
// stops it. A host that failed, got stuck on its restore path or did not
// answer is simply not on the release: the next round tries it again
// through the full deploy path, and after ReplaceAfter such rounds it is
// replaced. A round that halted (a failure limit exceeded, a gate failed)
// says the release is bad; deploying it again round after round across
// the fleet is exactly what a super-loop must never do, so Converge stops.
type Converge struct {
	p        ConvergePolicy
	rng      *rand.Rand
	round    int
	done     bool
	halted   string
	last     []string       // the hosts behind at the start of the previous round
	failed   map[string]int // rounds each host was behind at the start and after
	tried    map[string]int // rounds each host was behind at the start of
	cause    map[string]string
	replaced map[string]bool
	// suspect are hosts the last round that deployed to them left off the
	// release (failed, stuck, not answering after a replace), and
	// deploying the hosts of the round under way.
	suspect   map[string]bool
	deploying []string
}

// ConvergePolicy bounds a Converge. Zero fields take the defaults below.
type ConvergePolicy struct {
	// MaxRounds is how many deploy rounds run at most.
	MaxRounds int
	// Wait is the pause after the first round; it doubles after each
	// round up to MaxWait. The pause is drawn from [w/2, w] so fleets
	// converging together do not hammer a shared dependency in step.
	Wait, MaxWait time.Duration
	// ReplaceAfter is how many rounds a host may stay off target before
	// it is replaced, once per run. 0 never replaces.
	ReplaceAfter int
	Seed         int64
}

// Defaults of ConvergePolicy.
const (
	DefaultConvergeRounds  = 10
	DefaultConvergeWait    = 5 * time.Second
	DefaultConvergeMaxWait = 2 * time.Minute
)

// ConvergeSurvey is what the survey at the start of a round found.
type ConvergeSurvey struct {
	// Behind are the targeted hosts not on the desired release,
	// including those that did not answer.
	Behind []string
	// Unreachable are the hosts that did not answer, with why.
	Unreachable map[string]string
	// Targets are every targeted host; nil means those of Behind and
	// Unreachable and every host a round left off the release.
	Targets []string
}

// ConvergeEnd says how a converge ended.
type ConvergeEnd string

// Ends of a converge.
const (
	ConvergeRunning   ConvergeEnd = ""
	ConvergeConverged ConvergeEnd = "converged" // every targeted host on the release
	ConvergeExhausted ConvergeEnd = "exhausted" // MaxRounds ran, hosts are left
	ConvergeHalted    ConvergeEnd = "halted"    // a round halted: the release is bad
)

// ConvergeStep is what to do in a round.
type ConvergeStep struct {
	// Round counts from 1; Rounds is the budget.
	Round, Rounds int
	// Done: stop; End says why.
	Done bool
	End  ConvergeEnd
	// Converged is End == ConvergeConverged.
	Converged bool
	// Behind are the hosts not on target, sorted.
	Behind []string
	// Replace are hosts whose replace hook runs before the deploy; they
	// are in Deploy too, also when they did not answer the survey: a
	// dead VM is what replacing is for.
	Replace []string
	// Deploy are the hosts to deploy to this round: Behind but those
	// that did not answer (and are not replaced). A host that does not
	// answer cannot be deployed to; putting it in the deploy would only
	// count it against the failure limit as if the release had failed
	// there, and halt a good release over a network problem.
	Deploy []string
	// Skipped are the hosts of Behind left out of Deploy (unreachable).
	Skipped []string
	// Force are hosts of Deploy whose state says they are on the release
	// but that the last round left off it — stuck on the restore path
	// after a switch, say: their checks never passed, so the deploy must
	// not skip them.
	Force []string
	// Wait is the pause after this round's deploy, before the next survey.
	Wait time.Duration
}

// ConvergeRound is how a round's deploy ended, fed back with Ended.
type ConvergeRound struct {
	// Halted is the deploy's halt reason, "" when it did not halt.
	Halted string
	// Causes say, for hosts of the round that did not end on the
	// release, why (the deploy's reason, "unreachable: ...", ...).
	Causes map[string]string
	// Joined are hosts the round deployed to that the survey did not
	// know: replacements that came from the inventory.
	Joined []string
}

// HostLeft is a host not on the release when a converge ended.
type HostLeft struct {
	Name string `json:"host"`
	// Cause is the last reason it was not on the release.
	Cause string `json:"cause"`
	// Rounds is how many rounds it was tried in.
	Rounds   int  `json:"rounds"`
	Replaced bool `json:"replaced"`
}

// NewConverge returns a Converge for p.
func NewConverge(p ConvergePolicy) *Converge {
	if p.MaxRounds < 1 {
		p.MaxRounds = DefaultConvergeRounds
	}
	if p.Wait < 0 {
		p.Wait = 0
	}
	if p.MaxWait < p.Wait {
		p.MaxWait = p.Wait
	}
	seed := uint64(p.Seed)
	return &Converge{
		p:        p,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		failed:   map[string]int{},
		tried:    map[string]int{},
		suspect:  map[string]bool{},
		cause:    map[string]string{},
		replaced: map[string]bool{},
	}
}

// Next takes what the survey at the start of a round (or after the last
// round) found and returns the step. Once it returned Done it keeps
// returning Done.
func (c *Converge) Next(s ConvergeSurvey) ConvergeStep {
	behind := slices.Clone(s.Behind)
	for h := range s.Unreachable {
		behind = append(behind, h)
	}
	// A host a round left off the release is behind whatever its state
	// says, until a round gets it onto the release with its checks
	// passing: a host whose restore failed after its switch reads as on
	// the release, out of rotation, its checks failed.
	var force []string
	for h := range c.suspect {
		if s.Targets != nil && !slices.Contains(s.Targets, h) {
			continue
		}
		if !slices.Contains(behind, h) {
			behind = append(behind, h)
			force = append(force, h)
		}
	}
	slices.Sort(force)
	slices.Sort(behind)
	behind = slices.Compact(behind)
	// A host behind at the start of the previous round that is still
	// behind failed that round, whatever the reason: failed, stuck,
	// unreachable. On the release now (a stuck host a later round got
	// onto it with its checks passing): it is done with.
	for _, h := range c.last {
		if slices.Contains(behind, h) {
			c.failed[h]++
		} else {
			delete(c.cause, h)
		}
	}
	c.last = nil
	for h, why := range s.Unreachable {
		c.cause[h] = "unreachable: " + why
	}
	st := ConvergeStep{Round: c.round, Rounds: c.p.MaxRounds, Behind: behind}
	switch {
	case c.done:
		st.Done, st.End = true, c.end(behind)
	case c.halted != "":
		st.Done, st.End = true, ConvergeHalted
	case len(behind) == 0:
		st.Done, st.End = true, ConvergeConverged
	case c.round >= c.p.MaxRounds:
		st.Done, st.End = true, ConvergeExhausted
	}
	if st.Done {
		c.done = true
		st.Converged = st.End == ConvergeConverged
		return st
	}
	c.round++
	st.Round = c.round
	for _, h := range behind {
		c.tried[h]++
	}
	replace := map[string]bool{}
	if c.p.ReplaceAfter > 0 {
		for _, h := range behind {
			if c.failed[h] >= c.p.ReplaceAfter && !c.replaced[h] {
				c.replaced[h] = true
				replace[h] = true
				st.Replace = append(st.Replace, h)
			}
		}
	}
	for _, h := range behind {
		if _, down := s.Unreachable[h]; down && !replace[h] {
			st.Skipped = append(st.Skipped, h)
			continue
		}
		st.Deploy = append(st.Deploy, h)
		if slices.Contains(force, h) {
			st.Force = append(st.Force, h)
		}
	}
	c.last = behind
	c.deploying = slices.Clone(st.Deploy)
	if c.round < c.p.MaxRounds {
		st.Wait = c.wait(c.round)
	}
	return st
}

// Ended takes how the round Next handed out ended. A halted round ends
// the converge: the next Next is Done with ConvergeHalted.
func (c *Converge) Ended(r ConvergeRound) {
	if r.Halted != "" && c.halted == "" {
		c.halted = r.Halted
	}
	for h, why := range r.Causes {
		c.cause[h] = why
		c.suspect[h] = true
	}
	for _, h := range append(c.deploying, r.Joined...) {
		if _, off := r.Causes[h]; !off {
			delete(c.suspect, h)
		}
	}
	c.deploying = nil
	for _, h := range r.Joined {
		if !slices.Contains(c.last, h) {
			c.last = append(c.last, h)
			c.tried[h]++
		}
	}
}

// end is how a converge that was already done ended.
func (c *Converge) end(behind []string) ConvergeEnd {
	switch {
	case c.halted != "":
		return ConvergeHalted
	case len(behind) == 0:
		return ConvergeConverged
	}
	return ConvergeExhausted
}

// HaltReason is why a round halted, "" if none did.
func (c *Converge) HaltReason() string { return c.halted }

// Failures returns how many rounds host was behind at the start of and
// stayed behind.
func (c *Converge) Failures(host string) int { return c.failed[host] }

// Left describes the hosts of behind (the last survey's) for the summary:
// each one's last cause and the rounds it was tried in.
func (c *Converge) Left(behind []string) []HostLeft {
	out := make([]HostLeft, 0, len(behind))
	for _, h := range behind {
		why := c.cause[h]
		if why == "" {
			why = "not on the release"
		}
		out = append(out, HostLeft{Name: h, Cause: why, Rounds: c.tried[h], Replaced: c.replaced[h]})
	}
	slices.SortFunc(out, func(a, b HostLeft) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Replaced lists the hosts replaced so far, sorted.
func (c *Converge) Replaced() []string {
	var out []string
	for h := range c.replaced {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// wait is the pause after round n: Wait doubled n-1 times, capped at
// MaxWait, drawn from its upper half.
func (c *Converge) wait(n int) time.Duration {
	w := c.p.Wait
	for i := 1; i < n && w < c.p.MaxWait; i++ {
		w *= 2
	}
	w = min(w, c.p.MaxWait)
	if w <= 1 {
		return w
	}
	half := w / 2
	return half + time.Duration(c.rng.Int64N(int64(w-half)+1))
}
