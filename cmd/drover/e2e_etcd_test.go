package main

// End-to-end: three `drover server` replicas sharing a real etcd (store:
// {etcd: ...}) in front of one local fleet. Two deploy requests at once,
// to two replicas: exactly one runs. The replica running it is killed
// with SIGKILL mid-way: another replica becomes leader, finds the dead
// deploy in the journal in etcd once its lock's lease expires, and rolls
// it back — every host back on the old release and back in rotation, one
// history that every replica reports alike.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"drover"
	"drover/internal/etcdtest"
	"drover/internal/freeport"
	"drover/internal/localfleet"
)

// syncBuffer is a replica's stderr, read while it is written.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type replica struct {
	url    string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
}

func (r *replica) leads() bool { return strings.Contains(r.stderr.String(), r.url+" leads") }

func freeAddr(t *testing.T) string {
	t.Helper()
	ports, err := freeport.Take(1)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0])
}

func startReplica(t *testing.T, config, tokens string) *replica {
	t.Helper()
	addr := freeAddr(t)
	r := &replica{url: "http://" + addr, stderr: &syncBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(droverBin, "server", "-c", config, "--tokens", tokens, "--listen", addr, "--releases-dir", fleetReleases(t, config))
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("replica %s stderr:\n%s", r.url, r.stderr)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(r.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return r
		}
		select {
		case <-r.exited:
			t.Fatalf("replica exited: %s", r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not serving: %s", r.url, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func apiCall(t *testing.T, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

func TestE2EEtcdReplicasFailover(t *testing.T) {
	// Not parallel: beside the package's other tests on a busy machine,
	// a replica that does not lead answered the concurrent deploys 503
	// (not ready to forward yet) instead of one 409.
	etcdSrv := etcdtest.Start(t)
	const ttl = 2 * time.Second
	dir := t.TempDir()
	// Depool and repool leave a mark on the host while it is out of
	// rotation; before_restart slows each host down so the deploy can be
	// killed half-way.
	f, err := localfleet.New(localfleet.Options{
		Dir: dir, Hosts: 4,
		Groups: "groups:\n  - {name: canary, hosts: [h01], batch: 1, failure_limit: 0}\n  - {name: default, hosts: [\"h*\"], batch: 1, failure_limit: 0}\n",
		ExtraHooks: `depool: "touch {{.Host.Address}}/out-of-rotation"
repool: "rm -f {{.Host.Address}}/out-of-rotation"
before_restart: "sleep 1"`,
		ExtraYAML: fmt.Sprintf("store:\n  etcd:\n    endpoints: [%q]\n    prefix: /e2e\n    lease_ttl: %s\n", etcdSrv.Endpoint, ttl),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	mustExit(t, deploy(t, f, writeRelease(t, f, "1.0.0", true)), 0)
	v2 := writeRelease(t, f, "2.0.0", true)

	tokens := filepath.Join(dir, "tokens.json")
	r := runDrover(t, "server", "token", "create", "--name", "ops", "--role", "deployer", "--tokens", tokens)
	mustExit(t, r, 0)
	token := strings.TrimSpace(r.stdout)

	reps := []*replica{startReplica(t, f.Config, tokens), startReplica(t, f.Config, tokens), startReplica(t, f.Config, tokens)}
	var leader *replica
	for deadline := time.Now().Add(30 * time.Second); leader == nil; {
		for _, rp := range reps {
			if rp.leads() {
				leader = rp
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no replica leads")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var others []*replica
	for _, rp := range reps {
		if rp != leader {
			others = append(others, rp)
		}
	}

	// A replica that does not lead forwards changes once its own
	// candidacy (an etcd session) is up; until then it answers 503 and
	// Retry-After, as documented. Wait for that on each, through a
	// request that is forwarded and changes nothing: a deploy nobody has.
	for _, rp := range others {
		for deadline := time.Now().Add(30 * time.Second); ; {
			req, _ := http.NewRequest("GET", rp.url+"/api/v1/deploys/d-none", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusNotFound && resp.Header.Get("X-Drover-Leader") == leader.url {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s never forwarded to the leader %s: %v", rp.url, leader.url, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Two deploy requests at once, each to a replica that does not lead.
	codes := make(chan int, 2)
	ids := make(chan string, 2)
	for _, rp := range others {
		go func() {
			var st struct{ ID string }
			codes <- apiCall(t, "POST", rp.url+"/api/v1/services/hello/deploys", token, map[string]any{"release": v2}, &st)
			ids <- st.ID
		}()
	}
	got := map[int]int{}
	id := ""
	for range 2 {
		got[<-codes]++
		if s := <-ids; s != "" {
			id = s
		}
	}
	if got[http.StatusAccepted] != 1 || got[http.StatusConflict] != 1 || id == "" {
		t.Fatalf("two concurrent deploys: statuses %v (deploy %q), want one 202 and one 409", got, id)
	}

	// Kill the leader, which runs the deploy, once the canary is done and
	// the default group is switching.
	waitStep(t, leader, token, "switch", "h02")
	if _, err := os.Stat(filepath.Join(f.Hosts[1].Dir, "out-of-rotation")); err != nil {
		t.Fatalf("h02 is switching but not depooled: %v", err)
	}
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-leader.exited
	killed := time.Now()

	// A surviving replica leads and rolls the dead deploy back.
	var hist []drover.DeployRecord
	for deadline := killed.Add(60 * time.Second); ; {
		hist = nil
		apiCall(t, "GET", others[0].url+"/api/v1/services/hello/deploys", token, nil, &hist)
		if len(hist) >= 3 && hist[1].ID == id && hist[1].Outcome == drover.OutcomeInterrupted && hist[0].Kind == drover.KindRecover && hist[0].Outcome != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead leader's deploy %s was not recovered: %+v", id, hist)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rec := hist[0]
	t.Logf("recovery %s began %s after the leader died (lease TTL %s), outcome %s", rec.ID, rec.Started.Sub(killed).Round(10*time.Millisecond), ttl, rec.Outcome)
	// The lock's lease expires within the TTL, plus up to one election
	// timeout of etcd's and one recovery round of the new leader's.
	if wait := rec.Started.Sub(killed); wait > ttl+3*time.Second {
		t.Errorf("recovery began %s after the leader died; want within the lease TTL (%s) and a round", wait, ttl)
	}
	if rec.Outcome != drover.OutcomeSucceeded || !strings.HasPrefix(hist[1].Summary, "interrupted; recovered by "+rec.ID) {
		t.Errorf("recovery %+v; dead deploy %+v", rec, hist[1])
	}
	wantServing(t, f, "1.0.0", nil)
	for _, h := range f.Hosts {
		if _, err := os.Stat(filepath.Join(h.Dir, "out-of-rotation")); err == nil {
			t.Errorf("%s left out of rotation", h.Name)
		}
	}
	// One history: both survivors report the same records.
	var other []drover.DeployRecord
	apiCall(t, "GET", others[1].url+"/api/v1/services/hello/deploys", token, nil, &other)
	a, _ := json.Marshal(hist)
	b, _ := json.Marshal(other)
	if !bytes.Equal(a, b) {
		t.Errorf("replicas disagree on the history:\n%s\n%s", a, b)
	}
	if len(hist) != 3 || hist[2].Version != "1.0.0" || hist[2].Outcome != drover.OutcomeSucceeded {
		t.Errorf("history: %+v", hist)
	}
}

// waitStep follows the replica's event stream until host starts step.
func waitStep(t *testing.T, rp *replica, token, step, host string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", rp.url+"/api/v1/events?service=hello", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e struct{ Kind, Step, Host string }
		if json.Unmarshal([]byte(data), &e) == nil && e.Kind == drover.EventStepStart && e.Step == step && e.Host == host {
			return
		}
	}
	t.Fatalf("no %s of %s in the event stream (%v)", step, host, sc.Err())
}
