package drover

import (
	"context"
	"time"
)

// Distribution modes (drover.yaml distribution.mode).
const (
	// DistributionDirect pushes the bundle from this machine to every
	// host (the default).
	DistributionDirect = "direct"
	// DistributionRelay pushes it to a few seed hosts; every host that
	// holds the verified bundle then serves it to the next ones, so the
	// time to reach N hosts grows with log N.
	DistributionRelay = "relay"

	DefaultRelayFanout = 4
)

// Distribution is drover.yaml's distribution block.
type Distribution struct {
	// Mode is DistributionDirect ("" means the same) or DistributionRelay.
	Mode string
	// Seeds is how many hosts receive the bundle from this machine;
	// Fanout how many hosts each relay host serves.
	Seeds  int
	Fanout int
	// PortMin..PortMax is where relay servers listen on the hosts; 0..0
	// lets each host pick a free port.
	PortMin, PortMax int
}

// Relay reports whether bundles are relayed host to host.
func (d Distribution) Relay() bool { return d.Mode == DistributionRelay }

// Fetcher is implemented by HostConns that can take part in relay
// distribution. Fetch and StageFetched split Stage in two: the bundle
// arrives and is verified first, whole, before anything is unpacked, and
// stays on the host so that it can Relay it to other hosts — while it
// arrives, too.
type Fetcher interface {
	// Fetch puts req.Release's bundle into the host's bundle cache: from
	// another host's relay at req.From, or streamed from this machine
	// when From is "". The host checks its sha256 and size before it
	// keeps it; a bundle that does not match is removed and the error is
	// EINVALID. A bundle already in the cache is kept (and not fetched).
	Fetch(ctx context.Context, req FetchRequest) error
	// StageFetched checks the cached bundle's sha256 again, just before
	// unpacking it, and stages it like Stage. A cached copy missing, or damaged since it was fetched
	// (then removed), is ENOTFOUND: fetch it again.
	StageFetched(ctx context.Context, req StageRequest) (StageResult, error)
	// Relay serves the host's bundle over HTTP to hosts that present
	// req.Token, until Close, ctx ends or req.Timeout passes. It may start
	// before the host has the bundle: it passes on the bytes as the
	// host's Fetch writes them, and cuts a transfer short when that
	// fetch fails (the fetching host verifies the sha256 itself).
	Relay(ctx context.Context, req RelayRequest) (RelayServer, error)
}

// FetchRequest asks a host to fetch a release bundle.
type FetchRequest struct {
	Release *Release `json:"release"`
	// From is a relay's URL; "" streams the bundle from this machine.
	From string `json:"from,omitempty"`
	// Token authenticates to the relay: relay.ChildToken of the relay's
	// key and this host's name, taken once. A secret: never logged,
	// never in an error.
	Token string `json:"token,omitempty"`
}

// RelayRequest asks a host to serve its cached bundle.
type RelayRequest struct {
	Release *Release `json:"release"`
	// Token is the relay's key: fetching hosts present a token derived
	// from it, each once (a secret, see FetchRequest.Token).
	Token string `json:"token"`
	// PortMin..PortMax bound the listening port; 0..0 is any free port.
	PortMin int `json:"port_min,omitempty"`
	PortMax int `json:"port_max,omitempty"`
	// Timeout stops the server even if nobody closes it.
	Timeout time.Duration `json:"timeout"`
}

// RelayServer is a running relay on a host.
type RelayServer interface {
	// URL is where other hosts fetch the bundle.
	URL() string
	// Close stops the server and waits until it has stopped.
	Close() error
}
