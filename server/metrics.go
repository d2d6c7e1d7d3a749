package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"drover"
)

// This file is /metrics: what a Prometheus scrapes from the server, on a
// registry of its own (no process-wide default registry: two servers in
// one test process must not share counters).

type metrics struct {
	reg          *prometheus.Registry
	deploys      *prometheus.CounterVec
	steps        *prometheus.HistogramVec
	hosts        *prometheus.GaugeVec
	running      *prometheus.GaugeVec
	authFailures prometheus.Counter
}

// hostStates are the values of drover_hosts' state label.
var hostStates = []string{"running", "succeeded", "failed", "restored", "idle"}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_deploys_total", Help: "Deploys, rollbacks and recoveries run by this server, by service and outcome.",
		}, []string{"service", "outcome"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "drover_step_duration_seconds", Help: "How long host steps took, by step.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600},
		}, []string{"step"}),
		hosts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drover_hosts", Help: "Hosts of each service by state in the latest run: running, succeeded, failed, restored or idle.",
		}, []string{"service", "state"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drover_deploy_running", Help: "1 while a deploy of the service runs in this server.",
		}, []string{"service"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drover_server_auth_failures_total", Help: "Requests refused for a missing or unknown token.",
		}),
	}
	m.reg.MustRegister(m.deploys, m.steps, m.hosts, m.running, m.authFailures)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// initService makes every series of a service exist from the start, so
// a dashboard's query has zeroes rather than nothing.
func (m *metrics) initService(key string, hosts int) {
	m.running.WithLabelValues(key).Set(0)
	for _, st := range hostStates {
		m.hosts.WithLabelValues(key, st).Set(0)
	}
	m.hosts.WithLabelValues(key, "idle").Set(float64(hosts))
}

// hostTracker follows one run's events to keep drover_hosts of its
// service current. Only the run's goroutine calls it (through the sink).
type hostTracker struct {
	m       *metrics
	service string
	all     int
	state   map[string]string
}

func (t *hostTracker) observe(e drover.Event) {
	switch e.Kind {
	case drover.EventDeployStart:
		t.state = map[string]string{}
		t.publish()
	case drover.EventStepStart:
		if t.state[e.Host] == "" || t.state[e.Host] == "succeeded" {
			t.set(e.Host, "running")
		}
	case drover.EventStepDone:
		if e.Step != "" && e.Elapsed > 0 {
			t.m.steps.WithLabelValues(e.Step).Observe(e.Elapsed.Seconds())
		}
	case drover.EventHostDone, drover.EventHostRolledBack:
		t.set(e.Host, "succeeded")
	case drover.EventHostFailed, drover.EventHostStuck:
		t.set(e.Host, "failed")
	case drover.EventHostRestored:
		t.set(e.Host, "restored")
	}
}

func (t *hostTracker) set(host, st string) {
	if host == "" || t.state == nil {
		return
	}
	t.state[host] = st
	t.publish()
}

// publish sets the gauges from state: hosts not yet touched are idle.
func (t *hostTracker) publish() {
	counts := map[string]int{}
	for _, v := range t.state {
		counts[v]++
	}
	idle := t.all - len(t.state)
	for _, s := range hostStates {
		n := counts[s]
		if s == "idle" {
			n = max(idle, 0)
		}
		t.m.hosts.WithLabelValues(t.service, s).Set(float64(n))
	}
}
