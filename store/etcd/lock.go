package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"drover"
)

// Lock takes the deploy lock of key: P/locks/K, created only when absent
// and bound to a lease this process keeps alive, with the holder also
// recorded in P/holders/K. Both are written in one transaction that also
// reads the previous holder record: when the lock key was absent but a
// holder is recorded, that holder died without releasing (its lease
// expired), so Lock succeeds and TakenOver returns it — the caller warns
// and recovers its deploy, which Unfinished still lists.
//
// When a live holder has the lock (this process included), Lock returns
// ELOCKED naming it. Unset owner fields are filled in: PID, Machine (host
// name), User and Since (s.Now()).
func (s *Store) Lock(ctx context.Context, key string, owner drover.LockOwner) (drover.Lock, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	s.fillOwner(&owner)
	val, err := json.Marshal(owner)
	if err != nil {
		return nil, &drover.Error{Code: drover.EINTERNAL, Message: "store: encode lock owner", Err: err}
	}
	var lease clientv3.LeaseID
	err = s.call(ctx, "grant lease for lock of "+key, func(ctx context.Context) error {
		g, err := s.c.Grant(ctx, s.ttlSeconds())
		if err == nil {
			lease = g.ID
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// The lease is ours until it is bound to the lock: give it back on
	// every way out but success.
	revoke := func() {
		rctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		s.c.Revoke(rctx, lease)
	}
	lk, hk := s.lockKey(key), s.holderKey(key)
	var resp *clientv3.TxnResponse
	err = s.call(ctx, "take lock of "+key, func(ctx context.Context) (err error) {
		resp, err = s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(lk), "=", 0)).
			Then(clientv3.OpGet(hk), clientv3.OpPut(lk, string(val), clientv3.WithLease(lease)), clientv3.OpPut(hk, string(val))).
			Else(clientv3.OpGet(lk)).
			Commit()
		return err
	})
	if err != nil {
		revoke()
		return nil, err
	}
	if !resp.Succeeded {
		revoke()
		var holder *drover.LockOwner
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			holder = decodeOwner(kvs[0].Value)
		}
		return nil, drover.LockedError(key, holder)
	}
	var prev *drover.LockOwner
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
		prev = decodeOwner(kvs[0].Value)
	}
	// The session keeps the lease alive from here until Release (or until
	// this process dies, which is the point).
	sess, err := concurrency.NewSession(s.c, concurrency.WithLease(lease), concurrency.WithTTL(int(s.ttlSeconds())))
	if err != nil {
		s.releaseKeys(lk, hk, lease)
		revoke()
		return nil, s.call(ctx, "keep lock of "+key+" alive", func(context.Context) error { return err })
	}
	return &lock{s: s, key: key, owner: owner, takenOver: prev, sess: sess}, nil
}

func decodeOwner(b []byte) *drover.LockOwner {
	var o drover.LockOwner
	if json.Unmarshal(b, &o) != nil {
		return nil
	}
	return &o
}

// fillOwner sets the owner fields the caller left unset.
func (s *Store) fillOwner(o *drover.LockOwner) {
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if o.Machine == "" {
		o.Machine, _ = os.Hostname()
	}
	if o.User == "" {
		if u, err := user.Current(); err == nil {
			o.User = u.Username
		}
	}
	if o.Since.IsZero() {
		o.Since = s.now()
	}
}

// LockHolder implements drover.HistoryReader: the recorded holder of key's
// lock, alive or dead; nil after a clean release.
func (s *Store) LockHolder(ctx context.Context, key string) (*drover.LockOwner, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var resp *clientv3.GetResponse
	err := s.call(ctx, "read lock holder of "+key, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.holderKey(key))
		return err
	})
	if err != nil || len(resp.Kvs) == 0 {
		return nil, err
	}
	return decodeOwner(resp.Kvs[0].Value), nil
}

// releaseKeys deletes the lock and holder keys if the lock is still bound
// to lease: a lock lost to an expired lease and taken by another process
// is theirs, record and all.
func (s *Store) releaseKeys(lk, hk string, lease clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	_, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(lk), "=", lease)).
		Then(clientv3.OpDelete(hk), clientv3.OpDelete(lk)).
		Commit()
	return err
}

// lock is a held deploy lock: a key bound to a lease kept alive by sess.
type lock struct {
	s         *Store
	key       string
	owner     drover.LockOwner
	takenOver *drover.LockOwner

	mu   sync.Mutex
	sess *concurrency.Session // nil once released
}

func (l *lock) Owner() drover.LockOwner { return l.owner }

func (l *lock) TakenOver() *drover.LockOwner {
	if l.takenOver == nil {
		return nil
	}
	o := *l.takenOver
	return &o
}

// Lost is closed when the lock's lease can no longer be kept alive (etcd
// unreachable for longer than the TTL, or the lease revoked): from then on
// another process may take the lock. It is also closed by Release.
func (l *lock) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return l.sess.Done()
}

// Release deletes the holder record and the lock key (only if still ours),
// then revokes the lease. The holder record goes with the lock key in one
// transaction: a free lock with a holder recorded means "died holding
// it" to the next Lock. Safe to call more than once; it runs even when
// the caller's context was cancelled, with a bound of its own.
func (l *lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess == nil {
		return nil
	}
	sess := l.sess
	l.sess = nil
	err := l.s.releaseKeys(l.s.lockKey(l.key), l.s.holderKey(l.key), sess.Lease())
	// A lease that expired already (the lock was lost) has nothing left
	// to revoke.
	if cerr := sess.Close(); err == nil && cerr != nil && !errors.Is(cerr, rpctypes.ErrLeaseNotFound) {
		err = cerr
	}
	if err != nil {
		return &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: release lock of " + l.key, Err: err,
			Hint: "the lock frees itself when its lease expires (store.etcd.lease_ttl)"}
	}
	return nil
}
