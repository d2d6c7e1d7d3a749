package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"drover"
	"drover/distribute"
	"drover/distribute/relay"
	"drover/rollout"
)

// This file carries out relay distribution (distribution.mode: relay, see
// package distribute) during the stage phase. A host's stage step then
// goes:
//
//  1. when hosts below it in the tree are still to come, start its
//     relay: a short-lived HTTP server on the host, with a random key
//     (never logged) from which each child gets a one-time token. It
//     serves the bundle as the host receives it (cut-through), so a
//     child's transfer runs alongside its parent's instead of after it:
//     the tree costs about one transfer time, not one per level. It stops
//     once every host below it is done, when the deploy ends, at its
//     timeout, or when the host's own fetch fails (its children's
//     transfers are cut short and they fetch from further up).
//  2. fetch the bundle from its source in the tree — the host it hangs
//     from, once that host's relay is up — or straight from this machine
//     for a seed. The fetching host checks the sha256 and size of what it
//     received before it keeps anything. A source that failed, cannot
//     serve, or served a bundle that does not verify is skipped for the
//     next one up the tree, and at worst this machine.
//  3. stage from the fetched file, whose sha256 is checked once more
//     before it is unpacked; a copy damaged since is fetched again.
//
// Hosts enter the tree in the order the core stages them, so a host's
// source has always started staging before it; a host only waits for a
// source that has started, and each source's stage step has its own
// timeout, so a wait always ends.

// distribution is the relay state of one deploy.
type distribution struct {
	x    *executor
	tree *distribute.Tree
	// ctx is the relays' life: the deploy's, not a step's.
	ctx    context.Context
	cancel context.CancelFunc
	// timeout bounds each relay server even if nobody closes it.
	timeout time.Duration

	mu      sync.Mutex
	nodes   map[string]*relayNode
	settled int
	summed  bool
	wg      sync.WaitGroup // relay closers
}

type relayNode struct {
	started, ended bool
	// begun is closed when the host's stage step starts.
	begun chan struct{}
	// ready is closed when the host's relay is up — or when it never
	// will be.
	ready     chan struct{}
	readyOnce sync.Once
	srv       drover.RelayServer
	token     string
	// serving says its relay was asked for (once a deploy); failed that
	// it could not get a verified bundle, or served one that did not
	// verify: it relays no more.
	serving, failed bool
	// pending counts hosts below this one whose stage has not ended.
	pending int
	// got says the host holds the verified bundle, via from where
	// (distribute.Controller: this machine); fellBack that it was not
	// from its first source.
	got      bool
	via      string
	fellBack bool
}

// startDistribution plans the relay tree of a deploy over the hosts the
// plan stages, in staging order. It does nothing in direct mode.
func (x *executor) startDistribution(ctx context.Context, plan rollout.Plan) error {
	d := x.spec.Distribution
	if !d.Relay() {
		return nil
	}
	var order []string
	for _, g := range plan.Groups {
		for _, h := range g.Hosts {
			if !h.Skip {
				order = append(order, h.Name)
			}
		}
	}
	tree, err := distribute.Plan(order, d.Seeds, d.Fanout)
	if err != nil {
		return drover.Errorf(drover.EINTERNAL, "relay plan: %v", err)
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	dist := &distribution{
		x: x, tree: tree, ctx: dctx, cancel: cancel,
		// Every level of the tree may take a whole stage step.
		timeout: x.timeout(rollout.Action{Step: rollout.StepStage}) * time.Duration(tree.Depth()+1),
		nodes:   make(map[string]*relayNode, len(order)),
	}
	for _, h := range order {
		dist.nodes[h] = &relayNode{ready: make(chan struct{}), begun: make(chan struct{}), pending: tree.Descendants(h)}
	}
	x.dist = dist
	return nil
}

// announce says how the bundle will travel.
func (d *distribution) announce() {
	if d == nil || d.tree.Len() == 0 {
		return
	}
	d.x.r.emit(drover.Event{Deploy: d.x.deployID, Kind: drover.EventNotice, Message: fmt.Sprintf(
		"relay distribution: %d hosts in a tree %d deep: %d seeds from this machine, each host serving up to %d",
		d.tree.Len(), d.tree.Depth(), len(d.tree.Seeds()), d.x.spec.Distribution.Fanout)})
}

// stopDistribution stops every relay still running and waits for them.
func (x *executor) stopDistribution() {
	d := x.dist
	if d == nil {
		return
	}
	d.cancel()
	d.mu.Lock()
	var open []drover.RelayServer
	for _, n := range d.nodes {
		if n.srv != nil {
			open = append(open, n.srv)
			n.srv = nil
		}
		n.readyOnce.Do(func() { close(n.ready) })
	}
	d.mu.Unlock()
	for _, s := range open {
		s.Close()
	}
	d.wg.Wait()
	d.summary()
}

// begin marks host's stage step started and returns what ends it: a
// host whose step ended, in whatever way, is no longer waited for, and
// relays whose hosts below are all done stop.
func (d *distribution) begin(host string) (end func()) {
	if d == nil {
		return func() {}
	}
	d.mu.Lock()
	if n := d.nodes[host]; n != nil && !n.started {
		n.started = true
		close(n.begun)
	}
	d.mu.Unlock()
	return func() { d.settle(host) }
}

func (d *distribution) settle(host string) {
	d.mu.Lock()
	n := d.nodes[host]
	if n == nil || n.ended {
		// A stage step retried settles once.
		d.mu.Unlock()
		return
	}
	n.ended = true
	if !n.serving {
		// A relay still starting says when it is up (serve): the step
		// may well end first, and the hosts below must not skip it.
		n.readyOnce.Do(func() { close(n.ready) })
	}
	d.settled++
	var done []drover.RelayServer
	for _, a := range d.tree.Ancestors(host) {
		an := d.nodes[a]
		an.pending--
		if an.pending <= 0 && an.srv != nil {
			done = append(done, an.srv)
			an.srv = nil
		}
	}
	all := d.settled == len(d.nodes)
	d.mu.Unlock()
	d.closeAsync(done...)
	if all {
		d.summary()
	}
}

func (d *distribution) closeAsync(srvs ...drover.RelayServer) {
	for _, s := range srvs {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			s.Close()
		}()
	}
}

// summary says once where the hosts got the bundle from.
func (d *distribution) summary() {
	d.mu.Lock()
	if d.summed {
		d.mu.Unlock()
		return
	}
	d.summed = true
	started := false
	for _, n := range d.nodes {
		started = started || n.started
	}
	if !started {
		d.mu.Unlock()
		return
	}
	fromHere, fromPeers, fellBack, none := 0, 0, 0, 0
	for _, n := range d.nodes {
		switch {
		case !n.got && !n.started:
		case !n.got:
			none++
		case n.via == distribute.Controller:
			fromHere++
		default:
			fromPeers++
		}
		if n.fellBack {
			fellBack++
		}
	}
	d.mu.Unlock()
	msg := fmt.Sprintf("relay distribution: %d hosts got the bundle from other hosts, %d from this machine", fromPeers, fromHere)
	if fellBack > 0 {
		msg += fmt.Sprintf(", %d after their first source failed", fellBack)
	}
	if none > 0 {
		msg += fmt.Sprintf(", %d did not get it", none)
	}
	d.x.r.emit(drover.Event{Deploy: d.x.deployID, Kind: drover.EventNotice, Message: msg})
}

// stageVia stages req on host h through conn: in relay mode fetch, serve,
// stage from the fetched file; otherwise conn.Stage.
func (x *executor) stageVia(ctx context.Context, h drover.Host, conn drover.HostConn, req drover.StageRequest) (drover.StageResult, error) {
	d := x.dist
	f, ok := conn.(drover.Fetcher)
	if d == nil || !ok || !d.tree.Has(h.Name) {
		return conn.Stage(ctx, req)
	}
	d.startRelay(h.Name, f)
	if err := d.fetch(ctx, h.Name, f); err != nil {
		// Hosts fetching through it must not wait for bytes that will
		// not come.
		d.distrust(h.Name)
		return drover.StageResult{}, err
	}
	res, err := f.StageFetched(ctx, req)
	if drover.ErrorCode(err) == drover.ENOTFOUND {
		// The host's copy was damaged after it verified it (and is
		// removed): fetch it again, once.
		d.x.r.emit(drover.Event{Deploy: d.x.deployID, Kind: drover.EventNotice, Host: h.Name, Step: "stage",
			Message: "fetching the bundle again: " + err.Error()})
		if err := d.fetch(ctx, h.Name, f); err != nil {
			return drover.StageResult{}, err
		}
		res, err = f.StageFetched(ctx, req)
	}
	return res, err
}

// fetch gets the bundle onto host from the first source that delivers a
// verified one.
func (d *distribution) fetch(ctx context.Context, host string, f drover.Fetcher) error {
	rel := d.x.release
	sources := d.tree.Sources(host)
	first := true
	var skipped []string
	for i, src := range sources {
		if src == distribute.Controller {
			err := f.Fetch(ctx, drover.FetchRequest{Release: rel})
			if err == nil {
				d.fetched(host, src, !first)
			}
			return err
		}
		url, token, ok := d.wait(ctx, src)
		if ctx.Err() != nil {
			return drover.Errorf(drover.ETIMEOUT, "waiting for %s to relay the bundle: %v", src, ctx.Err())
		}
		if !ok {
			skipped = append(skipped, src)
			first = false
			d.x.r.emit(drover.Event{Deploy: d.x.deployID, Kind: drover.EventNotice, Host: host, Step: "stage",
				Message: fmt.Sprintf("%s has no bundle to relay, fetching it from %s", src, sourceName(sources[i+1]))})
			continue
		}
		// One source gets one step's time: a stalled relay must leave
		// time for the next.
		fctx, cancel := context.WithTimeout(ctx, d.x.spec.StepTimeout)
		// The relay's key stays here; the host gets a token of its own,
		// good for one fetch (distribute/relay).
		err := f.Fetch(fctx, drover.FetchRequest{Release: rel, From: url, Token: relay.ChildToken(token, host)})
		cancel()
		if err == nil {
			d.fetched(host, src, !first)
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		first = false
		d.x.r.emit(drover.Event{Deploy: d.x.deployID, Kind: drover.EventNotice, Host: host, Step: "stage",
			Message: fmt.Sprintf("fetching the bundle from %s failed, fetching it from %s: %v", src, sourceName(sources[i+1]), err)})
		if drover.ErrorCode(err) == drover.EINVALID {
			// It serves a bundle that does not verify: nobody else
			// should fetch it from there either.
			d.distrust(src)
		}
	}
	return drover.Errorf(drover.EINTERNAL, "no source for the bundle (skipped %s)", strings.Join(skipped, ", "))
}

func sourceName(src string) string {
	if src == distribute.Controller {
		return "this machine"
	}
	return src
}

// startGrace is how long a host waits for its source's stage step to
// start. The core starts hosts in the order the tree was planned in, so a
// source has always been started — at worst in the same round, its
// goroutine not yet running; the bound only keeps a host from waiting on
// a source that will never stage.
const startGrace = 5 * time.Second

// wait waits until src's relay is up (src need not hold the bundle yet:
// it passes it on as it arrives), and returns it. A source that does not
// start staging, or will not serve, is not waited for.
func (d *distribution) wait(ctx context.Context, src string) (url, token string, ok bool) {
	n := d.nodes[src]
	if n == nil {
		return "", "", false
	}
	t := time.NewTimer(startGrace)
	defer t.Stop()
	select {
	case <-n.begun:
	case <-t.C:
		return "", "", false
	case <-ctx.Done():
		return "", "", false
	}
	select {
	case <-n.ready:
	case <-ctx.Done():
		return "", "", false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if n.srv == nil {
		return "", "", false
	}
	return n.srv.URL(), n.token, true
}

func (d *distribution) fetched(host, via string, fellBack bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.nodes[host]; n != nil {
		n.got, n.via, n.fellBack = true, via, fellBack
	}
}

// startRelay starts host's relay, once, when hosts below it are still to
// come: in the background, alongside the host's own fetch, since it
// serves the bundle as it arrives. A host with nobody below it is ready
// at once (it will never serve).
func (d *distribution) startRelay(host string, f drover.Fetcher) {
	d.mu.Lock()
	n := d.nodes[host]
	if n == nil {
		d.mu.Unlock()
		return
	}
	if serving := n.serving; serving || n.failed || n.pending <= 0 || d.ctx.Err() != nil {
		d.mu.Unlock()
		if !serving {
			n.readyOnce.Do(func() { close(n.ready) })
		}
		return
	}
	n.serving = true
	// Under d.mu, before stopDistribution cancels and waits: it waits
	// for this too.
	d.wg.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.wg.Done()
		d.serve(host, n, f)
	}()
}

// serve starts host's relay, then lets the hosts below it fetch. A relay
// that cannot start is a notice: they fetch from further up.
func (d *distribution) serve(host string, n *relayNode, f drover.Fetcher) {
	defer n.readyOnce.Do(func() { close(n.ready) })
	token := relay.NewToken()
	srv, err := f.Relay(d.ctx, drover.RelayRequest{
		Release: d.x.release, Token: token, Timeout: d.timeout,
		PortMin: d.x.spec.Distribution.PortMin, PortMax: d.x.spec.Distribution.PortMax,
	})
	if err != nil {
		d.x.r.emit(drover.Event{Deploy: d.x.deployID, Kind: drover.EventNotice, Host: host, Step: "stage",
			Message: "cannot relay the bundle to other hosts, they fetch it from further up: " + err.Error()})
		return
	}
	d.mu.Lock()
	if n.pending <= 0 || n.failed || d.ctx.Err() != nil {
		// Everyone below gave up waiting, its fetch failed, or the
		// deploy ended.
		d.mu.Unlock()
		srv.Close()
		return
	}
	n.srv, n.token = srv, token
	d.mu.Unlock()
}

// distrust stops src's relay for good: it served a bundle that did not
// verify, or could not get one itself. Transfers from it in progress are
// cut short; the hosts below fetch from further up.
func (d *distribution) distrust(src string) {
	d.mu.Lock()
	n := d.nodes[src]
	var srv drover.RelayServer
	if n != nil {
		srv, n.srv = n.srv, nil
		n.failed = true
	}
	d.mu.Unlock()
	if srv != nil {
		d.closeAsync(srv)
	}
}
