package local

import (
	"context"
	"os"

	"drover"
	"drover/distribute/relay"
	"drover/hostops"
)

// Relay distribution on a local host (drover.Fetcher): the host's bundle
// cache is under its deploy root, fetches are HTTP requests made from this
// process, and a relay is an HTTP server in this process on 127.0.0.1
// serving the host's copy as it arrives — the same code `drover host` runs on an
// SSH host.

var _ drover.Fetcher = (*conn)(nil)

// Fetch puts the bundle into the host's cache: copied from the bundle file
// when req.From is "", else fetched from the relay at req.From.
func (c *conn) Fetch(ctx context.Context, req drover.FetchRequest) error {
	if err := c.ready(); err != nil {
		return err
	}
	if req.Release == nil {
		return c.wrap(drover.Errorf(drover.EINVALID, "fetch: no release in the request"))
	}
	rel := req.Release
	if req.From != "" {
		_, err := relay.Fetch(ctx, c.root, req.From, req.Token, rel.BundleSHA256, rel.BundleSize)
		return c.wrap(err)
	}
	f, err := os.Open(rel.BundlePath)
	if err != nil {
		return c.wrap(drover.Errorf(drover.EINVALID, "fetch: bundle %s: %v", rel.BundlePath, err))
	}
	defer f.Close()
	_, err = relay.Receive(ctx, c.root, f, rel.BundleSHA256, rel.BundleSize, "the controller")
	return c.wrap(err)
}

// StageFetched stages the host's cached bundle.
func (c *conn) StageFetched(ctx context.Context, req drover.StageRequest) (drover.StageResult, error) {
	if err := c.ready(); err != nil {
		return drover.StageResult{}, err
	}
	if req.Release == nil {
		return drover.StageResult{}, c.wrap(drover.Errorf(drover.EINVALID, "stage: no release in the request"))
	}
	p, err := relay.Verified(c.root, req.Release.BundleSHA256, req.Release.BundleSize)
	if err != nil {
		return drover.StageResult{}, c.wrap(err)
	}
	l, err := c.ops.Lock(ctx, hostops.Holder{DeployID: req.DeployID, Step: "stage"})
	if err != nil {
		return drover.StageResult{}, c.wrap(err)
	}
	defer l.Unlock()
	res, err := c.ops.StageFile(ctx, p, relay.Checked(req))
	return res, c.wrap(err)
}

// Relay serves the host's bundle on 127.0.0.1, as it arrives and then
// from the cache (relay.Serve).
func (c *conn) Relay(ctx context.Context, req drover.RelayRequest) (drover.RelayServer, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	if req.Release == nil {
		return nil, c.wrap(drover.Errorf(drover.EINVALID, "relay: no release in the request"))
	}
	ln, err := relay.Listen("127.0.0.1", req.PortMin, req.PortMax)
	if err != nil {
		return nil, c.wrap(err)
	}
	srv, err := relay.Serve(ctx, ln, c.root, req.Release.BundleSHA256, req.Release.BundleSize, req.Token, req.Timeout)
	if err != nil {
		return nil, c.wrap(err)
	}
	return srv, nil
}
