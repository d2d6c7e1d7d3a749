package rollout

import (
	"fmt"
	"time"
)

// This file decides promotion: groups in plan order, batches within a
// group, and the failure limit that halts it.

// stepPromote starts the next batch or group once the current one is over.
func (m *Machine) stepPromote(now time.Time) bool {
	if m.halted {
		// Steps that were running when the deploy halted finish first:
		// a switch or restart cut off half-way leaves a host in a state
		// nobody knows, and the rollback needs to know.
		if m.issued > 0 {
			return false
		}
		m.startRollback(now)
		return true
	}
	for ; m.cur < len(m.groups); m.cur++ {
		g := m.groups[m.cur]
		if !g.started {
			m.startGroup(now, g)
		}
		// A batch is over when every host in it finished its whole path,
		// including its own restore after a failure: only then is it back
		// in rotation, and only then may more hosts leave rotation.
		for _, h := range g.batch {
			if h.kind != pathNone {
				return false
			}
		}
		if g.next < len(g.queue) {
			end := min(g.next+g.plan.Batch, len(g.queue))
			g.batch = g.queue[g.next:end]
			g.next = end
			for _, h := range g.batch {
				m.start(h, pathDeploy, m.deployPath()...)
			}
			return false
		}
		g.batch = nil
		// Gates run once the group's hosts are all done and back in
		// rotation, and the next group waits for them.
		if !m.stepGates(now, g) {
			return false
		}
		m.groupNote(now, NoteGroupDone, g, "%s", m.groupSummary(g))
	}
	m.finish(now)
	return true
}

// startGroup queues the group's hosts that staged, in plan order.
func (m *Machine) startGroup(now time.Time, g *group) {
	g.started = true
	skipped, unstaged := 0, 0
	for _, h := range g.hosts {
		switch {
		case h.plan.Skip:
			skipped++
		case !h.staged:
			// Failed staging: there is nothing to switch to.
			unstaged++
		default:
			g.queue = append(g.queue, h)
		}
	}
	msg := fmt.Sprintf("%s to promote, batch %d, failure limit %d", plural(len(g.queue), "host"), g.plan.Batch, g.plan.FailureLimit)
	if skipped > 0 {
		msg += fmt.Sprintf(", %d skipped", skipped)
	}
	if unstaged > 0 {
		msg += fmt.Sprintf(", %d failed staging", unstaged)
	}
	m.groupNote(now, NoteGroupStart, g, "%s", msg)
}

// countFailure counts a failure of h (staging or deploy path) against its
// group and halts when the group's limit is exceeded.
//
// The count is over the whole group, never per batch: counting per batch —
// as Scap's subgroups once did — lets a group of 50 in batches of 5 with a
// limit of 1 lose ten hosts without the limit ever being exceeded. And it
// is checked at each failure, not at the end of the batch, so the other
// hosts of the batch take no further step towards a release already known
// to be bad.
func (m *Machine) countFailure(now time.Time, h *host, what string) {
	g := h.group
	g.failures++
	m.note(now, NoteHostFailed, h, fmt.Sprintf("%s (%d failed in group %s, limit %d)", what, g.failures, g.plan.Name, g.plan.FailureLimit))
	// Frozen, a halt is moot (nothing starts anyway) and would bury why
	// the deploy stopped.
	if !m.halted && !m.frozen && g.failures > g.plan.FailureLimit {
		m.halt(now, fmt.Sprintf("group %s: %d failed > failure limit %d: %s %s", g.plan.Name, g.failures, g.plan.FailureLimit, h.plan.Name, what))
	}
}
