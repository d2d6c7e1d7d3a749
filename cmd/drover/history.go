package main

// The audit trail: history and log (show.go, stragglers.go and diff.go
// print the other views over it; report/ computes them).

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"drover"
	"drover/report"
	"drover/runner"
)

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

// historyReader is st's drover.HistoryReader; every store drover opens is
// one.
func historyReader(st drover.Store) (drover.HistoryReader, error) {
	hr, ok := st.(drover.HistoryReader)
	if !ok {
		return nil, drover.Errorf(drover.EINTERNAL, "store %T cannot answer history queries", st)
	}
	return hr, nil
}
