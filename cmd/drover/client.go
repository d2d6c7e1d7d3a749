package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"drover"
	"drover/config"
	"drover/release"
	"drover/report"
	"drover/rollout"
	"drover/runner"
	"drover/server"
)

// This file is the CLI acting through a drover server (--server URL,
// --token): deploy, rollback, adopt, status, history, approve and abort call the
// API instead of touching the fleet, so a team shares the server's one
// lock and one history. A deploy uploads the bundle (built here from a
// directory) and follows the run's events, printing them as a local deploy
// would, and exits with the deploy's exit code.

// remoteFlags are the global --server, --token and --server-ca.
type remoteFlags struct {
	url, token, ca string
}

func (a *app) addRemoteFlags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&a.remote.url, "server", os.Getenv("DROVER_SERVER"), "act through this drover server (default $DROVER_SERVER): deploy, rollback, adopt, status, history, approve, abort")
	root.PersistentFlags().StringVar(&a.remote.token, "token", "", "the API token for --server (default $DROVER_TOKEN)")
	root.PersistentFlags().StringVar(&a.remote.ca, "server-ca", os.Getenv("DROVER_SERVER_CA"), "a PEM CA certificate to verify an https --server with (default $DROVER_SERVER_CA)")
}

// viaServer reports whether the command acts through a server.
func (a *app) viaServer() bool { return a.remote.url != "" }

func (a *app) client() (*server.Client, error) {
	tok := a.remote.token
	if tok == "" {
		tok = os.Getenv("DROVER_TOKEN")
	}
	var tc *tls.Config
	if a.remote.ca != "" {
		pem, err := os.ReadFile(a.remote.ca)
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "--server-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, drover.Errorf(drover.EINVALID, "--server-ca %s holds no PEM certificate", a.remote.ca)
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cl, err := server.NewClient(a.remote.url, tok, tc)
	if err == nil {
		cl.Notify = func(msg string) { fmt.Fprintf(a.stderr, "drover: %s\n", msg) }
	}
	return cl, err
}

// remoteKey is the server's key of the service the command is about: the
// one -c (and --env) name when the file is here, else the server's only
// service.
func (a *app) remoteKey(ctx context.Context, cl *server.Client, f specFlags) (key, service string, err error) {
	spec, lerr := config.Load(f.config, f.env)
	if lerr == nil {
		return runner.Key(spec), spec.Service, nil
	}
	if _, serr := os.Stat(f.config); serr == nil {
		return "", "", lerr
	}
	svcs, err := cl.Services(ctx)
	if err != nil {
		return "", "", err
	}
	for _, s := range svcs {
		if len(svcs) == 1 || (f.env != "" && s.Env == f.env) {
			return s.Key, s.Service, nil
		}
	}
	return "", "", drover.Errorf(drover.EINVALID, "%s serves %d services and %s is not here to say which", a.remote.url, len(svcs), f.config).
		WithHint("pass -c with the service's drover.yaml (and --env)")
}

func (a *app) remoteDeploy(ctx context.Context, f *deployFlags) error {
	if f.release == "" {
		return &usageError{fmt.Errorf("--release is required: a release directory or a bundle from `drover release build`")}
	}
	p, err := a.newPrinter(f.output)
	if err != nil {
		return err
	}
	defer p.close()
	cl, err := a.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	key, service, err := a.remoteKey(ctx, cl, f.specFlags)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "drover-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rel, err := release.Resolve(ctx, f.release, f.version, service, tmp, time.Now())
	if err != nil {
		return err
	}
	st, err := cl.DeployBundle(ctx, key, rel.BundlePath, server.DeployRequest{Limit: f.limit, Force: f.force, Message: f.message, Yes: f.yes,
		SkipChecks: f.skipChecks, SkipAnalyses: f.skipAnalyses, SkipGates: f.skipGates})
	if err != nil {
		return err
	}
	return a.follow(ctx, cl, st.ID, p)
}

// follow prints run id's events until its verdict and exits with its
// code. An interrupt asks the server to abort the run — it halts and
// rolls back, as a local deploy does — and goes on following it.
func (a *app) follow(ctx context.Context, cl *server.Client, id string, p eventOutput) error {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := cl.Abort(actx, id, server.AbortRequest{Reason: "interrupted: " + fmt.Sprint(context.Cause(ctx))}); err != nil {
				fmt.Fprintf(a.stderr, "drover: asking the server to abort %s: %v\n", id, err)
			}
		case <-stop:
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	v, err := cl.Follow(context.WithoutCancel(ctx), id, p.Emit)
	if err != nil {
		return err
	}
	code := drover.OutcomeOf(v.Outcome).Exit
	p.verdict(&runner.Outcome{DeployID: v.Deploy, Kind: v.Operation, Verdict: rollout.Verdict(v.Outcome), ExitCode: code, Summary: v.Message})
	a.exit(code)
	return nil
}

func (a *app) remoteRollback(ctx context.Context, f specFlags, req server.RollbackRequest, output string) error {
	p, err := a.newPrinter(output)
	if err != nil {
		return err
	}
	defer p.close()
	cl, err := a.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	key, _, err := a.remoteKey(ctx, cl, f)
	if err != nil {
		return err
	}
	st, err := cl.Rollback(ctx, key, req)
	if err != nil {
		return err
	}
	return a.follow(ctx, cl, st.ID, p)
}

func (a *app) remoteStatus(ctx context.Context, f specFlags, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	key, _, err := a.remoteKey(ctx, cl, f)
	if err != nil {
		return err
	}
	st, err := cl.Status(ctx, key)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(a.stdout, st)
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tGROUP\tREACHABLE\tVERSION\tRELEASE\tPREVIOUS\tDEPLOYED")
	unreachable := 0
	for _, h := range st.Hosts {
		deployed := ""
		if !h.DeployedAt.IsZero() {
			deployed = h.DeployedAt.Local().Format("2006-01-02 15:04:05")
		}
		reach := "yes"
		if !h.Reachable {
			reach = "NO: " + h.Error
			unreachable++
		}
		version, prev := statusWords(h)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Group, reach, version, dash(h.Release), prev, deployed)
	}
	tw.Flush()
	// The deploy running and those that never finished, as the server
	// sees them: what the lock error's "see `drover status`" promises.
	var running *report.RunningDeploy
	var unfinished []report.UnfinishedDeploy
	if len(st.Running) > 0 {
		if err := json.Unmarshal(st.Running, &running); err != nil {
			return drover.Errorf(drover.EINTERNAL, "%s: status: the running deploy: %v", a.remote.url, err)
		}
	}
	if len(st.Unfinished) > 0 {
		if err := json.Unmarshal(st.Unfinished, &unfinished); err != nil {
			return drover.Errorf(drover.EINTERNAL, "%s: status: the unfinished deploys: %v", a.remote.url, err)
		}
	}
	printDeployActivity(a.stdout, running, unfinished)
	if unreachable > 0 {
		a.exit(drover.ExitNeedsPerson)
	}
	return nil
}

func (a *app) remoteHistory(ctx context.Context, f specFlags, limit int, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	key, _, err := a.remoteKey(ctx, cl, f)
	if err != nil {
		return err
	}
	recs, err := cl.History(ctx, key, limit)
	if err != nil {
		return err
	}
	rows := make([]report.HistoryRow, 0, len(recs))
	for _, r := range recs {
		row := report.HistoryRow{DeployRecord: r, Status: r.Outcome}
		if r.Finished.IsZero() {
			row.Status = report.StatusUnknown
		} else {
			row.Duration = r.Finished.Sub(r.Started).Seconds()
		}
		rows = append(rows, row)
	}
	if asJSON {
		return writeJSON(a.stdout, rows)
	}
	// The local history's table: one line a deploy whatever its summary
	// holds (a validate error's lines).
	return printHistory(a.stdout, rows)
}

// remoteDecide approves or aborts through the server: the named deploy,
// or the one the server runs for the service.
func (a *app) remoteDecide(ctx context.Context, f specFlags, args []string, abort bool, message string) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	var id string
	if len(args) == 1 {
		id = args[0]
	} else {
		key, _, err := a.remoteKey(ctx, cl, f)
		if err != nil {
			return err
		}
		svcs, err := cl.Services(ctx)
		if err != nil {
			return err
		}
		for _, s := range svcs {
			if s.Key == key {
				id = s.Running
			}
		}
		if id == "" {
			return drover.Errorf(drover.EINVALID, "%s runs no deploy of %s", a.remote.url, key).
				WithHint("name the deploy: drover approve|abort DEPLOY-ID")
		}
	}
	if abort {
		if _, err := cl.Abort(ctx, id, server.AbortRequest{Reason: message}); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "abort requested for deploy %s; it halts and rolls back what it switched\n", id)
		return nil
	}
	d, err := cl.Approve(ctx, id, server.ApproveRequest{Note: message})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "approved deploy %s at group %s; it goes on\n", id, d.Group)
	return nil
}
