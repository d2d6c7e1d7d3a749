package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"drover"
	"drover/store/storetest"
)

// Fencing: every write of a deploy under a held lock is conditional on the
// lock's lease still owning the lock key. A holder whose lease expired
// (here: revoked behind its back, as etcd does to a process paused past
// the TTL before its keeper notices) journals nothing more, records no
// outcome, and its errors say who holds the lock now.
func TestEtcdFencedWrites(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix()
	a := openAt(t, prefix, 2*time.Second)
	la, err := a.Lock(ctx, "hello", drover.LockOwner{PID: 1111, User: "a", Machine: "ma", DeployID: "d-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release()
	if _, ok := la.(drover.LosableLock); !ok {
		t.Fatalf("the etcd lock is not a drover.LosableLock")
	}
	if err := a.Begin(ctx, storetest.Record("d-a", "hello", 0)); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(ctx, "d-a", drover.JournalEntry{Host: "h01", Step: "depool", Phase: "start"}); err != nil {
		t.Fatalf("Append while holding the lock: %v", err)
	}

	// The lease goes, as if a's process had been paused past the TTL.
	resp, err := a.Client().Get(ctx, prefix+"/locks/hello")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("lock key: %v %+v", err, resp)
	}
	if _, err := a.Client().Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	err = a.Append(ctx, "d-a", drover.JournalEntry{Host: "h01", Step: "switch", Phase: "start"})
	if !errors.Is(err, drover.ErrLockLost) || !strings.Contains(err.Error(), "nobody has taken it yet") {
		t.Fatalf("Append after the lease expired: %v; want ErrLockLost, nobody has it yet", err)
	}

	// Another process takes over and recovers.
	b := openAt(t, prefix, 2*time.Second)
	lb, err := b.Lock(ctx, "hello", drover.LockOwner{PID: 2222, User: "b", Machine: "mb", DeployID: "d-b"})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Release()
	if prev := lb.TakenOver(); prev == nil || prev.DeployID != "d-a" {
		t.Fatalf("TakenOver = %+v, want d-a", prev)
	}
	select {
	case <-la.(drover.LosableLock).Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("a's Lost not closed after its lease was revoked")
	}
	if la.(drover.LosableLock).Held() {
		t.Error("a's Held() is true after its lease was revoked")
	}
	for name, write := range map[string]func() error{
		"Append": func() error {
			return a.Append(ctx, "d-a", drover.JournalEntry{Host: "h01", Step: "switch", Phase: "start"})
		},
		"Finish": func() error {
			return a.Finish(ctx, "d-a", drover.FinishRecord{Outcome: drover.OutcomeNeedsPerson, ExitCode: 3})
		},
		"Begin": func() error { return a.Begin(ctx, storetest.Record("d-a2", "hello", time.Second)) },
	} {
		err := write()
		if !errors.Is(err, drover.ErrLockLost) || drover.ErrorCode(err) != drover.ELOCKED ||
			!strings.Contains(err.Error(), "lost the deploy lock of hello to pid 2222 user b on machine mb") || !strings.Contains(err.Error(), "(deploy d-b)") {
			t.Errorf("%s by the process that lost the lock: %v; want ErrLockLost naming pid 2222 and d-b", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "lost the deploy lock") && strings.Count(err.Error(), "lock") > 1 {
			t.Errorf("%s: the error repeats itself: %v", name, err)
		}
	}
	j, err := b.Journal(ctx, "d-a")
	if err != nil || len(j) != 1 {
		t.Fatalf("d-a's journal after the takeover: %+v, %v; want only the entry written under the lock", j, err)
	}
	// The new holder's own writes are fenced on its own lease and pass.
	if err := b.Append(ctx, "d-a", drover.JournalEntry{Host: "h01", Step: "restore", Phase: "start"}); err != nil {
		t.Fatalf("the new holder's Append: %v", err)
	}
	if err := b.Finish(ctx, "d-a", drover.FinishRecord{Outcome: drover.OutcomeInterrupted, ExitCode: 0}); err != nil {
		t.Fatalf("the new holder's Finish of the recovered deploy: %v", err)
	}
	// Once the new holder is done and released, the old one still learns
	// to whom it lost the lock.
	lb.Release()
	err = a.Begin(ctx, storetest.Record("d-a3", "hello", 2*time.Second))
	if !errors.Is(err, drover.ErrLockLost) || !strings.Contains(err.Error(), "to pid 2222 user b") {
		t.Errorf("Begin after the new holder released: %v; want ErrLockLost naming pid 2222", err)
	}
	lb, err = b.Lock(ctx, "hello", drover.LockOwner{PID: 2222, User: "b", Machine: "mb", DeployID: "d-b2"})
	if err != nil {
		t.Fatal(err)
	}
	// Release of the lost lock leaves the new holder's lock alone.
	if err := la.Release(); err != nil {
		t.Errorf("Release of a lost lock: %v", err)
	}
	if h, err := b.LockHolder(ctx, "hello"); err != nil || h == nil || h.DeployID != "d-b2" {
		t.Errorf("holder after the old holder's Release: %+v, %v; want d-b2", h, err)
	}
	if _, err := b.Lock(ctx, "hello", drover.LockOwner{}); drover.ErrorCode(err) != drover.ELOCKED {
		t.Errorf("the lock is free after the old holder's Release: %v", err)
	}
}
