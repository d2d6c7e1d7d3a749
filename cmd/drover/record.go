package main

// Where a run's record goes besides the terminal: the store (sqlite by
// default), the structured event log and webhooks; and the message
// recorded with a deploy.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"drover"
	"drover/config"
	"drover/notify"
	"drover/store/etcd"
	"drover/store/file"
	"drover/store/sqlite"
)

// openStore opens the spec's store in dir: sqlite (state_dir/drover.db)
// unless drover.yaml says store: file, or store: {etcd: ...} (dir unused).
func openStore(spec *drover.Spec, eo etcd.Options, dir string) (drover.Store, error) {
	switch spec.Store {
	case drover.StoreFile:
		return file.Open(dir)
	case "", drover.StoreSQLite:
		return sqlite.Open(filepath.Join(dir, sqlite.FileName))
	case drover.StoreEtcd:
		return etcd.Open(eo)
	}
	return nil, drover.Errorf(drover.EINVALID, "store %q is not available in this build", spec.Store).At(spec.Source).WithHint("use store: sqlite, store: file or store: {etcd: ...}")
}

// webhookCloseTimeout bounds how long the end of a run waits for webhook
// deliveries still queued or being retried.
const webhookCloseTimeout = 15 * time.Second

// observe adds the structured log and the webhooks to a run's events. A
// command that reports no events (sink nil: status, plan, history) logs
// and notifies nothing. The returned func flushes and closes them; call it
// once the run is over.
func (a *app) observe(spec *drover.Spec, ad config.Adapters, sink drover.EventSink) (drover.EventSink, func(), error) {
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
	logFile, format := ad.Log.File, ad.Log.Format
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
	if len(ad.Webhooks) > 0 {
		hooks, err := notify.New(ad.Webhooks, notify.Options{
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
