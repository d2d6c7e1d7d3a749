package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/config"
	"drover/runner"
	"drover/server"
)

// This file is `drover server` and `drover server token create`: the
// wiring of package server — it loads each service's spec and hands the
// server a factory that builds runners with this command's own machinery
// (a.openSpec: store, transport, rotation, logs, webhooks), so the server
// never wires adapters itself.

// serverShutdownWait bounds how long a stopping server waits for its
// running deploys to roll back before it stops serving anyway (a second
// signal stops at once; the next deploy or resume recovers from the
// journal).
const serverShutdownWait = 10 * time.Minute

func (a *app) serverCmd() *cobra.Command {
	var configs []string
	var f specFlags
	var listen, tokens, tlsCert, tlsKey, advertise, releasesDir string
	var insecureRemote bool
	var maxUpload int64
	c := &cobra.Command{
		Use:   "server -c drover.yaml [-c other.yaml ...] --tokens FILE",
		Short: "Serve the API, the live event stream and the dashboard: one lock and one history for a team",
		Long: `drover server runs deploys on behalf of the people and jobs that call its API,
so a team shares one lock and one history, and shows them live: a REST API, a
server-sent event stream, Prometheus metrics at /metrics and a dashboard at /.

Every /api request needs a bearer token from the tokens file (drover server
token create); the server refuses to start without one. Roles: viewer reads;
deployer also deploys, rolls back, approves and aborts; admin does everything
on every service. A token may be scoped to services. Every change is recorded
with the token's name (user "token:NAME" in drover history).

It listens on 127.0.0.1:7800 by default. A non-loopback address needs
--tls-cert and --tls-key (or --insecure-remote, behind a TLS proxy only).
A deploy request names a release by path only inside --releases-dir (after
every symlink); without it, only uploaded bundles are taken (drover deploy
--server uploads). SIGINT/SIGTERM halts running deploys: each rolls back what it switched
before the server exits.

Each -c is one service; FILE#ENV serves FILE with an environment overlay.`,
		Example: `  drover server token create --name alice --role deployer --tokens /etc/drover/tokens.json
  drover server -c drover.yaml --tokens /etc/drover/tokens.json
  drover server -c web.yaml -c web.yaml#staging --listen 0.0.0.0:7800 --tls-cert cert.pem --tls-key key.pem --tokens tokens.json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if tokens == "" {
				tokens = os.Getenv("DROVER_TOKENS")
			}
			if releasesDir == "" {
				releasesDir = os.Getenv("DROVER_RELEASES_DIR")
			}
			if (tlsCert == "") != (tlsKey == "") {
				return &usageError{fmt.Errorf("--tls-cert and --tls-key go together")}
			}
			if err := checkListen(listen, tlsCert != "", insecureRemote); err != nil {
				return err
			}
			if len(configs) == 0 {
				configs = []string{"drover.yaml"}
			}
			var services []server.Service
			for _, cf := range configs {
				sf := f
				sf.config = cf
				if file, env, ok := strings.Cut(cf, "#"); ok {
					sf.config, sf.env = file, env
				}
				spec, err := config.Load(sf.config, sf.env)
				if err != nil {
					return err
				}
				services = append(services, server.Service{Spec: spec, Open: func(sink drover.EventSink) (*runner.Runner, func(), error) {
					e, err := a.openSpec(spec, sf, sink)
					if err != nil {
						return nil, nil, err
					}
					return e.runner, e.close, nil
				}})
			}
			// The audit log: one line per change, every field quoted as
			// needed, so an abort reason cannot forge a line.
			logger := slog.New(slog.NewTextHandler(a.stderr, nil)).With("component", "drover server")
			srv, err := server.New(server.Config{Services: services, TokensFile: tokens, MaxUpload: maxUpload, ReleasesDir: releasesDir, Log: logger, Activity: activityJSON})
			if err != nil {
				return err
			}
			// Services in etcd: this server is one of its replicas (server_ha.go).
			rep, closeRep, err := serverReplica(srv, services, a.stderr)
			if err != nil {
				return err
			}
			defer closeRep()
			return a.serve(c.Context(), srv, rep, advertise, listen, tlsCert, tlsKey, services)
		},
	}
	c.Flags().StringArrayVarP(&configs, "config", "c", nil, "a service's config file, FILE or FILE#ENV; repeat for more services (default drover.yaml)")
	c.Flags().StringVar(&f.env, "env", "", "the environment overlay for every -c without #ENV")
	c.Flags().StringVar(&f.hostBinary, "host-binary", "", "transport ssh: a drover binary built for hosts whose OS/arch differ from this machine's")
	c.Flags().BoolVar(&f.acceptNew, "ssh-accept-new", false, "transport ssh: record the key of a host missing from known_hosts instead of refusing it")
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:7800", "the address to listen on (port 0 picks a free one)")
	c.Flags().StringVar(&tokens, "tokens", "", "the tokens file (default $DROVER_TOKENS); required")
	c.Flags().StringVar(&tlsCert, "tls-cert", "", "serve https with this certificate (PEM)")
	c.Flags().StringVar(&tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	c.Flags().BoolVar(&insecureRemote, "insecure-remote", false, "allow a non-loopback --listen without TLS (only behind a TLS-terminating proxy)")
	c.Flags().Int64Var(&maxUpload, "max-upload", server.DefaultMaxUpload, "the largest bundle a deploy may upload, in bytes")
	c.Flags().StringVar(&releasesDir, "releases-dir", "", `the only directory a deploy request may name a release in ({"release": PATH}, after symlinks; default $DROVER_RELEASES_DIR); without it, deploys upload bundles`)
	c.Flags().StringVar(&advertise, "advertise", "", "with store: {etcd: ...}: the URL other replicas forward changes to (default the listening address)")
	c.AddCommand(a.serverTokenCmd())
	return c
}

// checkListen refuses to send tokens in clear text beyond this machine.
func checkListen(addr string, tls, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &usageError{fmt.Errorf("--listen %q: want HOST:PORT", addr)}
	}
	if tls || insecure {
		return nil
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return drover.Errorf(drover.EINVALID, "--listen %s is not a loopback address and there is no TLS: tokens would cross the network in clear text", addr).
		WithHint("pass --tls-cert and --tls-key, or --insecure-remote behind a TLS-terminating proxy")
}

// serve runs srv until ctx ends, then halts the running deploys (they roll
// back) and stops.
func (a *app) serve(ctx context.Context, srv *server.Server, rep *server.Replica, advertise, listen, tlsCert, tlsKey string, services []server.Service) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return drover.Errorf(drover.EINVALID, "--listen %s: %v", listen, err).WithHint("pick another address or port")
	}
	scheme := "http"
	if tlsCert != "" {
		scheme = "https"
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	// A replica campaigns from here until the server stops (server_ha.go).
	repDone := make(chan struct{})
	stopRep := func() {}
	if rep == nil {
		close(repDone)
	} else {
		hs.Handler = rep.Handler()
		if advertise == "" {
			advertise = scheme + "://" + ln.Addr().String()
		}
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stopRep = func() { cancel(); <-repDone }
		go func() { defer close(repDone); rep.Run(rctx, advertise) }()
		defer stopRep()
	}
	var keys []string
	for _, s := range services {
		keys = append(keys, runner.Key(s.Spec))
	}
	fmt.Fprintf(a.stderr, "drover server: serving %s; listening on %s://%s\n", strings.Join(keys, ", "), scheme, ln.Addr())
	errc := make(chan error, 1)
	go func() {
		if tlsCert != "" {
			errc <- hs.ServeTLS(ln, tlsCert, tlsKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	var serveErr error
	served := false
	select {
	case serveErr = <-errc:
		served = true
	case <-ctx.Done():
	}
	fmt.Fprintln(a.stderr, "drover server: stopping; running deploys halt and roll back")
	stopRep() // leave the election first: another replica leads at once
	wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), serverShutdownWait)
	defer cancel()
	if err := srv.Close(wait, context.Cause(ctx)); err != nil {
		fmt.Fprintf(a.stderr, "drover server: deploys still rolling back after %s; the next deploy or drover resume finishes from the journal\n", serverShutdownWait)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	hs.Shutdown(sctx)
	if !served {
		serveErr = <-errc
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return drover.Errorf(drover.EINTERNAL, "serving: %v", serveErr)
	}
	return nil
}

func (a *app) serverTokenCmd() *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Manage the server's API tokens",
		Example: `  drover server token create --name alice --role deployer --tokens tokens.json`}
	var name, role, tokens string
	var services []string
	create := &cobra.Command{
		Use:   "create --name NAME --role viewer|deployer|admin --tokens FILE",
		Short: "Make a token: prints it once, stores only its hash",
		Long: `token create makes a random token for NAME with a role (viewer, deployer,
admin) and an optional service scope (--service, repeatable: a service or
service/env), appends its sha256 to the tokens file (created with mode 0600)
and prints the token on standard output: the only time it is ever shown.
A running server picks the new token up at once.`,
		Example: `  drover server token create --name alice --role deployer --service hello --tokens tokens.json
  DROVER_TOKEN=$(drover server token create --name ci --role deployer --tokens tokens.json)`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if tokens == "" {
				tokens = os.Getenv("DROVER_TOKENS")
			}
			if tokens == "" {
				return &usageError{fmt.Errorf("--tokens FILE is required")}
			}
			if name == "" || role == "" {
				return &usageError{fmt.Errorf("--name and --role are required")}
			}
			tok, err := server.CreateToken(tokens, name, role, services)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, tok)
			fmt.Fprintf(a.stderr, "token %s (%s) added to %s; it is shown only this once\n", name, role, tokens)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "who the token is for; recorded with every change it makes")
	create.Flags().StringVar(&role, "role", "", "viewer, deployer or admin")
	create.Flags().StringArrayVar(&services, "service", nil, "limit the token to this service (service or service/env); repeatable")
	create.Flags().StringVar(&tokens, "tokens", "", "the tokens file (default $DROVER_TOKENS)")
	c.AddCommand(create)
	return c
}

// activityJSON answers the server's status with what `drover status`
// prints under the host table: the deploy running now and the deploys
// that never finished (status_deploys.go).
func activityJSON(ctx context.Context, st drover.Store, key string) (running, unfinished json.RawMessage, err error) {
	r, u, err := deployActivity(ctx, st, key)
	if err != nil {
		return nil, nil, err
	}
	if r != nil {
		if running, err = json.Marshal(r); err != nil {
			return nil, nil, err
		}
	}
	if len(u) > 0 {
		if unfinished, err = json.Marshal(u); err != nil {
			return nil, nil, err
		}
	}
	return running, unfinished, nil
}
