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
