package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"drover"
	"drover/config"
	"drover/runner"
	"drover/server"
	"drover/store/etcd"
)

// serverReplica makes srv a replica of an election in etcd when every
// served service keeps its state there (store: {etcd: ...}): several
// `drover server` processes with the same configs then share one lock and
// one history, one leads and runs the deploys, and the others forward to
// it and take over — recovering the dead leader's deploy — when it dies.
// It returns nil for services on a local store (sqlite, file), and an
// error for a mix: a replica cannot share what lives on one machine.
//
// The election is named after the set of services served, so replicas of
// one set elect one leader and other sets under the same prefix do not
// compete with them. close releases the election's connection.
func serverReplica(srv *server.Server, services []*config.Config, log io.Writer) (rep *server.Replica, close func(), err error) {
	var keys []string
	var first *config.Config
	for _, s := range services {
		keys = append(keys, runner.Key(s.Spec))
		if s.Spec.Store == drover.StoreEtcd && first == nil {
			first = s
		}
	}
	if first == nil {
		return nil, func() {}, nil
	}
	for _, s := range services {
		if s.Spec.Store != drover.StoreEtcd {
			return nil, nil, drover.Errorf(drover.EINVALID, "%s keeps its state in etcd but %s uses store %s: replicas of one server share every service's state",
				first.Source, s.Spec.Source, s.Spec.Store).At(s.Spec.Source).
				WithHint("give every served config the same store: {etcd: ...} block, or serve them from separate servers")
		}
	}
	e := first.Etcd
	st, err := etcd.Open(e)
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	name := "server-" + hex.EncodeToString(sum[:6])
	interval := e.LeaseTTL / 4
	if interval <= 0 {
		interval = server.DefaultRecoverInterval
	}
	rep = server.NewReplica(srv, server.ReplicaConfig{
		NewElector: func(ctx context.Context) (server.Elector, error) { return st.Elector(ctx, name) },
		Unfinished: func(ctx context.Context, key string) (int, error) {
			u, err := st.Unfinished(ctx, key)
			return len(u), err
		},
		Interval: interval,
		Log:      func(format string, args ...any) { fmt.Fprintf(log, "drover server: "+format+"\n", args...) },
	})
	return rep, func() { st.Close() }, nil
}
