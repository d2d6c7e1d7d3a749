package hello

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ShutdownTimeout bounds a graceful shutdown: in-flight requests get this
// long to finish after SIGTERM before the server closes them. It is kept
// below the 5s bin/restart waits before it sends KILL, so a normal stop
// never needs KILL.
const ShutdownTimeout = 4 * time.Second

// Exit codes of Main.
const (
	ExitOK     = 0
	ExitFailed = 1 // bad config file, or the server could not run
	ExitUsage  = 2
)

// Main runs the sample service, or with -check only validates its config
// file. It is `drover sample-service` and examples/hello/cmd/hello.
//
//	-config FILE   the config file (required; may also be given as the
//	               only positional argument, as in `bin/hello FILE -check`)
//	-check         validate FILE, print the verdict and exit 0 or 1
//
// The server stops gracefully on SIGTERM, SIGINT or when ctx is done and
// then returns 0.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sample-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config `file` (key = value lines)")
	check := fs.Bool("check", false, "validate the config file and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sample-service -config FILE [-check]")
		fs.PrintDefaults()
	}
	// flag stops at the first positional argument; keep parsing after it so
	// both `-check -config F` and `F -check` work.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return ExitOK
			}
			return ExitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case *configPath == "" && len(positional) == 1:
		*configPath = positional[0]
	case len(positional) > 0:
		fmt.Fprintf(stderr, "sample-service: unexpected arguments %q\n", positional)
		fs.Usage()
		return ExitUsage
	case *configPath == "":
		fmt.Fprintln(stderr, "sample-service: -config FILE is required")
		fs.Usage()
		return ExitUsage
	}

	c, err := LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "sample-service: invalid config:\n%v\n", err)
		return ExitFailed
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (version %s, %s, health %s)\n", *configPath, c.Version, c.Addr(), c.Health)
		return ExitOK
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Serve(ctx, c, stderr); err != nil {
		fmt.Fprintf(stderr, "sample-service: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}

// Serve listens on c.Addr() and serves until ctx is done, then shuts down
// gracefully: it stops accepting, lets in-flight requests finish for up to
// ShutdownTimeout, and returns nil. It logs start and stop to logw.
func Serve(ctx context.Context, c Config, logw io.Writer) error {
	ln, err := net.Listen("tcp", c.Addr())
	if err != nil {
		return err
	}
	return ServeListener(ctx, c, ln, logw)
}

// ServeListener is Serve on a listener the caller opened (tests use :0).
func ServeListener(ctx context.Context, c Config, ln net.Listener, logw io.Writer) error {
	counter := &requestCounter{}
	srv := &http.Server{
		Handler:           handler(c, counter),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(logw, "hello %s listening on %s (pid %d, health %s)\n", c.Version, ln.Addr(), os.Getpid(), c.Health)
	if c.StartupError != "" {
		fmt.Fprintf(logw, "hello %s: ERROR %s\n", c.Version, c.StartupError)
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	fmt.Fprintf(logw, "hello %s shutting down\n", c.Version)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running after the bound are cut off: a stop that
		// was asked for must finish, or the restart hook would KILL us.
		fmt.Fprintf(logw, "hello %s: graceful shutdown incomplete (%v), closing connections\n", c.Version, err)
		srv.Close()
	}
	<-errc // http.ErrServerClosed
	fmt.Fprintf(logw, "hello %s stopped: %s\n", c.Version, counter.summary())
	return nil
}

// Handler serves the service's endpoints:
//
//	GET /version  the version and a newline (what drover's checks compare)
//	GET /health   200 "ok\n", or 500 "unhealthy\n" when health = fail
//	GET /         the message and a newline (or 500, for the share of
//	              requests error_rate sets; see metrics.go)
//	GET /metrics  Prometheus metrics of / (metrics.go)
//	GET /stats    JSON: requests to / served by this process, and when
//	              the first and last arrived (Stats)
func Handler(c Config) http.Handler { return handler(c, &requestCounter{}) }

func handler(c Config, counter *requestCounter) http.Handler {
	mux := http.NewServeMux()
	text := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		// Checks poll these endpoints to decide a deploy; a cached answer
		// from the previous release would pass a broken one.
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, c.Version+"\n")
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if c.Health == HealthFail {
			text(w, http.StatusInternalServerError, "unhealthy\n")
			return
		}
		text(w, http.StatusOK, "ok\n")
	})
	m := newMetrics(c.Version, c.ErrorRate)
	mux.HandleFunc("GET /{$}", m.instrument(func(w http.ResponseWriter, r *http.Request) {
		counter.add(time.Now())
		text(w, http.StatusOK, c.Message+"\n")
	}))
	mux.Handle("GET /metrics", m)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(counter.stats(c.Version))
	})
	return mux
}
