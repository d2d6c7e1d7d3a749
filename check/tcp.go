package check

import (
	"context"
	"fmt"
	"net"
	"time"
)

// tcpProbe passes when a TCP connection to address is accepted: the
// service is listening again after its restart.
func tcpProbe(address string) func(context.Context, time.Duration) (string, error) {
	return func(ctx context.Context, budget time.Duration) (string, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", address)
		if err != nil {
			return fmt.Sprintf("tcp %s: %s", address, netReason(err, budget)), nil
		}
		conn.Close()
		return "", nil
	}
}
