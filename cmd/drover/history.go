package main

// The audit trail and the views over it: history, show, log, status
// --stragglers and diff; and where a run's record goes besides the
// terminal: the store (sqlite by default), the structured event log and
// webhooks.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"drover"
	"drover/notify"
	"drover/report"
	"drover/runner"
	"drover/store/etcd"
	"drover/store/file"
	"drover/store/sqlite"
)

// openStore opens the spec's store in dir: sqlite (state_dir/drover.db)
// unless drover.yaml says store: file, or store: {etcd: ...} (dir unused).
func openStore(spec *drover.Spec, dir string) (drover.Store, error) {
	switch spec.Store {
	case drover.StoreFile:
		return file.Open(dir)
	case "", drover.StoreSQLite:
		return sqlite.Open(filepath.Join(dir, sqlite.FileName))
	case drover.StoreEtcd:
		return etcd.Open(etcdOptions(spec.Etcd))
	}
	return nil, drover.Errorf(drover.EINVALID, "store %q is not available in this build", spec.Store).At(spec.Source).WithHint("use store: sqlite, store: file or store: {etcd: ...}")
}

// etcdOptions is the store/etcd connection of a spec's etcd block.
func etcdOptions(e drover.EtcdSpec) etcd.Options {
	return etcd.Options{Endpoints: e.Endpoints, Prefix: e.Prefix, CA: e.CA, Cert: e.Cert, Key: e.Key,
		Username: e.Username, Password: e.Password, AllowInsecure: e.AllowInsecure, LeaseTTL: e.LeaseTTL, DialTimeout: e.DialTimeout}
}

// webhookCloseTimeout bounds how long the end of a run waits for webhook
// deliveries still queued or being retried.
const webhookCloseTimeout = 15 * time.Second

// observe adds the structured log and the webhooks to a run's events. A
// command that reports no events (sink nil: status, plan, history) logs
// and notifies nothing. The returned func flushes and closes them; call it
// once the run is over.
func (a *app) observe(spec *drover.Spec, sink drover.EventSink) (drover.EventSink, func(), error) {
	if sink == nil {
		return nil, func() {}, nil
	}
	sinks := multiSink{sink}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	logFile, format := spec.Log.File, spec.Log.Format
	if a.logFile != "" {
		logFile = a.logFile
	}
	if logFile != "" {
		var w io.Writer = a.stdout
		if logFile != "-" {
			f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				return nil, nil, (&drover.Error{Code: drover.EINVALID, Message: "cannot open the log file", Err: err}).
					WithHint("fix --log-file or log.file in drover.yaml; the directory must exist")
			}
			closers = append(closers, func() { f.Close() })
			w = f
		}
		sinks = append(sinks, notify.NewLog(w, format, spec.Service, spec.Env))
	}
	if len(spec.Webhooks) > 0 {
		hooks, err := notify.New(spec.Webhooks, notify.Options{
			Service: spec.Service, Env: spec.Env,
			OnError: func(hook string, err error) {
				fmt.Fprintf(a.stderr, "drover: warning: webhook %s: %v\n", hook, err)
			},
		})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), webhookCloseTimeout)
			defer cancel()
			if err := hooks.Close(ctx); err != nil {
				fmt.Fprintf(a.stderr, "drover: warning: %v\n", err)
			}
		})
		sinks = append(sinks, hooks)
	}
	return sinks, closeAll, nil
}

// multiSink sends every event to each sink in turn.
type multiSink []drover.EventSink

func (m multiSink) Emit(e drover.Event) {
	for _, s := range m {
		s.Emit(e)
	}
}

// deployMessage is the message recorded with a deploy: -m, else asked for
// on a terminal unless ask_message: false. Without a terminal nothing is
// asked: a CI job must not hang on a prompt nobody sees.
func (a *app) deployMessage(given string, spec *drover.Spec) string {
	if given != "" || !spec.AskMessage || !isTerminal(a.stdin) {
		return given
	}
	fmt.Fprint(a.stdout, "Deploy message (recorded in the history; Enter for none): ")
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	return strings.TrimSpace(line)
}

func (a *app) historyCmd() *cobra.Command {
	var f specFlags
	var asJSON bool
	var limit int
	var host, since string
	c := &cobra.Command{
		Use:   "history",
		Short: "List past deploys, rollbacks and recoveries, newest first",
		Long: `history lists the deploys, rollbacks and recoveries of this service (and
--env), newest first: who ran each, from which machine, with which message,
its outcome and how long it took. A deploy whose process died shows as
interrupted until the next deploy or resume recovers it.`,
		Example: `  drover history
  drover history --host h03 --since 7d
  drover history --json -n 0 | jq '.[] | select(.status != "succeeded")'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			t, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			if a.viaServer() {
				if host != "" || since != "" {
					return &usageError{fmt.Errorf("--host and --since are not available through --server")}
				}
				return a.remoteHistory(c.Context(), f, limit, asJSON)
			}
			e, err := a.open(f, nil)
			if err != nil {
				return err
			}
			defer e.close()
			key := runner.Key(e.spec)
			hr, err := historyReader(e.store)
			if err != nil {
				return err
			}
			recs, err := hr.Deploys(c.Context(), drover.DeployQuery{Key: key, Host: host, Since: t, Limit: limit})
			if err != nil {
				return err
			}
			holder, herr := hr.LockHolder(c.Context(), key)
			rows := report.History(recs, holder, herr)
			if asJSON {
				return writeJSON(a.stdout, rows)
			}
			return printHistory(a.stdout, rows)
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().IntVarP(&limit, "number", "n", 20, "how many (0 = all)")
	c.Flags().StringVar(&host, "host", "", "only deploys that targeted this host")
	c.Flags().StringVar(&since, "since", "", "only deploys started since: a date (2006-01-02), a time (RFC 3339) or an age (90m, 36h, 7d)")
	return c
}

// printHistory writes history's table: one line per deploy whatever its
// message or summary holds (a multi-line validate error, a tab, a
// terminal escape), so columns stay columns; `drover show` has the whole
// text.
func printHistory(w io.Writer, rows []report.HistoryRow) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPLOY\tKIND\tVERSION\tRELEASE\tSTATUS\tSTARTED\tTOOK\tBY\tMESSAGE\tSUMMARY")
	for _, r := range rows {
		took := ""
		if !r.Finished.IsZero() {
			took = r.Finished.Sub(r.Started).Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(r.ID, 0), oneLine(report.KindLabel(r.DeployRecord), 0), dash(oneLine(r.Version, 0)), dash(oneLine(r.Release, 0)), r.Status,
			r.Started.Local().Format("2006-01-02 15:04:05"), took, oneLine(r.User+"@"+r.Machine, 0), dash(oneLine(r.Message, 40)), oneLine(r.Summary, 100))
	}
	return tw.Flush()
}

// oneLine makes s one table cell: every run of white space and control
// characters (newlines, tabs that would start a new column, escapes that
// would drive the terminal) becomes one space, and text longer than n
// runes (n > 0) is cut with "…".
func oneLine(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError
	}), " ")
	if n > 0 && utf8.RuneCountInString(s) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseSince reads --since: "" (no bound), an age ("90m", "36h", "7d"),
// a date ("2006-01-02", local time) or a time (RFC 3339, or
// "2006-01-02 15:04[:05]" local).
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) == n && days >= 0 {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &usageError{fmt.Errorf("--since %q: want a date (2006-01-02), a time (2006-01-02T15:04:05Z07:00) or an age (90m, 36h, 7d)", s)}
}

func (a *app) showCmd() *cobra.Command {
	var f specFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "show DEPLOY-ID",
		Short: "Show one deploy: who, what, outcome, and each host's steps with timing",
		Example: `  drover show d-20261122T100000-1a2b
  drover show d-20261122T100000-1a2b --json | jq '.hosts[] | select(.steps[].outcome == "failed")'`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{fmt.Errorf("show takes one deploy id (see `drover history`), got %d arguments", len(args))}
			}
			e, err := a.open(f, nil)
			if err != nil {
				return err
			}
			defer e.close()
			d, err := e.store.Deploy(c.Context(), args[0])
			if err != nil {
				return err
			}
			j, err := e.store.Journal(c.Context(), d.ID)
			if err != nil {
				return err
			}
			holder, herr := report.LockHolder(c.Context(), e.store, d.Key)
			v := report.Show(d, j, report.DeployStatus(d, holder, herr))
			if asJSON {
				return writeJSON(a.stdout, v)
			}
			printDeploy(a.stdout, v)
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printDeploy(w io.Writer, v report.DeployView) {
	d := v.Deploy
	fmt.Fprintf(w, "%s %s  %s", d.Kind, d.ID, d.Service)
	if d.Env != "" {
		fmt.Fprintf(w, " (env %s)", d.Env)
	}
	if d.Version != "" {
		fmt.Fprintf(w, "  %s (%s)", d.Version, d.Release)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  by        %s@%s\n", d.User, d.Machine)
	if d.Revision != "" {
		fmt.Fprintf(w, "  revision  %s\n", d.Revision)
	}
	if d.Message != "" {
		fmt.Fprintf(w, "  message   %s\n", d.Message)
	}
	for _, o := range d.Overrides {
		fmt.Fprintf(w, "  OVERRIDE  skipped %s %s: %s\n", termSafe(o.Kind), termSafe(o.Name), termSafe(o.Reason))
	}
	fmt.Fprintf(w, "  started   %s\n", d.Started.Local().Format("2006-01-02 15:04:05.000"))
	if !d.Finished.IsZero() {
		fmt.Fprintf(w, "  finished  %s (took %s)\n", d.Finished.Local().Format("2006-01-02 15:04:05.000"), d.Finished.Sub(d.Started).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "  status    %s", v.Status)
	if !d.Finished.IsZero() {
		fmt.Fprintf(w, " (exit %d)", d.ExitCode)
	}
	fmt.Fprintln(w)
	if d.Summary != "" {
		fmt.Fprintf(w, "  summary   %s\n", d.Summary)
	}
	for _, h := range v.Hosts {
		before := "nothing"
		switch {
		case h.Before.Foreign != nil:
			before = h.Before.Label()
		case h.Before.Current != "":
			before = fmt.Sprintf("%s (%s)", dash(h.Before.Version), h.Before.Current)
		}
		fmt.Fprintf(w, "\n%s", h.Name)
		if h.Group != "" {
			fmt.Fprintf(w, " [%s]", h.Group)
		}
		fmt.Fprintf(w, "  before: %s\n", before)
		if h.Skipped {
			fmt.Fprintln(w, "  skipped: already on the release")
			continue
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, s := range h.Steps {
			took := ""
			if !s.Finished.IsZero() {
				took = s.Elapsed.Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s.Started.Local().Format("15:04:05.000"), s.Step, s.Outcome, took, oneLine(s.Reason, 100))
		}
		tw.Flush()
		for _, s := range h.Steps {
			if s.Output != "" && s.Outcome != "ok" {
				fmt.Fprintf(w, "  output of %s (tail):\n", s.Step)
				lines := strings.Split(strings.TrimRight(s.Output, "\n"), "\n")
				if len(lines) > 10 {
					lines = lines[len(lines)-10:]
				}
				for _, l := range lines {
					fmt.Fprintf(w, "    | %s\n", l)
				}
			}
		}
	}
}

func (a *app) logCmd() *cobra.Command {
	var f specFlags
	var asJSON bool
	var deploy, host, step, level, since string
	var limit int
	c := &cobra.Command{
		Use:   "log",
		Short: "List journaled host steps across deploys, filtered by deploy, host, step and level",
		Long: `log prints the journal: every step of every host, "start" before it ran and
"done" after with its outcome, duration and reason, oldest first. --level error
keeps only steps that failed or found their host unreachable.`,
		Example: `  drover log --host h03 --since 24h
  drover log --level error --json | jq -r .reason
  drover log --deploy d-20261122T100000-1a2b --step check`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			failed := false
			switch level {
			case "", "info":
			case "error":
				failed = true
			default:
				return &usageError{fmt.Errorf("--level %q: want info (every step) or error (failed steps only)", level)}
			}
			t, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			e, err := a.open(f, nil)
			if err != nil {
				return err
			}
			defer e.close()
			hr, err := historyReader(e.store)
			if err != nil {
				return err
			}
			steps, err := hr.Steps(c.Context(), drover.StepQuery{Key: runner.Key(e.spec), DeployID: deploy, Host: host, Step: step, Since: t, Failed: failed, Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				// JSON lines, like --output json: one object per step.
				enc := json.NewEncoder(a.stdout)
				for _, s := range steps {
					if err := enc.Encode(s); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tDEPLOY\tHOST\tSTEP\tPHASE\tOUTCOME\tTOOK\tREASON")
			for _, s := range steps {
				took := ""
				if s.Elapsed > 0 {
					took = s.Elapsed.Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.At.Local().Format("2006-01-02 15:04:05.000"), s.DeployID, s.Host, s.Step, s.Phase, dash(s.Outcome), took, oneLine(s.Reason, 120))
			}
			return tw.Flush()
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	c.Flags().StringVar(&deploy, "deploy", "", "only this deploy's steps")
	c.Flags().StringVar(&host, "host", "", "only this host's steps")
	c.Flags().StringVar(&step, "step", "", "only this step (stage, depool, switch, restart, check, repool, restore, ...)")
	c.Flags().StringVar(&level, "level", "info", "info (every step) or error (failed steps only)")
	c.Flags().StringVar(&since, "since", "", "only steps since a date, a time or an age (see history --since)")
	c.Flags().IntVarP(&limit, "number", "n", 500, "the newest N steps (0 = all)")
	return c
}

// stragglers lists hosts not on the desired release or, with since, not
// deployed since then; unreachable hosts are listed as unknown.
func (a *app) stragglers(ctx context.Context, e *env, since time.Time, want string, asJSON bool) error {
	st, err := e.runner.Status(ctx)
	if err != nil {
		return err
	}
	desired, basis := want, "given with --release"
	if want == "" {
		if desired, basis, err = report.DesiredRelease(ctx, e.store, runner.Key(e.spec), st.Hosts); err != nil {
			return err
		}
	}
	rep := report.FindStragglers(st, desired, basis, since)
	if rep.Unreachable > 0 {
		a.exit(drover.ExitNeedsPerson)
	}
	if asJSON {
		return writeJSON(a.stdout, rep)
	}
	fmt.Fprintf(a.stdout, "desired release %s: %s\n", rep.Desired, rep.Basis)
	if len(rep.Hosts) == 0 {
		fmt.Fprintf(a.stdout, "no stragglers: all %s are on it", plural(len(st.Hosts), "host"))
		if !since.IsZero() {
			fmt.Fprintf(a.stdout, " and were deployed since %s", since.Local().Format("2006-01-02 15:04:05"))
		}
		fmt.Fprintln(a.stdout)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tGROUP\tVERSION\tDEPLOYED\tBY DEPLOY\tWHY")
	for _, h := range rep.Hosts {
		deployed := "-"
		if !h.DeployedAt.IsZero() {
			deployed = h.DeployedAt.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Group, dash(h.Version), deployed, dash(h.DeployID), termSafe(strings.Join(h.Reasons, "; ")))
	}
	tw.Flush()
	fmt.Fprintf(a.stdout, "%d of %d hosts are stragglers\n", len(rep.Hosts), len(st.Hosts))
	return nil
}

// surveyEnv reads every host of one environment, group by group.
func (a *app) surveyEnv(ctx context.Context, f specFlags, envName string) (*drover.Spec, report.EnvSurvey, error) {
	f.env = envName
	e, err := a.open(f, nil)
	if err != nil {
		return nil, report.EnvSurvey{}, err
	}
	defer e.close()
	st, err := e.runner.Status(ctx)
	if err != nil {
		return nil, report.EnvSurvey{}, err
	}
	return e.spec, report.Survey(e.spec.Groups, st.Hosts), nil
}

func (a *app) diffCmd() *cobra.Command {
	var f specFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "diff ENV-A ENV-B",
		Short: "Compare release, version and config per group between two environments",
		Long: `diff surveys the hosts of two environments of one drover.yaml (environments:)
and compares, group by group, which releases, versions and config hashes they
run. Config is rendered per host, so hosts with their own vars differ in config
hash by design; the comparison says whether the sets are the same. Use "" for
the top-level fleet without an environment.`,
		Example: `  drover diff staging production
  drover diff staging production --json | jq '.groups[] | select(.differs != [])'`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &usageError{fmt.Errorf("diff takes two environment names, got %d arguments", len(args))}
			}
			if f.env != "" {
				return &usageError{fmt.Errorf("diff takes its environments as arguments, not --env")}
			}
			specA, surveyA, err := a.surveyEnv(c.Context(), f, args[0])
			if err != nil {
				return err
			}
			_, surveyB, err := a.surveyEnv(c.Context(), f, args[1])
			if err != nil {
				return err
			}
			d := report.Diff(specA.Service, args[0], args[1], surveyA, surveyB)
			if d.Unreachable > 0 {
				a.exit(drover.ExitNeedsPerson)
			}
			if asJSON {
				return writeJSON(a.stdout, d)
			}
			side := func(s *report.EnvSide, m func(*report.EnvSide) map[string]int) string {
				if s == nil {
					return "(no such group)"
				}
				var parts []string
				for _, k := range keysOf(m(s)) {
					n := m(s)[k]
					k = termSafe(k)
					if k != "-" && len(k) > 20 && !strings.Contains(k, ".") {
						parts = append(parts, fmt.Sprintf("%s…×%d", k[:8], n))
						continue
					}
					parts = append(parts, fmt.Sprintf("%s×%d", k, n))
				}
				if s.Unreachable > 0 {
					parts = append(parts, fmt.Sprintf("%d unreachable", s.Unreachable))
				}
				return strings.Join(parts, ", ")
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "GROUP\tVERSION %s\tVERSION %s\tRELEASE %s\tRELEASE %s\tCONFIG %s\tCONFIG %s\tDIFFERS\n", args[0], args[1], args[0], args[1], args[0], args[1])
			differ := 0
			for _, g := range d.Groups {
				versions := func(s *report.EnvSide) map[string]int { return s.Versions }
				releases := func(s *report.EnvSide) map[string]int { return s.Releases }
				configs := func(s *report.EnvSide) map[string]int { return s.ConfigHashes }
				what := "same"
				if len(g.Differs) > 0 {
					what = strings.Join(g.Differs, ", ")
					differ++
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Group, side(g.A, versions), side(g.B, versions),
					side(g.A, releases), side(g.B, releases), side(g.A, configs), side(g.B, configs), what)
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "%d of %d groups differ between %s and %s\n", differ, len(d.Groups), args[0], args[1])
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func keysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// historyReader is st's drover.HistoryReader; every store drover opens is
// one.
func historyReader(st drover.Store) (drover.HistoryReader, error) {
	hr, ok := st.(drover.HistoryReader)
	if !ok {
		return nil, drover.Errorf(drover.EINTERNAL, "store %T cannot answer history queries", st)
	}
	return hr, nil
}
