package etcd

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/v3/concurrency"

	"drover"
)

// Elector is one candidate in a leader election among processes sharing
// the store (drover server replicas): etcd's election recipe
// (concurrency.Election) under P/election/NAME, on a lease of the store's
// LeaseTTL kept alive by this process. When the leader dies, its lease
// expires within LeaseTTL and the next candidate in line becomes leader.
type Elector struct {
	s    *Store
	name string
	sess *concurrency.Session
	e    *concurrency.Election
}

// Elector joins the election name. Close it to leave.
func (s *Store) Elector(ctx context.Context, name string) (*Elector, error) {
	if err := checkID(name); err != nil {
		return nil, err
	}
	var sess *concurrency.Session
	err := s.call(ctx, "join election "+name, func(ctx context.Context) (err error) {
		g, err := s.c.Grant(ctx, s.ttlSeconds())
		if err != nil {
			return err
		}
		sess, err = concurrency.NewSession(s.c, concurrency.WithLease(g.ID), concurrency.WithTTL(int(s.ttlSeconds())))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Elector{s: s, name: name, sess: sess, e: concurrency.NewElection(sess, s.prefix+"/election/"+name)}, nil
}

// Campaign blocks until this candidate leads (nil), ctx ends, or its lease
// is lost. value is what Leader reports while it leads: an address other
// replicas send clients to.
func (e *Elector) Campaign(ctx context.Context, value string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.sess.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := e.e.Campaign(ctx, value); err != nil {
		select {
		case <-e.sess.Done():
			return &drover.Error{Code: drover.EUNREACHABLE, Message: "election " + e.name + ": lease lost while campaigning", Err: err,
				Hint: "check that etcd is running and reachable"}
		default:
		}
		return err
	}
	return nil
}

// Leader returns the value of the current leader; ENOTFOUND when there is
// none.
func (e *Elector) Leader(ctx context.Context) (string, error) {
	var val string
	err := e.s.call(ctx, "read leader of "+e.name, func(ctx context.Context) error {
		resp, err := e.e.Leader(ctx)
		if errors.Is(err, concurrency.ErrElectionNoLeader) {
			return drover.Errorf(drover.ENOTFOUND, "election %s has no leader", e.name)
		}
		if err != nil {
			return err
		}
		val = string(resp.Kvs[0].Value)
		return nil
	})
	return val, err
}

// Observe reports the leader's value each time it changes, until ctx
// ends.
func (e *Elector) Observe(ctx context.Context) <-chan string {
	out := make(chan string)
	in := e.e.Observe(ctx)
	go func() {
		defer close(out)
		for resp := range in {
			if len(resp.Kvs) == 0 {
				continue
			}
			select {
			case out <- string(resp.Kvs[0].Value):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// Resign gives up leadership (a no-op when not leading); the candidate
// may campaign again.
func (e *Elector) Resign(ctx context.Context) error {
	return e.s.call(ctx, "resign from "+e.name, e.e.Resign)
}

// Done is closed when the candidate's lease is lost: a leader that sees it
// leads no more.
func (e *Elector) Done() <-chan struct{} { return e.sess.Done() }

// Close leaves the election, revoking the lease: a leader's successor is
// elected at once instead of after LeaseTTL.
func (e *Elector) Close() error {
	if err := e.sess.Close(); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) && !errors.Is(err, context.Canceled) {
		return &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: leave election " + e.name, Err: err}
	}
	return nil
}
