// Package rollout is the pure decision core of drover: a state machine that
// is told what happened and says what to do next. It does no I/O, starts no
// goroutines, never reads the clock and draws no random numbers; the runner
// passes `now` in, executes the actions and reports their results. Every
// safety rule of a deploy lives here once, and is tested here with golden
// scenario files (testdata/*.txt) and property tests over random fleets.
//
// # Driving a Machine
//
// The shape is etcd raft's: inputs go in, a batch of things to do comes out.
//
//	m, err := rollout.New(plan)
//	for {
//		rd := m.Ready(now)          // actions to start, notes for people
//		start(rd.Actions)           // each action is handed out once
//		if m.Done() { break }
//		r := waitForAResult()
//		if err := m.Report(now, r); err != nil { panic(err) } // runner bug
//	}
//	report := m.Outcome()
//
// Abort(now, reason) is the operator's interrupt. InFlight counts actions
// handed out and not yet reported.
//
// # A deploy (ModeDeploy)
//
// Stage: every non-skipped host stages the release (receive, unpack,
// render, validate), at most StageParallelism at once, in plan order. No
// host leaves rotation until every host has staged, so a bad bundle or a
// config that does not validate is found while the whole fleet still runs
// the old release. Hosts that fail staging are not promoted.
//
// Promote: groups in plan order; within a group, batches of Batch hosts in
// plan order. A host goes depool → switch → restart → check → repool. The
// next batch starts when every host of the batch has finished its whole
// path; the next group when the group is finished. So at most Batch hosts of
// a group are ever out of rotation — during the rollback too. A host out of
// rotation is one whose depool was started and whose repool has not yet
// succeeded; a host handed to a person (stuck or unreachable) no longer
// counts: counting it would wedge its group, and the group's rollback, for
// the rest of the deploy. The failure limit bounds how many there can be.
//
// Failure limit: failures are counted per group, over the whole group
// (never per batch), and checked as each failure is reported (never at the
// end of a batch). A host fails when a stage or deploy-path step fails or
// the host is unreachable. A failed host is undone at once: after a failed
// depool it is only repooled (it was never switched); after any later step
// it goes restore → restart → check → repool. When the group's failures
// exceed its FailureLimit (failures > FailureLimit), or on Abort, the deploy
// halts: nothing starts any more deploy-path step, steps in flight finish,
// and hosts restoring themselves finish their restore.
//
// Rollback: once nothing is in flight, every host this deploy switched and
// did not restore goes back to its pre-deploy snapshot, in every group
// including finished canaries, groups in reverse order (the group that was
// running first), at most Batch hosts of a group at once, hosts out of
// rotation first. The path is depool → restore → restart → check → repool,
// without the depool for a host already out of rotation; a host depooled
// and never switched is only repooled. A switch that failed counts as
// switched: it may have swapped the link before it failed. Unreachable and
// stuck hosts are skipped and reported. A halt during staging has nothing
// to roll back.
//
// Restoring means the snapshot recorded before the deploy, never "the
// latest release" (an Ansible wrapper's rollback once redeployed the broken
// tip that way), and a host with no previous release (HostPlan.From == "")
// is restored too, to "none": a failed first deploy must not stay running.
// A host another tool deployed (Capistrano, Scap, Ansible) has a release,
// a foreign one: its From is "foreign releases/<slot>", never "".
// What the snapshot is, is the runner's business; this package only decides
// that a host goes back.
//
// A step that fails on a restoring path makes the host Stuck, an
// unreachable host becomes Unreachable: nothing more is done to either, and
// the verdict needs a person.
//
// # Gates
//
// A group may have gates (GroupPlan.Gates): what must hold once every host
// of the group is done and back in rotation, before the next group starts
// or the deploy ends — a bake time, a smoke test through the load
// balancer, an invariant comparison, a person's approval. The Machine knows
// two kinds. GateWait passes once its Wait has elapsed on the clock passed
// to Ready; while one is pending, Ready.Wake says when to call again.
// GateRun is an Action with Step StepGate that the runner runs and reports.
// A failed gate halts the deploy whatever the failure limit — the limit
// counts hosts, a gate speaks for the whole group — and everything switched
// rolls back. A halt abandons a pending wait at once. Halt lets the runner
// stop a deploy for a reason outside any step (a background analysis).
//
// # A rollback (ModeRollback)
//
// Every non-skipped host goes through depool → restore → restart → check →
// repool, groups in reverse order, at most Batch hosts of a group at once,
// with no staging and no failure limit. Abort stops starting hosts; hosts
// already restoring finish.
//
// # Verdict
//
// ModeDeploy: NeedsPerson when any host is unreachable or stuck, left out of
// rotation, or left on the new release after a halt (a second interrupt
// stopped the rollback); else, when the deploy halted, Halted if no host
// had switched (nothing changed: every host failed staging, an interrupt
// while staging) and RolledBack if one had; else Partial when any host failed (and was restored); else Succeeded. ModeRollback:
// Succeeded when every non-skipped host is rolled back, else NeedsPerson.
//
// # Notes
//
// Notes (NoteGroupStart, NoteHostFailed, NoteHalt, NoteVerdict, ...) tell
// people what happened, stamped with the `now` of the call that produced
// them; the runner turns them into events.
package rollout
