package rollout

import "time"

// This file decides staging: which hosts receive the release now, and when
// promotion may begin.
//
// Every host stages before any host switches. A bundle that does not unpack,
// a config template with a hole in it or a validation that fails on host 40
// is then found while every host still runs the old release, instead of
// after 39 hosts were switched and have to be rolled back under load.
// Staging failures count against the group's failure limit like any other;
// exceeding it here halts with nothing to undo.

// startStage queues every non-skipped host for staging, in plan order.
func (m *Machine) startStage(now time.Time) {
	skipped := 0
	for _, h := range m.hosts {
		if h.plan.Skip {
			skipped++
			continue
		}
		m.stageQueue = append(m.stageQueue, h)
	}
	m.phase = phaseStage
	m.notes = append(m.notes, Note{Time: now, Kind: NoteStageStart,
		Message: plural(len(m.stageQueue), "host") + " to stage, " + itoa(m.stagePar) + " at a time, " + itoa(skipped) + " skipped"})
}

// stepStage starts hosts staging, up to StageParallelism at once, and
// moves on to promotion once every host has staged.
func (m *Machine) stepStage(now time.Time) bool {
	// After a halt no new host stages: nothing more will be promoted.
	for !m.halted && m.issued < m.stagePar && m.stageNext < len(m.stageQueue) {
		m.start(m.stageQueue[m.stageNext], pathStage, StepStage)
		m.stageNext++
	}
	if m.issued > 0 {
		return false
	}
	if m.halted {
		// Nothing was switched, so there is nothing to roll back.
		m.finish(now)
		return true
	}
	staged := 0
	for _, h := range m.stageQueue {
		if h.staged {
			staged++
		}
	}
	m.notes = append(m.notes, Note{Time: now, Kind: NoteStageDone,
		Message: itoa(staged) + " staged, " + itoa(len(m.stageQueue)-staged) + " failed"})
	m.phase = phasePromote
	return true
}
