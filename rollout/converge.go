package rollout

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Converge decides the rounds of `drover converge`: given, at the start of
// each round, which hosts are not on the desired release yet, it says
// whether the fleet converged or the budget is spent, which hosts to
// deploy to, which to replace first, and how long to wait after the round.
//
// It is the super-loop of docs/why.md#super-loop — retry, verify the world, retry with
// growing waits — made finite and replayable: no clock, no I/O, jitter from
// a seeded source. The runner surveys the fleet, calls Next, runs the
// replace hooks and the deploy, sleeps Wait, and surveys again.
type Converge struct {
	p        ConvergePolicy
	rng      *rand.Rand
	round    int
	last     []string       // the hosts the previous round deployed to
	failed   map[string]int // rounds each host was deployed to and stayed off target
	replaced map[string]bool
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

// ConvergeStep is what to do in a round.
type ConvergeStep struct {
	// Round counts from 1; Rounds is the budget.
	Round, Rounds int
	// Done: stop; Converged says whether every host is on target.
	Done, Converged bool
	// Behind are the hosts not on target, sorted.
	Behind []string
	// Replace are hosts whose replace hook runs before the deploy; they
	// are in Deploy too.
	Replace []string
	// Deploy are the hosts to deploy to this round (all of Behind).
	Deploy []string
	// Wait is the pause after this round's deploy, before the next survey.
	Wait time.Duration
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
		replaced: map[string]bool{},
	}
}

// Next takes the hosts not on the desired release, as a survey found them
// at the start of a round (or after the last round), and returns the step.
// Once it returned Done it keeps returning Done.
func (c *Converge) Next(behind []string) ConvergeStep {
	behind = slices.Clone(behind)
	slices.Sort(behind)
	behind = slices.Compact(behind)
	// A host the previous round deployed to that is still behind failed
	// that round.
	for _, h := range c.last {
		if slices.Contains(behind, h) {
			c.failed[h]++
		}
	}
	c.last = nil
	st := ConvergeStep{Round: c.round + 1, Rounds: c.p.MaxRounds, Behind: behind}
	if len(behind) == 0 {
		st.Round = c.round
		st.Done, st.Converged = true, true
		c.round = c.p.MaxRounds + 1
		return st
	}
	if c.round >= c.p.MaxRounds {
		st.Round = c.round
		st.Done = true
		return st
	}
	c.round++
	if c.p.ReplaceAfter > 0 {
		for _, h := range behind {
			if c.failed[h] >= c.p.ReplaceAfter && !c.replaced[h] {
				c.replaced[h] = true
				st.Replace = append(st.Replace, h)
			}
		}
	}
	st.Deploy = behind
	c.last = behind
	if c.round < c.p.MaxRounds {
		st.Wait = c.wait(c.round)
	}
	return st
}

// Failures returns how many rounds host was deployed to and stayed behind.
func (c *Converge) Failures(host string) int { return c.failed[host] }

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
