package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

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
	// The lease lives TTL from when etcd granted it, which is after this:
	// a deadline counted from here is never later than etcd's.
	granted := time.Now()
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
	// The keeper refreshes the lease from here until Release (or until
	// this process dies, which is the point).
	l := &lock{s: s, key: key, owner: owner, takenOver: prev, lease: lease,
		ttl: time.Duration(s.ttlSeconds()) * time.Second, deadline: granted.Add(time.Duration(s.ttlSeconds())*time.Second - s.margin()),
		lost: make(chan struct{}), done: make(chan struct{})}
	kctx, cancel := context.WithCancel(context.Background())
	ch, err := s.c.KeepAlive(kctx, lease)
	if err != nil {
		cancel()
		s.releaseKeys(lk, hk, lease, s.timeout)
		revoke()
		return nil, s.call(ctx, "keep lock of "+key+" alive", func(context.Context) error { return err })
	}
	l.cancel = cancel
	go l.keep(kctx, ch)
	if prev != nil && prev.DeployID != "" && checkID(prev.DeployID) == nil {
		// Say who took the lock over, for the old holder: it may wake
		// (SIGCONT) after this process recovered its deploy and released
		// the lock, and must still say to whom it lost it. Best effort:
		// the takeover itself is done.
		s.call(ctx, "record takeover of "+key, func(ctx context.Context) error {
			_, err := s.c.Put(ctx, s.takeoverKey(prev.DeployID), string(val))
			return err
		})
	}
	s.mu.Lock()
	s.held[esc(key)] = l
	s.mu.Unlock()
	return l, nil
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
func (s *Store) releaseKeys(lk, hk string, lease clientv3.LeaseID, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(lk), "=", lease)).
		Then(clientv3.OpDelete(hk), clientv3.OpDelete(lk)).
		Commit()
	return err
}

// lock is a held deploy lock: a key bound to a lease that keep refreshes.
//
// It keeps its own deadline, by this process's monotonic clock: the lease
// is certainly alive until the last refresh etcd acknowledged plus the TTL,
// minus a margin for the reply's way back. Past it the lock is lost for
// this process, whether or not etcd could tell it so: cut off from etcd, or
// woken from a pause (SIGSTOP) longer than the TTL, a holder must not wait
// for a reply to find out that another process took its deploy over.
type lock struct {
	s         *Store
	key       string
	owner     drover.LockOwner
	takenOver *drover.LockOwner
	lease     clientv3.LeaseID
	ttl       time.Duration

	mu       sync.Mutex
	deadline time.Time // the lease is certainly alive before it
	released bool
	lostOnce sync.Once
	lost     chan struct{} // closed once lost or released
	cancel   context.CancelFunc
	done     chan struct{} // closed when keep returns
}

// keep refreshes the lease (clientv3's KeepAlive sends a refresh every
// TTL/3) and moves the deadline on with every acknowledgement, until the
// deadline passes, etcd says the lease is gone, or Release.
func (l *lock) keep(ctx context.Context, ch <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(l.done)
	// Stop refreshing once lost: the lock is given up for good, and a
	// lease kept alive by a process that stopped working would keep
	// recovery away until Release.
	defer l.cancel()
	for {
		l.mu.Lock()
		wait := time.Until(l.deadline)
		l.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case resp, ok := <-ch:
			t.Stop()
			if !ok || resp.TTL <= 0 {
				l.markLost()
				return
			}
			l.mu.Lock()
			if d := time.Now().Add(time.Duration(resp.TTL)*time.Second - l.s.margin()); d.After(l.deadline) {
				l.deadline = d
			}
			l.mu.Unlock()
		case <-t.C:
			if !l.Held() {
				l.markLost()
				return
			}
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

func (l *lock) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

func (l *lock) Owner() drover.LockOwner { return l.owner }

func (l *lock) TakenOver() *drover.LockOwner {
	if l.takenOver == nil {
		return nil
	}
	o := *l.takenOver
	return &o
}

// Lost is closed when the lock's lease may have expired (etcd unreachable,
// or this process paused, for longer than the TTL; the lease revoked):
// from then on another process may take the lock. It is also closed by
// Release.
func (l *lock) Lost() <-chan struct{} { return l.lost }

// Held reports whether the lease is certainly alive now, by this
// process's clock; see lock.
func (l *lock) Held() bool {
	select {
	case <-l.lost:
		return false
	default:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.released && time.Now().Before(l.deadline)
}

// Release deletes the holder record and the lock key (only if still ours),
// then revokes the lease. The holder record goes with the lock key in one
// transaction: a free lock with a holder recorded means "died holding
// it" to the next Lock. Safe to call more than once; it runs even when
// the caller's context was cancelled, with a bound of its own.
func (l *lock) Release() error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	// A lock already lost gives up quickly: etcd is likely unreachable
	// (that is how locks get lost), and a deployer that halted within the
	// TTL must not then wait out two request timeouts to exit.
	timeout := l.s.timeout
	if !l.Held() {
		timeout = min(timeout, 2*time.Second)
	}
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
	l.cancel()
	<-l.done
	l.markLost()
	l.s.mu.Lock()
	if l.s.held[esc(l.key)] == l {
		delete(l.s.held, esc(l.key))
	}
	l.s.mu.Unlock()
	// One budget for both calls.
	start := time.Now()
	err := l.s.releaseKeys(l.s.lockKey(l.key), l.s.holderKey(l.key), l.lease, timeout)
	rctx, cancel := context.WithTimeout(context.Background(), max(timeout-time.Since(start), 100*time.Millisecond))
	defer cancel()
	// A lease that expired already (the lock was lost) has nothing left
	// to revoke.
	if _, rerr := l.s.c.Revoke(rctx, l.lease); err == nil && rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
		err = rerr
	}
	if err != nil {
		return &drover.Error{Code: drover.EINTERNAL, Message: "store: etcd: release lock of " + l.key, Err: err,
			Hint: "the lock frees itself when its lease expires (store.etcd.lease_ttl)"}
	}
	return nil
}

// fence returns the compare that makes a write of a deploy under the
// escaped lock key k conditional on this process still holding its lock,
// and that lock; none when this Store does not hold the lock of k (a
// reader, a test). A lock already lost by this process's clock fails at
// once, without asking etcd.
func (s *Store) fence(ctx context.Context, k string) ([]clientv3.Cmp, *lock, error) {
	s.mu.Lock()
	l := s.held[k]
	s.mu.Unlock()
	if l == nil {
		return nil, nil, nil
	}
	if !l.Held() {
		return nil, l, s.lostError(ctx, l)
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(s.prefix+"/locks/"+k), "=", l.lease)}, l, nil
}

// fenceFailed reports whether a failed transaction failed on the fence:
// get is the Else branch's read of the lock key.
func fenceFailed(l *lock, get *etcdserverpb.RangeResponse) bool {
	if l == nil {
		return false
	}
	return get == nil || len(get.Kvs) != 1 || clientv3.LeaseID(get.Kvs[0].Lease) != l.lease
}

// lostError is l's ErrLockLost error naming who took the lock; it marks l
// lost.
func (s *Store) lostError(ctx context.Context, l *lock) error {
	l.markLost()
	return drover.LostLockError(l.key, l.TakenBy(ctx))
}

// TakenBy implements drover.LosableLock: the lock key's holder unless it
// is this lock, else the takeover recorded against this lock's deploy.
// Bounded by 1 s (etcd may be what was lost).
func (l *lock) TakenBy(ctx context.Context) *drover.LockOwner {
	s := l.s
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(s.timeout, time.Second))
	defer cancel()
	ops := []clientv3.Op{clientv3.OpGet(s.lockKey(l.key))}
	if l.owner.DeployID != "" && checkID(l.owner.DeployID) == nil {
		ops = append(ops, clientv3.OpGet(s.takeoverKey(l.owner.DeployID)))
	}
	resp, err := s.c.Txn(rctx).Then(ops...).Commit()
	if err != nil {
		return nil
	}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		if len(kvs) != 1 {
			continue
		}
		if i == 0 && clientv3.LeaseID(kvs[0].Lease) == l.lease {
			continue // still ours in etcd, but not for long
		}
		if o := decodeOwner(kvs[0].Value); o != nil {
			return o
		}
	}
	return nil
}

// margin is how much earlier than TTL after a refresh the lock counts as
// lost: room for the acknowledgement's way back and for clocks that tick
// at slightly different rates.
func (s *Store) margin() time.Duration {
	return min(time.Second, time.Duration(s.ttlSeconds())*time.Second/10)
}
