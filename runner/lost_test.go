package runner

import (
	"context"
	"testing"

	"drover"
	"drover/rollout"
)

// A host lost mid-deploy (unreachable after its depool) is restored by
// resume once it answers again; a second resume has nothing to do.
func TestResumeRestoresLostHost(t *testing.T) {
	e := newEnv(t, testSpec(4))
	v1, v2 := mkRelease(t, "1.0.0"), mkRelease(t, "2.0.0")
	e.mustDeploy(v1, "")
	g := e.fleet.Hold("h02", opPromote)
	done := make(chan *Outcome, 1)
	go func() { done <- e.deploy(context.Background(), DeployOptions{Release: v2}) }()
	<-g.entered
	e.fleet.SetDown("h02", true)
	g.Release()
	out := <-done
	if out.ExitCode != drover.ExitNeedsPerson {
		t.Fatalf("deploy with h02 lost: exit %d: %s", out.ExitCode, out.Summary)
	}
	// Still silent: resume reports it again and restores nothing.
	outs, err := e.r.Resume(context.Background())
	if err != nil || len(outs) != 1 || outs[0].ExitCode != drover.ExitNeedsPerson {
		t.Fatalf("resume with h02 still down: %+v, %v", outs, err)
	}
	e.fleet.SetDown("h02", false)
	outs, err = e.r.Resume(context.Background())
	if err != nil || len(outs) != 1 || outs[0].ExitCode != drover.ExitOK || outs[0].Kind != drover.KindRecover {
		t.Fatalf("resume once h02 answers: %+v, %v", outs, err)
	}
	if hs := outs[0].Report.Hosts; len(hs) != 1 || hs[0].Name != "h02" || hs[0].Status != rollout.HostRolledBack {
		t.Errorf("resume restored %+v, want h02 alone", hs)
	}
	if st := e.states()["h02"]; st.Release != v1.ID() {
		t.Errorf("h02 on %s after resume, want %s", st.Release, v1.ID())
	}
	for _, name := range []string{"h01", "h03", "h04"} {
		if st := e.states()[name]; st.Release != v2.ID() {
			t.Errorf("%s on %s after resume, want untouched on %s", name, st.Release, v2.ID())
		}
	}
	outs, err = e.r.Resume(context.Background())
	if err != nil || len(outs) != 0 {
		t.Fatalf("second resume: %+v, %v; want nothing to do", outs, err)
	}
}
