package ssh

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ssh.connect_parallelism bounds how many hosts connect at once: a fleet
// of hundreds opening every connection together floods sshd's MaxStartups
// (connections dropped) and the controller's own descriptors.
func TestConnectParallelismHonoured(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.ConnectParallelism = 2
	tr := f.transport(cfg)
	var inFlight, peak atomic.Int32
	tr.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		// Long enough that unbounded dials would overlap.
		time.Sleep(100 * time.Millisecond)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Go(func() {
			c, err := tr.Open(ctxT(t), f.host(fmt.Sprintf("h%02d", i+1), f.srv))
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := peak.Load(); got > 2 {
		t.Fatalf("%d hosts connected at once with connect_parallelism 2, want at most 2", got)
	}
}

// The binary hosts get is hashed while the first connection is made, not
// after it, when the first probe asks for its sum: a probe waited for
// those 20-50 ms of hashing after its handshake. Dial here waits until
// the binary is hashed, before any handshake or probe has asked.
func TestBinaryHashedWhileConnecting(t *testing.T) {
	f := newFixture(t)
	tr := f.transport(f.config())
	self, err := tr.selfPath()
	if err != nil {
		t.Fatal(err)
	}
	var hashed atomic.Bool
	tr.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			tr.mu.Lock()
			b := tr.bins[self]
			tr.mu.Unlock()
			if b != nil && b.loaded.Load() {
				hashed.Store(true)
				break
			}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c, err := tr.Open(ctxT(t), f.host("h01", f.srv))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !hashed.Load() {
		t.Fatal("the binary for hosts was not hashed while the first connection was made")
	}
}
