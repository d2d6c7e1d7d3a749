package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"drover"
	"drover/release"
)

// bundle builds a real release bundle holding a config template.
func bundle(t testing.TB, version string) *drover.Release {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "app.conf.tmpl"), []byte("port={{.Host.Vars.port}} version={{.Release.Version}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := release.Build(context.Background(), src, release.BuildOptions{Service: "svc", Version: version, Out: filepath.Join(t.TempDir(), "r.tar.gz")})
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

var confFiles = []drover.ConfigFile{{Template: "app.conf.tmpl", Dest: "app.conf"}}

func hostOf(name string, port int) drover.Host {
	return drover.Host{Name: name, Address: "sim:" + name, DeployRoot: "/srv/svc", Vars: map[string]any{"port": uint64(port)}}
}

func data(h drover.Host, rel *drover.Release) drover.TemplateData {
	return drover.NewTemplateData(&drover.Spec{Service: "svc"}, h, rel.ID(), rel.Version())
}

// deploy stages and promotes rel on h, as the runner does.
func deploy(t *testing.T, c drover.HostConn, h drover.Host, rel *drover.Release, id string) drover.StageResult {
	t.Helper()
	ctx := context.Background()
	sr, err := c.Stage(ctx, drover.StageRequest{DeployID: id, Release: rel, ConfigFiles: confFiles, Data: data(h, rel)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Promote(ctx, drover.PromoteRequest{DeployID: id, Slot: sr.Slot, Release: rel.ID(), Version: rel.Version(), ConfigHash: sr.ConfigHash}); err != nil {
		t.Fatal(err)
	}
	return sr
}

// TestBehavesLikeAHost: stage renders config and is idempotent, promote
// moves current to previous, restore puts back exactly a snapshot, prune
// keeps what is live, ReadFile serves rendered files and slot metadata.
func TestBehavesLikeAHost(t *testing.T) {
	ctx := context.Background()
	f := New(Config{Seed: 1})
	h := hostOf("h1", 8001)
	c, err := f.Open(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.State(ctx)
	if err != nil || st.Current != "" || st.Previous != "" {
		t.Fatalf("fresh host: %+v %v", st, err)
	}
	v1, v2 := bundle(t, "1.0.0"), bundle(t, "2.0.0")
	s1 := deploy(t, c, h, v1, "d1")
	if s1.Slot != v1.ID() || s1.Reused {
		t.Fatalf("stage v1: %+v", s1)
	}
	b, err := c.ReadFile(ctx, "releases/"+s1.Slot+"/app.conf")
	if err != nil || string(b) != "port=8001 version=1.0.0\n" {
		t.Fatalf("rendered config: %q %v", b, err)
	}
	again, err := c.Stage(ctx, drover.StageRequest{DeployID: "d1b", Release: v1, ConfigFiles: confFiles, Data: data(h, v1)})
	if err != nil || !again.Reused || again.Slot != s1.Slot || again.ConfigHash != s1.ConfigHash {
		t.Fatalf("restage of the same release and config: %+v %v", again, err)
	}
	s2 := deploy(t, c, h, v2, "d2")
	st, _ = c.State(ctx)
	if st.Current != s2.Slot || st.Previous != s1.Slot || st.Version != "2.0.0" || st.DeployID != "d2" || len(st.History) != 2 {
		t.Fatalf("after v2: %+v", st)
	}
	if st.PromotedFrom(s2.Slot) != s1.Slot {
		t.Errorf("history does not say v2 came from v1: %+v", st.History)
	}

	// The same release with other config goes to a slot of its own while
	// the plain slot is live.
	h2 := hostOf("h1", 9001)
	sr, err := c.Stage(ctx, drover.StageRequest{DeployID: "d3", Release: v2, ConfigFiles: confFiles, Data: data(h2, v2)})
	if err != nil || sr.Slot != v2.ID()+"+"+sr.ConfigHash[:8] || sr.ConfigHash == s2.ConfigHash {
		t.Fatalf("restage with other config: %+v %v", sr, err)
	}

	// Restore to the snapshot from before v2: current and previous both.
	before := drover.Snapshot{Current: s1.Slot, Release: v1.ID(), Version: "1.0.0", ConfigHash: s1.ConfigHash}
	st, err = c.Restore(ctx, drover.RestoreRequest{DeployID: "d2", To: before, Reason: "test"})
	if err != nil || st.Snapshot() != before {
		t.Fatalf("restore: %+v %v", st.Snapshot(), err)
	}
	if last := st.History[len(st.History)-1]; last.Action != drover.ActionRestore || last.From != s2.Slot || last.To != s1.Slot {
		t.Errorf("restore history: %+v", last)
	}
	// Restoring to a slot that is gone fails and changes nothing.
	if _, err := c.Restore(ctx, drover.RestoreRequest{To: drover.Snapshot{Current: "nope"}}); drover.ErrorCode(err) != drover.EFAILED {
		t.Errorf("restore to a missing slot: %v", err)
	}
	if _, err := c.Promote(ctx, drover.PromoteRequest{Slot: "nope"}); drover.ErrorCode(err) != drover.EFAILED {
		t.Errorf("promote of a missing slot: %v", err)
	}
	if st2, _ := c.State(ctx); st2.Snapshot() != before {
		t.Errorf("a refused call changed the host: %+v", st2.Snapshot())
	}

	// Prune keeps current (v1) and the newest other (the v2 variant), and
	// never a protected slot.
	removed, err := c.Prune(ctx, 2)
	if err != nil || !reflect.DeepEqual(removed, []string{s2.Slot}) {
		t.Fatalf("prune: %v %v (slots %v)", removed, err, f.Host("h1").Slots())
	}
	removed, err = c.Prune(ctx, 0, sr.Slot)
	if err != nil || len(removed) != 0 {
		t.Fatalf("prune keep 0 with the variant protected: %v %v", removed, err)
	}
	if _, err := c.ReadFile(ctx, "releases/"+s2.Slot+"/app.conf"); drover.ErrorCode(err) != drover.ENOTFOUND {
		t.Errorf("read of a pruned slot: %v", err)
	}
	// A first-ever deploy undone: no current at all.
	st, err = c.Restore(ctx, drover.RestoreRequest{To: drover.Snapshot{}})
	if err != nil || st.Current != "" || st.Previous != "" {
		t.Fatalf("restore to nothing: %+v %v", st, err)
	}
}

func TestDownHostIsUnreachable(t *testing.T) {
	ctx := context.Background()
	f := New(Config{})
	c, err := f.Open(ctx, hostOf("h1", 1))
	if err != nil {
		t.Fatal(err)
	}
	f.Host("h1").SetDown(true)
	if _, err := c.State(ctx); drover.ErrorCode(err) != drover.EUNREACHABLE || !strings.Contains(err.Error(), "h1") {
		t.Errorf("state of a down host: %v", err)
	}
	if _, err := f.Open(ctx, hostOf("h1", 1)); drover.ErrorCode(err) != drover.EUNREACHABLE {
		t.Errorf("open of a down host: %v", err)
	}
}

// failures runs one exec, one check and one promote on n hosts and returns
// the names of the hosts whose call failed, per operation.
func failures(t *testing.T, cfg Config, n int) map[string][]string {
	t.Helper()
	ctx := context.Background()
	f := New(cfg)
	rel := &drover.Release{Manifest: drover.Manifest{ID: "1.0-abc", Version: "1.0"}}
	out := map[string][]string{}
	for i := range n {
		h := hostOf(fmt.Sprintf("h%04d", i), 1)
		c, err := f.Open(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		name := h.Name
		if r, err := c.Exec(ctx, drover.ExecRequest{Command: "restart now"}); err != nil {
			t.Fatal(err)
		} else if r.ExitCode != 0 {
			out["restart"] = append(out["restart"], name)
		}
		if r, err := c.Check(ctx, drover.CheckSpec{Name: "port"}); err != nil {
			t.Fatal(err)
		} else if !r.OK {
			out["check"] = append(out["check"], name)
		}
		sr, err := c.Stage(ctx, drover.StageRequest{Release: rel})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Promote(ctx, drover.PromoteRequest{Slot: sr.Slot}); err != nil {
			if drover.ErrorCode(err) != drover.EFAILED || !strings.Contains(err.Error(), name) {
				t.Fatalf("promote failure: %v", err)
			}
			out["promote"] = append(out["promote"], name)
		}
	}
	return out
}

// TestFailureRatesReproducible: failures come at the configured rates, on
// the same hosts for the same seed and on others for another seed.
func TestFailureRatesReproducible(t *testing.T) {
	cfg := Config{Seed: 42, Ops: map[string]Op{
		"exec:restart": {FailRate: 0.10},
		"check:port":   {FailRate: 0.05},
		OpPromote:      {FailRate: 0.20},
	}}
	const n = 2000
	a := failures(t, cfg, n)
	for op, rate := range map[string]float64{"restart": 0.10, "check": 0.05, "promote": 0.20} {
		got := float64(len(a[op])) / n
		// 4 standard deviations of a binomial.
		if sd := 4 * sqrt(rate*(1-rate)/n); got < rate-sd || got > rate+sd {
			t.Errorf("%s failed on %.3f of hosts, want %.2f±%.3f", op, got, rate, sd)
		}
	}
	if b := failures(t, cfg, n); !reflect.DeepEqual(a, b) {
		t.Error("the same seed failed other hosts")
	}
	cfg.Seed = 43
	if c := failures(t, cfg, n); reflect.DeepEqual(a["restart"], c["restart"]) {
		t.Error("another seed failed the same hosts")
	}
	// No rate, no failure; an exec key that is not configured falls back
	// to "exec" (unset: never fails).
	if z := failures(t, Config{Seed: 42}, 200); len(z) != 0 {
		t.Errorf("failures without rates: %v", z)
	}
}

func sqrt(x float64) float64 {
	z := x
	for range 50 {
		z = (z + x/z) / 2
	}
	return z
}

// TestLatencyJitterAndScale: every call takes its latency ±jitter, the
// same for the same seed; Scale shrinks the time slept, not the record.
func TestLatencyJitterAndScale(t *testing.T) {
	ctx := context.Background()
	run := func(seed uint64) []Record {
		f := New(Config{Seed: seed, Record: true, Scale: 0.01, Ops: map[string]Op{
			"exec:restart": {Latency: 300 * time.Millisecond, Jitter: 0.2},
			OpCheck:        {Latency: 100 * time.Millisecond},
		}})
		c, _ := f.Open(ctx, hostOf("h1", 1))
		start := time.Now()
		for range 20 {
			c.Exec(ctx, drover.ExecRequest{Command: "restart"})
		}
		c.Check(ctx, drover.CheckSpec{Name: "version"})
		// 20×300ms + 100ms simulated, slept at 1%: about 61ms.
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("scaled calls took %s", took)
		}
		return f.Records()["h1"]
	}
	a := run(7)
	if len(a) != 22 || a[0].Op != OpOpen || a[21].Op != "check:version" || a[21].Sim != 100*time.Millisecond {
		t.Fatalf("records: %+v", a)
	}
	distinct := map[time.Duration]bool{}
	for _, r := range a[1:21] {
		if r.Op != "exec:restart" || r.Sim < 240*time.Millisecond || r.Sim > 360*time.Millisecond {
			t.Errorf("restart record %+v outside 300ms±20%%", r)
		}
		distinct[r.Sim] = true
	}
	if len(distinct) < 10 {
		t.Errorf("jitter gave only %d distinct latencies in 20 calls", len(distinct))
	}
	if b := run(7); !reflect.DeepEqual(a, b) {
		t.Error("the same seed drew other latencies")
	}
}

// TestTimeoutEndsCall: a call longer than its ctx (or its exec timeout)
// ends at the deadline with ETIMEOUT; a check that runs out fails.
func TestTimeoutEndsCall(t *testing.T) {
	f := New(Config{Ops: map[string]Op{OpStage: {Latency: time.Hour}, OpExec: {Latency: time.Hour}, OpCheck: {Latency: time.Hour}}})
	c, _ := f.Open(context.Background(), hostOf("h1", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	rel := &drover.Release{Manifest: drover.Manifest{ID: "1.0-abc", Version: "1.0"}}
	if _, err := c.Stage(ctx, drover.StageRequest{Release: rel}); drover.ErrorCode(err) != drover.ETIMEOUT {
		t.Errorf("stage past its deadline: %v", err)
	}
	if _, err := c.Exec(context.Background(), drover.ExecRequest{Command: "x", Timeout: 10 * time.Millisecond}); drover.ErrorCode(err) != drover.ETIMEOUT {
		t.Errorf("exec past its timeout: %v", err)
	}
	if r, err := c.Check(context.Background(), drover.CheckSpec{Name: "c", Timeout: 10 * time.Millisecond}); err != nil || r.OK {
		t.Errorf("check past its timeout: %+v %v", r, err)
	}
	if got := f.Host("h1").Slots(); len(got) != 0 {
		t.Errorf("a stage that timed out left slots %v", got)
	}
}
