package rollout

import (
	"fmt"
	"testing"
	"time"
)

// benchPlan is a canary of 1 and a default group of n-1 in batches of 5%.
func benchPlan(n int) Plan {
	p := Plan{Mode: ModeDeploy, StageParallelism: 64}
	p.Groups = append(p.Groups, GroupPlan{Name: "canary", Batch: 1, Hosts: []HostPlan{{Name: "h0", From: "v1"}}})
	g := GroupPlan{Name: "default", Batch: max(1, n/20), FailureLimit: n / 10}
	for i := 1; i < n; i++ {
		g.Hosts = append(g.Hosts, HostPlan{Name: fmt.Sprintf("h%d", i), From: "v1"})
	}
	p.Groups = append(p.Groups, g)
	return p
}

// runAll drives a Machine to the end, answering every action ok.
func runAll(b *testing.B, p Plan) {
	m, err := New(p)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(0, 0)
	var pending []Action
	for !m.Done() {
		rd := m.Ready(now)
		pending = append(pending, rd.Actions...)
		if len(pending) == 0 {
			if m.Done() {
				break
			}
			b.Fatal("stalled")
		}
		a := pending[0]
		pending = pending[1:]
		if err := m.Report(now, Result{Host: a.Host, Step: a.Step, Gate: a.Gate, Outcome: OK}); err != nil {
			b.Fatal(err)
		}
	}
	if v := m.Outcome().Verdict; v != Succeeded {
		b.Fatalf("verdict %s", v)
	}
}

// BenchmarkMachine measures the core's own cost of deciding a whole deploy
// (stage, then 5 steps per host), so it can be compared with the time the
// hosts themselves take: it should be negligible at any fleet size.
func BenchmarkMachine(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		p := benchPlan(n)
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				runAll(b, p)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n)/6, "ns/step")
		})
	}
}
