package main

// The audit trail and the views over it: history, show, log, status
// --stragglers and diff; and where a run's record goes besides the
// terminal: the store (sqlite by default), the structured event log and
// webhooks.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"drover"
	"drover/notify"
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

// reader returns the store's HistoryReader, or one that answers the same
// questions by reading every record (store/file has no indexes; fine for
// the history one machine accumulates).
func reader(st drover.Store) drover.HistoryReader {
	if hr, ok := st.(drover.HistoryReader); ok {
		return hr
	}
	return scanReader{st}
}

// errNoLockHolder: the store cannot say who holds a lock.
var errNoLockHolder = errors.New("this store does not record lock holders")

// scanReader answers HistoryReader queries from Store's own methods.
type scanReader struct{ st drover.Store }

func (r scanReader) Deploys(ctx context.Context, q drover.DeployQuery) ([]drover.DeployRecord, error) {
	all, err := r.st.History(ctx, q.Key, 0)
	if err != nil {
		return nil, err
	}
	out := []drover.DeployRecord{}
	for _, d := range all {
		if !q.Since.IsZero() && d.Started.Before(q.Since) {
			continue
		}
		if q.Host != "" && !slicesContainsHost(d.Hosts, q.Host) {
			continue
		}
		out = append(out, d)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func slicesContainsHost(hs []drover.DeployHost, name string) bool {
	for _, h := range hs {
		if h.Name == name {
			return true
		}
	}
	return false
}

func (r scanReader) Steps(ctx context.Context, q drover.StepQuery) ([]drover.StepRecord, error) {
	var recs []drover.DeployRecord
	if q.DeployID != "" {
		d, err := r.st.Deploy(ctx, q.DeployID)
		if err != nil {
			return nil, err
		}
		if d.Key != q.Key {
			return []drover.StepRecord{}, nil
		}
		recs = []drover.DeployRecord{d}
	} else {
		all, err := r.st.History(ctx, q.Key, 0)
		if err != nil {
			return nil, err
		}
		recs = all
	}
	// History is newest first; steps are wanted in the order they ran.
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Started.Before(recs[j].Started) })
	out := []drover.StepRecord{}
	for _, d := range recs {
		j, err := r.st.Journal(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		for _, e := range j {
			switch {
			case q.Host != "" && e.Host != q.Host,
				q.Step != "" && e.Step != q.Step,
				!q.Since.IsZero() && e.At.Before(q.Since),
				q.Failed && (e.Phase != drover.PhaseDone || e.Outcome == "" || e.Outcome == "ok"):
				continue
			}
			out = append(out, drover.StepRecord{DeployID: d.ID, JournalEntry: e})
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

func (r scanReader) LockHolder(ctx context.Context, key string) (*drover.LockOwner, error) {
	return nil, errNoLockHolder
}

// Deploy statuses beyond the recorded outcomes, for deploys not finished.
const (
	statusRunning     = "running"
	statusInterrupted = "interrupted"
	statusUnknown     = "running or interrupted"
)

// deployStatus is a record's outcome, or for one that never finished,
// whether it is still running: only if the lock's recorded holder is this
// deploy and that process is alive on this machine. Otherwise its process
// died (kill -9, a crash, a reboot) and the next deploy or resume recovers
// it. A holder on another machine cannot be checked from here.
func deployStatus(d drover.DeployRecord, holder *drover.LockOwner, holderErr error) string {
	if !d.Finished.IsZero() {
		return d.Outcome
	}
	if holderErr != nil {
		return statusUnknown
	}
	if holder == nil || holder.DeployID != d.ID {
		return statusInterrupted
	}
	if host, _ := os.Hostname(); holder.Machine != host {
		return statusUnknown
	}
	if processAlive(holder.PID) {
		return statusRunning
	}
	return statusInterrupted
}

// processAlive reports whether pid is a live process on this machine.
// EPERM means it exists under another user.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// historyRow is a deploy as `history --json` prints it: the record with
// its status and duration.
type historyRow struct {
	drover.DeployRecord
	Status   string  `json:"status"`
	Duration float64 `json:"duration_s,omitempty"`
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
			hr := reader(e.store)
			recs, err := hr.Deploys(c.Context(), drover.DeployQuery{Key: key, Host: host, Since: t, Limit: limit})
			if err != nil {
				return err
			}
			holder, herr := hr.LockHolder(c.Context(), key)
			rows := make([]historyRow, 0, len(recs))
			for _, r := range recs {
				row := historyRow{DeployRecord: r, Status: deployStatus(r, holder, herr)}
				if !r.Finished.IsZero() {
					row.Duration = r.Finished.Sub(r.Started).Seconds()
				}
				rows = append(rows, row)
			}
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

// kindLabel is the KIND column of history: a deploy that skipped checks,
// analyses or gates is marked "deploy!" so that it stands out in a list
// where a plain "deploy" would hide that nothing checked it.
func kindLabel(d drover.DeployRecord) string {
	if len(d.Overrides) > 0 {
		return d.Kind + "!"
	}
	return d.Kind
}

// printHistory writes history's table: one line per deploy whatever its
// message or summary holds (a multi-line validate error, a tab, a
// terminal escape), so columns stay columns; `drover show` has the whole
// text.
func printHistory(w io.Writer, rows []historyRow) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPLOY\tKIND\tVERSION\tRELEASE\tSTATUS\tSTARTED\tTOOK\tBY\tMESSAGE\tSUMMARY")
	for _, r := range rows {
		took := ""
		if !r.Finished.IsZero() {
			took = r.Finished.Sub(r.Started).Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(r.ID, 0), oneLine(kindLabel(r.DeployRecord), 0), dash(oneLine(r.Version, 0)), dash(oneLine(r.Release, 0)), r.Status,
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

// stepView is one step of one host in `drover show`: its start and done
// entries joined.
type stepView struct {
	Step     string        `json:"step"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns,omitempty"`
	Outcome  string        `json:"outcome"`
	Reason   string        `json:"reason,omitempty"`
	Output   string        `json:"output,omitempty"`
}

type hostView struct {
	Name    string          `json:"name"`
	Group   string          `json:"group"`
	Before  drover.Snapshot `json:"before"`
	Skipped bool            `json:"skipped,omitempty"`
	Steps   []stepView      `json:"steps"`
}

type deployView struct {
	Deploy drover.DeployRecord `json:"deploy"`
	Status string              `json:"status"`
	Hosts  []hostView          `json:"hosts"`
	// Analyses are the deploy's canary analysis evaluations, in order.
	Analyses []drover.AnalysisEval `json:"analyses,omitempty"`
}

// timeline joins a journal into per-host step lists, hosts in the record's
// order. A start with no done is a step whose process died (or is still
// running): its outcome says so rather than leaving a blank.
func timeline(d drover.DeployRecord, j []drover.JournalEntry, status string) []hostView {
	var hosts []hostView
	index := map[string]int{}
	for _, h := range d.Hosts {
		index[h.Name] = len(hosts)
		hosts = append(hosts, hostView{Name: h.Name, Group: h.Group, Before: h.Before, Skipped: h.Skipped, Steps: []stepView{}})
	}
	open := map[string]int{} // host/step -> index of the step without a done yet
	for _, e := range j {
		if e.Analysis != nil {
			continue // an analysis evaluation: its own table (show_analysis.go)
		}
		i, ok := index[e.Host]
		if !ok {
			index[e.Host] = len(hosts)
			i = len(hosts)
			hosts = append(hosts, hostView{Name: e.Host, Steps: []stepView{}})
		}
		h := &hosts[i]
		k := e.Host + "/" + e.Step
		switch e.Phase {
		case drover.PhaseStart:
			open[k] = len(h.Steps)
			h.Steps = append(h.Steps, stepView{Step: e.Step, Started: e.At})
		default:
			si, ok := open[k]
			if !ok {
				h.Steps = append(h.Steps, stepView{Step: e.Step, Started: e.At})
				si = len(h.Steps) - 1
			}
			delete(open, k)
			s := &h.Steps[si]
			s.Finished, s.Outcome, s.Reason, s.Output, s.Elapsed = e.At, e.Outcome, e.Reason, e.Output, e.Elapsed
			if s.Elapsed == 0 {
				s.Elapsed = e.At.Sub(s.Started)
			}
		}
	}
	unfinished := "no result: " + status
	if status != statusRunning {
		unfinished = "no result: the process died"
	}
	for i := range hosts {
		for k := range hosts[i].Steps {
			if hosts[i].Steps[k].Finished.IsZero() {
				hosts[i].Steps[k].Outcome = unfinished
			}
		}
	}
	return hosts
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
			holder, herr := reader(e.store).LockHolder(c.Context(), d.Key)
			status := deployStatus(d, holder, herr)
			v := deployView{Deploy: d, Status: status, Hosts: timeline(d, j, status), Analyses: analysisEvals(j)}
			if asJSON {
				return writeJSON(a.stdout, v)
			}
			printDeploy(a.stdout, v)
			printAnalyses(a.stdout, v.Analyses)
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printDeploy(w io.Writer, v deployView) {
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
			steps, err := reader(e.store).Steps(c.Context(), drover.StepQuery{Key: runner.Key(e.spec), DeployID: deploy, Host: host, Step: step, Since: t, Failed: failed, Limit: limit})
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

// straggler is one host `status --stragglers` lists, with why.
type straggler struct {
	runner.HostStatus
	Reasons []string `json:"reasons"`
}

type stragglerReport struct {
	Service string `json:"service"`
	Env     string `json:"env,omitempty"`
	// Desired is the release the fleet should be on, and Basis says how it
	// was chosen.
	Desired string      `json:"desired"`
	Basis   string      `json:"basis"`
	Since   time.Time   `json:"since,omitempty"`
	Hosts   []straggler `json:"hosts"`
}

// releaseOf is the release ID of a slot: <release-id>[+<config hash>].
func releaseOf(slot string) string {
	id, _, _ := strings.Cut(slot, "+")
	return id
}

// desiredRelease decides which release the fleet should be on: the one
// the operator last rolled out successfully (a deploy that succeeded, or
// finished within its failure limit). Not the most common release: after
// `deploy --limit` to a third of the fleet, the most common release is the
// old one, and the hosts that were upgraded would be called stragglers.
// When the last successful change was a rollback (which targets each
// host's own previous release, not one release) or there is no history,
// the most common release among reachable hosts is taken.
func desiredRelease(ctx context.Context, st drover.Store, key string, hosts []runner.HostStatus) (release, basis string, err error) {
	recs, err := st.History(ctx, key, 0)
	if err != nil {
		return "", "", err
	}
	for _, r := range recs {
		if r.Finished.IsZero() || (r.Outcome != drover.OutcomeSucceeded && r.Outcome != drover.OutcomePartial) {
			continue
		}
		if r.Kind == drover.KindDeploy && r.Release != "" {
			return r.Release, fmt.Sprintf("the last successful deploy, %s (%s)", r.ID, r.Started.Local().Format("2006-01-02 15:04")), nil
		}
		if r.Kind == drover.KindRollback {
			break
		}
	}
	count := map[string]int{}
	for _, h := range hosts {
		if h.Reachable && h.Release != "" {
			count[releaseOf(h.Release)]++
		}
	}
	best := ""
	for rel, n := range count {
		if n > count[best] || n == count[best] && rel > best {
			best = rel
		}
	}
	if best == "" {
		return "", "", drover.Errorf(drover.ENOTFOUND, "no desired release: no successful deploy in the history and no host has a release").
			WithHint("name one with --release RELEASE-ID")
	}
	return best, "the most common release on the fleet (the last change was a rollback, or there is no deploy history)", nil
}

// stragglers lists hosts not on the desired release or, with since, not
// deployed since then; unreachable hosts are listed as unknown.
func (a *app) stragglers(ctx context.Context, e *env, since time.Time, want string, asJSON bool) error {
	st, err := e.runner.Status(ctx)
	if err != nil {
		return err
	}
	rep := stragglerReport{Service: st.Service, Env: st.Env, Since: since, Hosts: []straggler{}}
	if want != "" {
		rep.Desired, rep.Basis = want, "given with --release"
	} else if rep.Desired, rep.Basis, err = desiredRelease(ctx, e.store, runner.Key(e.spec), st.Hosts); err != nil {
		return err
	}
	unreachable := 0
	for _, h := range st.Hosts {
		var why []string
		switch {
		case !h.Reachable:
			unreachable++
			why = append(why, "unreachable: "+h.Error)
		case h.Release == "":
			why = append(why, "no release deployed")
		case releaseOf(h.Release) != rep.Desired:
			why = append(why, fmt.Sprintf("on %s, not %s", dash(h.Version)+" ("+releaseOf(h.Release)+")", rep.Desired))
		}
		if h.Reachable && !since.IsZero() && h.DeployedAt.Before(since) {
			last := "never deployed"
			if !h.DeployedAt.IsZero() {
				last = "last deployed " + h.DeployedAt.Local().Format("2006-01-02 15:04:05")
			}
			why = append(why, fmt.Sprintf("%s, before %s", last, since.Local().Format("2006-01-02 15:04:05")))
		}
		if len(why) > 0 {
			rep.Hosts = append(rep.Hosts, straggler{HostStatus: h, Reasons: why})
		}
	}
	if unreachable > 0 {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Group, dash(h.Version), deployed, dash(h.DeployID), strings.Join(h.Reasons, "; "))
	}
	tw.Flush()
	fmt.Fprintf(a.stdout, "%d of %d hosts are stragglers\n", len(rep.Hosts), len(st.Hosts))
	return nil
}

// envSide is one environment's hosts of one group, as `drover diff`
// compares them.
type envSide struct {
	Hosts        int            `json:"hosts"`
	Unreachable  int            `json:"unreachable,omitempty"`
	Releases     map[string]int `json:"releases"`
	Versions     map[string]int `json:"versions"`
	ConfigHashes map[string]int `json:"config_hashes"`
}

type groupDiff struct {
	Group string `json:"group"`
	// A and B are nil when the environment has no such group.
	A *envSide `json:"a"`
	B *envSide `json:"b"`
	// Differs names what is not the same: group, release, version, config.
	Differs []string `json:"differs"`
}

type envDiff struct {
	Service string      `json:"service"`
	A       string      `json:"env_a"`
	B       string      `json:"env_b"`
	Groups  []groupDiff `json:"groups"`
	// ReleaseA and ReleaseB are the one release every host of each runs
	// ("" when its hosts run several, or one is unreachable); SameRelease
	// says both run the same one, by release ID, which carries the
	// content hash: the same version built twice is not the same release.
	ReleaseA    string `json:"release_a"`
	ReleaseB    string `json:"release_b"`
	SameRelease bool   `json:"same_release"`
}

// oneRelease is the release every host of sides runs, "" when they run
// several, one runs none or one did not answer.
func oneRelease(sides map[string]*envSide) string {
	one := ""
	for _, s := range sides {
		if s.Unreachable > 0 {
			return ""
		}
		for rel := range s.Releases {
			if rel == "-" || (one != "" && rel != one) {
				return ""
			}
			one = rel
		}
	}
	return one
}

// sameReleaseLine says whether a and b run the same release.
func (d envDiff) sameReleaseLine() string {
	side := func(env, rel string) string {
		if rel == "" {
			return env + " runs no one release"
		}
		return env + " runs " + rel
	}
	if d.SameRelease {
		return fmt.Sprintf("%s and %s run the same release, %s", d.A, d.B, d.ReleaseA)
	}
	return fmt.Sprintf("not the same release: %s, %s", side(d.A, d.ReleaseA), side(d.B, d.ReleaseB))
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func keysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// survey reads every host of one environment, group by group, in the
// groups' order.
func (a *app) surveyEnv(ctx context.Context, f specFlags, envName string) (*drover.Spec, []string, map[string]*envSide, error) {
	f.env = envName
	e, err := a.open(f, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	defer e.close()
	st, err := e.runner.Status(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var order []string
	sides := map[string]*envSide{}
	for _, g := range e.spec.Groups {
		order = append(order, g.Name)
		sides[g.Name] = &envSide{Releases: map[string]int{}, Versions: map[string]int{}, ConfigHashes: map[string]int{}}
	}
	for _, h := range st.Hosts {
		s := sides[h.Group]
		if s == nil {
			continue
		}
		s.Hosts++
		if !h.Reachable {
			s.Unreachable++
			continue
		}
		s.Releases[dash(releaseOf(h.Release))]++
		s.Versions[dash(h.Version)]++
		s.ConfigHashes[dash(h.ConfigHash)]++
	}
	return e.spec, order, sides, nil
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
hash by design; the comparison says whether the sets are the same. The last
line says whether both run one and the same release on every host, by release
ID (the content hash: the same version built twice is not the same release).
Use "" for the top-level fleet without an environment.`,
		Example: `  drover diff staging production
  drover diff staging production --json | jq '.groups[] | select(.differs != [])'`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &usageError{fmt.Errorf("diff takes two environment names, got %d arguments", len(args))}
			}
			if f.env != "" {
				return &usageError{fmt.Errorf("diff takes its environments as arguments, not --env")}
			}
			specA, orderA, a1, err := a.surveyEnv(c.Context(), f, args[0])
			if err != nil {
				return err
			}
			_, orderB, b1, err := a.surveyEnv(c.Context(), f, args[1])
			if err != nil {
				return err
			}
			d := envDiff{Service: specA.Service, A: args[0], B: args[1], Groups: []groupDiff{}}
			seen := map[string]bool{}
			unreachable := 0
			for _, g := range append(orderA, orderB...) {
				if seen[g] {
					continue
				}
				seen[g] = true
				gd := groupDiff{Group: g, A: a1[g], B: b1[g], Differs: []string{}}
				for _, s := range []*envSide{gd.A, gd.B} {
					if s != nil {
						unreachable += s.Unreachable
					}
				}
				switch {
				case gd.A == nil || gd.B == nil:
					gd.Differs = append(gd.Differs, "group")
				default:
					if !sameCounts(gd.A.Releases, gd.B.Releases) {
						gd.Differs = append(gd.Differs, "release")
					}
					if !sameCounts(gd.A.Versions, gd.B.Versions) {
						gd.Differs = append(gd.Differs, "version")
					}
					if !sameCounts(gd.A.ConfigHashes, gd.B.ConfigHashes) {
						gd.Differs = append(gd.Differs, "config")
					}
				}
				d.Groups = append(d.Groups, gd)
			}
			d.ReleaseA, d.ReleaseB = oneRelease(a1), oneRelease(b1)
			d.SameRelease = d.ReleaseA != "" && d.ReleaseA == d.ReleaseB
			if unreachable > 0 {
				a.exit(drover.ExitNeedsPerson)
			}
			if asJSON {
				return writeJSON(a.stdout, d)
			}
			side := func(s *envSide, m func(*envSide) map[string]int) string {
				if s == nil {
					return "(no such group)"
				}
				var parts []string
				for _, k := range keysOf(m(s)) {
					if k != "-" && len(k) > 20 && !strings.Contains(k, ".") {
						parts = append(parts, fmt.Sprintf("%s…×%d", k[:8], m(s)[k]))
						continue
					}
					parts = append(parts, fmt.Sprintf("%s×%d", k, m(s)[k]))
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
				versions := func(s *envSide) map[string]int { return s.Versions }
				releases := func(s *envSide) map[string]int { return s.Releases }
				configs := func(s *envSide) map[string]int { return s.ConfigHashes }
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
			fmt.Fprintln(a.stdout, d.sameReleaseLine())
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
