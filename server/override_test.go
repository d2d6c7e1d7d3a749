package server

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/release"
)

// TestDeployOverridesThroughAPI: POST .../deploys takes the same emergency
// overrides as drover deploy, as JSON fields and, for an uploaded bundle,
// query parameters. Without a reason (message), or naming a check the
// service lacks, the request is refused and nothing runs; with both, a
// release failing its health check goes out, and the record and the
// deploy_start event carry the override. The next deploy checks again.
func TestDeployOverridesThroughAPI(t *testing.T) {
	e := newEnv(t, 2, testGroups)
	ctx := context.Background()
	c := e.client(t, "dep")
	st, err := c.Deploy(ctx, "hello", DeployRequest{Release: e.release(t, "1.0.0", true), Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := follow(t, c, st.ID); v.Outcome != drover.OutcomeSucceeded {
		t.Fatalf("first deploy: %+v", v)
	}

	sick := e.release(t, "2.0.0", false)
	_, err = c.Deploy(ctx, "hello", DeployRequest{Release: sick, Version: "2.0.0", SkipChecks: []string{"health"}})
	wantCode(t, err, drover.EINVALID)
	if err == nil || !strings.Contains(err.Error(), "needs a reason") {
		t.Errorf("no reason: %v", err)
	}
	_, err = c.Deploy(ctx, "hello", DeployRequest{Release: sick, Version: "2.0.0", SkipChecks: []string{"helth"}, Message: "INC-9"})
	wantCode(t, err, drover.EINVALID)
	if err == nil || !strings.Contains(err.Error(), `"helth"`) {
		t.Errorf("unknown check: %v", err)
	}
	wantVersions(t, e.fleet, "1.0.0")

	bundle := filepath.Join(t.TempDir(), "hello-2.tar.gz")
	if _, err := release.Build(ctx, sick, release.BuildOptions{Service: "hello", Version: "2.0.0", Out: bundle, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st, err = c.DeployBundle(ctx, "hello", bundle, DeployRequest{Message: "INC-9: /health broken, fixed in 2.0.1", SkipChecks: []string{"health"}})
	if err != nil {
		t.Fatal(err)
	}
	var start drover.Event
	v, err := c.Follow(ctx, st.ID, func(ev drover.Event) {
		if ev.Kind == drover.EventDeployStart {
			start = ev
		}
	})
	if err != nil || v.Outcome != drover.OutcomeSucceeded {
		t.Fatalf("override deploy: %+v, %v", v, err)
	}
	wantVersions(t, e.fleet, "2.0.0")
	want := []drover.Override{{Kind: drover.OverrideCheck, Name: "health", Reason: "INC-9: /health broken, fixed in 2.0.1"}}
	if !slices.Equal(start.Overrides, want) {
		t.Errorf("deploy_start overrides %+v, want %+v", start.Overrides, want)
	}
	info, err := c.DeployInfo(ctx, st.ID)
	if err != nil || !slices.Equal(info.Record.Overrides, want) || info.Record.User != "token:dep" {
		t.Errorf("record: %+v, %v", info.Record, err)
	}

	st, err = c.Deploy(ctx, "hello", DeployRequest{Release: e.release(t, "3.0.0", false), Version: "3.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := follow(t, c, st.ID); v.Outcome == drover.OutcomeSucceeded {
		t.Errorf("the deploy after the override skipped the health check too: %+v", v)
	}
}
