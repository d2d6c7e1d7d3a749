package etcdtest_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"drover/internal/etcdtest"
)

// Debian's etcd-server is older (3.4) than the client drover builds with
// (3.7): this shows the parts drover uses — transactions, leases and
// elections — work across the two.
func TestClientSpeaksToServer(t *testing.T) {
	s := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	resp, err := c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("/k"), "=", 0)).
		Then(clientv3.OpPut("/k", "v1")).Commit()
	if err != nil || !resp.Succeeded {
		t.Fatalf("txn: %+v, %v", resp, err)
	}
	g, err := c.Get(ctx, "/k")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v1" {
		t.Fatalf("get: %+v, %v", g, err)
	}

	s1, err := concurrency.NewSession(c, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/leased", "x", clientv3.WithLease(s1.Lease())); err != nil {
		t.Fatal(err)
	}
	e1 := concurrency.NewElection(s1, "/election")
	if err := e1.Campaign(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	s2, err := concurrency.NewSession(c, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	e2 := concurrency.NewElection(s2, "/election")
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "two") }()
	select {
	case err := <-won:
		t.Fatalf("second campaign won while the first leads: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// Revoking the first session's lease ends its leadership and its key.
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-won; err != nil {
		t.Fatalf("second campaign: %v", err)
	}
	l, err := e2.Leader(ctx)
	if err != nil || string(l.Kvs[0].Value) != "two" {
		t.Fatalf("leader: %+v, %v", l, err)
	}
	if g, err := c.Get(ctx, "/leased"); err != nil || len(g.Kvs) != 0 {
		t.Fatalf("leased key after revoke: %+v, %v", g, err)
	}
}

// A 3-member cluster keeps serving with its leader killed, and Leader
// finds the new one.
func TestCluster(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Put(ctx, "/k", "1"); err != nil {
		t.Fatal(err)
	}
	lead, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Members[lead].Kill()
	start := time.Now()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cl.Put(pctx, "/k", "2")
		pcancel()
		if err == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no write %s after the leader was killed: %v", time.Since(start), err)
		}
	}
	t.Logf("writes again %s after the leader was killed", time.Since(start).Round(time.Millisecond))
	next, err := c.Leader(ctx)
	if err != nil || next == lead {
		t.Fatalf("leader after killing m%d: %d, %v", lead, next, err)
	}
}
