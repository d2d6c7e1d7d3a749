package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drover/internal/etcdtest"
	"drover/internal/localfleet"
)

// promoteConfig appends staging (h01, h02) and prod (h03, h04, requiring
// staging with soak) to f's config.
func promoteConfig(t *testing.T, f *localfleet.Fleet, soak string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("environments:\n")
	for _, env := range []struct {
		name  string
		hosts []localfleet.HostInfo
		extra string
	}{{"staging", f.Hosts[:2], ""}, {"prod", f.Hosts[2:], "    requires: {env: staging, soak: " + soak + "}\n"}} {
		fmt.Fprintf(&b, "  %s:\n    groups: [{name: web, hosts: [\"*\"]}]\n%s    hosts:\n", env.name, env.extra)
		for _, h := range env.hosts {
			fmt.Fprintf(&b, "      - {name: %s, address: %q, vars: {port: %d}}\n", h.Name, h.Dir, h.Port)
		}
	}
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.Index(string(cfg), "environments:\n"); i >= 0 {
		cfg = cfg[:i]
	}
	if err := os.WriteFile(f.Config, append(cfg, b.String()...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestE2EPromote: prod requires staging. A release that never ran in
// staging, one still soaking, one whose staging deploy failed since, and
// one whose kept bundle is gone are each refused with exit 2 touching
// nothing; drover promote deploys exactly the bundle staging runs; drover
// diff says whether both run the same release; and the server's deploy
// API holds every operator to the same history.
func TestE2EPromote(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 4, Groups: e2eGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	promoteConfig(t, f, "30m")
	refused := func(r result, want ...string) {
		t.Helper()
		mustExit(t, r, 2)
		for _, w := range want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("refusal lacks %q:\n%s", w, r)
			}
		}
	}
	promote := func(extra ...string) result {
		t.Helper()
		return runDrover(t, append([]string{"promote", "-c", f.Config, "staging", "prod", "--yes"}, extra...)...)
	}

	v1 := writeRelease(t, f, "1.0.0", true)
	before := hostsDigest(t, f)
	refused(deploy(t, f, v1, "--env", "prod", "--yes"), "prod accepts only releases that ran in staging", "never succeeded in staging", "hint:")
	refused(promote(), "staging runs no one release", "no successful deploy on h01, h02")
	if d := diffDigests(before, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("refused deploys changed hosts: %v", d)
	}

	mustExit(t, deploy(t, f, v1, "--env", "staging", "--yes"), 0)
	staged := time.Now()
	id := readState(t, f, "h01").Current
	if _, err := os.Stat(filepath.Join(f.StateDir, "bundles", "hello", id+".tar.gz")); err != nil {
		t.Fatalf("staging's bundle is not kept: %v", err)
	}
	before = hostsDigest(t, f)
	refused(promote(), "release "+id+" has run in staging for", "of its 30m soak", "to go")
	if d := diffDigests(before, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("a promotion still soaking changed hosts: %v", d)
	}

	// A short soak, and it is over: promote deploys staging's bundle.
	promoteConfig(t, f, "1s")
	time.Sleep(time.Until(staged.Add(time.Second)))
	r := promote()
	mustExit(t, r, 0)
	if !strings.Contains(r.stderr, "staging runs "+id) {
		t.Errorf("promote does not say what it deploys: %s", r)
	}
	wantServing(t, f, "1.0.0", nil)
	for _, h := range []string{"h03", "h04"} {
		if got := readState(t, f, h).Current; got != id {
			t.Errorf("%s runs %q, want staging's %q", h, got, id)
		}
	}
	diff := func() envDiff {
		t.Helper()
		r := runDrover(t, "diff", "-c", f.Config, "staging", "prod", "--json")
		mustExit(t, r, 0)
		var d envDiff
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
			t.Fatalf("diff --json: %v\n%s", err, r.stdout)
		}
		return d
	}
	if d := diff(); !d.SameRelease || d.ReleaseA != id || d.ReleaseB != id {
		t.Errorf("diff after promote: %+v", d)
	}
	r = runDrover(t, "diff", "-c", f.Config, "staging", "prod")
	if !strings.Contains(r.stdout, "staging and prod run the same release, "+id) {
		t.Errorf("diff text:\n%s", r)
	}

	// The kept bundle is lost: promote refuses, naming it.
	if err := os.RemoveAll(filepath.Join(f.StateDir, "bundles")); err != nil {
		t.Fatal(err)
	}
	refused(promote(), "the bundle of release "+id+" is not kept", filepath.Join("bundles", "hello", id+".tar.gz"))

	// A failed deploy in staging: nothing there is promotable until a
	// release succeeds again, even though staging is back on 1.0.0.
	// (Its config does not validate, so it fails in staging without
	// waiting for a check to time out.)
	v2 := writeRelease(t, f, "2.0.0", true)
	tmpl := filepath.Join(v2, "hello.conf.tmpl")
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl, append(b, "not a key value line\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExit(t, deploy(t, f, v2, "--env", "staging", "--yes"), 1)
	before = hostsDigest(t, f)
	refused(promote(), "staging runs no one release", "halted before any host switched")
	refused(deploy(t, f, v1, "--env", "prod", "--yes", "--force"), "since reset its soak", "halted before any host switched")
	refused(deploy(t, f, v2, "--env", "prod", "--yes"), "never succeeded in staging")
	if d := diffDigests(before, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("refused deploys changed hosts: %v", d)
	}
}

// TestE2EPromoteSharedStore: with the history in etcd, the rule holds for
// every operator. Operator A deploys 1.0.0 to staging; operator B, on
// another machine (its own state directory), is judged by A's history: B's
// promote finds staging on A's release and refuses only because the
// bundle was kept on A's machine, naming it. A drover server on the same
// etcd refuses through its deploy API a release that never ran in staging
// and accepts A's, built again from its directory (the same content hash).
func TestE2EPromoteSharedStore(t *testing.T) {
	t.Parallel()
	etcdSrv := etcdtest.Start(t)
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 4, Groups: e2eGroups,
		ExtraYAML: fmt.Sprintf("store:\n  etcd:\n    endpoints: [%q]\n    prefix: /promote\n", etcdSrv.Endpoint)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	promoteConfig(t, f, "0s")
	v1, v2 := writeRelease(t, f, "1.0.0", true), writeRelease(t, f, "2.0.0", true)
	mustExit(t, deploy(t, f, v1, "--env", "staging", "--yes"), 0)
	id := readState(t, f, "h01").Current

	// Operator B: the same drover.yaml but its own state directory.
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	stateB := t.TempDir()
	cfgB := filepath.Join(filepath.Dir(f.Config), "drover-b.yaml")
	q, _ := json.Marshal(f.StateDir)
	qb, _ := json.Marshal(stateB)
	if err := os.WriteFile(cfgB, []byte(strings.Replace(string(cfg), "state_dir: "+string(q), "state_dir: "+string(qb), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := hostsDigest(t, f)
	r := runDrover(t, "deploy", "-c", cfgB, "--env", "prod", "--release", v2, "--yes")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "never succeeded in staging, which runs "+id) {
		t.Errorf("operator B's deploy of 2.0.0: %s", r)
	}
	r = runDrover(t, "promote", "-c", cfgB, "staging", "prod", "--yes")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "the bundle of release "+id+" is not kept: "+filepath.Join(stateB, "bundles")) {
		t.Errorf("operator B's promote: %s", r)
	}

	tokens := filepath.Join(t.TempDir(), "tokens.json")
	tok := createToken(t, tokens, "ci", "deployer")
	rep := startReplica(t, f.Config+"#prod", tokens)
	for deadline := time.Now().Add(30 * time.Second); !rep.leads(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server does not lead: %s", rep.stderr)
		}
	}
	r = deploy(t, f, v2, "--server", rep.url, "--token", tok, "--env", "prod", "--yes")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "never succeeded in staging") {
		t.Errorf("server's refusal: %s", r)
	}
	if d := diffDigests(before, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("refused deploys changed hosts: %v", d)
	}
	mustExit(t, deploy(t, f, v1, "--server", rep.url, "--token", tok, "--env", "prod", "--yes"), 0)
	wantServing(t, f, "1.0.0", nil)
	for _, h := range []string{"h03", "h04"} {
		if got := readState(t, f, h).Current; got != id {
			t.Errorf("%s runs %q, want staging's %q", h, got, id)
		}
	}
}
