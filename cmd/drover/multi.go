package main

// Several services (or pools) in one run: `-c a.yaml -c b.yaml`, or `-c
// dir/` for every *.yaml in a directory. Every config is opened and its
// release resolved before any host is touched, so a bad file stops the
// whole run with exit 2 and nothing changed. Then the services run in
// parallel, at most --parallel at once, each with its own lock, its own
// events (prefixed with the service's name) and its own verdict, printed
// in the order the configs were given. The run's exit code is the worst
// of them, in this order: 3 (needs a person), 1 (rolled back), 4 (hosts
// failed and were restored), 5 (locked), 2 (bad input), 0.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/spf13/cobra"

	"drover"
	"drover/runner"
)

// DefaultParallelServices is --parallel's default.
const DefaultParallelServices = 4

// configList is -c on commands that take several configs. The first -c
// replaces the default; f.config is always the first, so everything that
// reads one config (completion, the single-service path) sees it.
type configList struct {
	f        *specFlags
	list     []string
	parallel int
}

func (c *configList) String() string { return c.f.config }
func (c *configList) Type() string   { return "string" }
func (c *configList) Set(v string) error {
	c.list = append(c.list, v)
	c.f.config = c.list[0]
	return nil
}

// multiConfig makes -c of c repeatable and adds --parallel.
func (a *app) multiConfig(c *cobra.Command, f *specFlags) *configList {
	cl := &configList{f: f}
	fl := c.Flags().Lookup("config")
	fl.Value = cl
	fl.Usage = "the config file; repeat -c, or name a directory (every *.yaml in it), to run several services at once"
	c.Flags().IntVar(&cl.parallel, "parallel", DefaultParallelServices, "with several configs: how many services run at once")
	return cl
}

// files returns the config files to run and whether this is a run of
// several: one -c naming a file (or none) is the single-service path,
// unchanged.
func (c *configList) files() ([]string, bool, error) {
	if len(c.list) <= 1 {
		if info, err := os.Stat(c.f.config); err != nil || !info.IsDir() {
			return []string{c.f.config}, false, nil
		}
	}
	var out []string
	for _, p := range c.list {
		info, err := os.Stat(p)
		if err != nil || !info.IsDir() {
			out = append(out, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.yaml"))
		if err != nil {
			return nil, true, err
		}
		sort.Strings(matches)
		if len(matches) == 0 {
			return nil, true, drover.Errorf(drover.EINVALID, "-c %s: the directory holds no *.yaml file", p).WithHint("name config files, or a directory of them")
		}
		out = append(out, matches...)
	}
	seen := map[string]bool{}
	for _, p := range out {
		abs, _ := filepath.Abs(p)
		if seen[abs] {
			return nil, true, drover.Errorf(drover.EINVALID, "-c %s is given twice", p).WithHint("name each config once")
		}
		seen[abs] = true
	}
	if c.parallel < 1 {
		return nil, true, &usageError{fmt.Errorf("--parallel %d: want 1 or more", c.parallel)}
	}
	return out, true, nil
}

// service is one config of a multi-service run.
type service struct {
	file string
	name string
	e    *env
	p    eventOutput
	// buf holds the service's verdict, printed once every service ended.
	buf  bytes.Buffer
	code int
	rel  *drover.Release
	done func()
	// overrides are the override flags checked against this service's spec.
	overrides []drover.Override
}

// multiRun runs do for every config, under cap, and prints the verdicts.
// prepare runs for every service before any do, and may refuse the run.
func (a *app) multiRun(ctx context.Context, files []string, f specFlags, output string, parallel int,
	prepare func(s *service) error, do func(ctx context.Context, s *service) error) error {
	st, err := a.style(a.stdout)
	if err != nil {
		return err
	}
	if output != "" && output != "text" && output != "json" {
		return &usageError{fmt.Errorf("--output %q: want text or json", output)}
	}
	shared := &lockedWriter{w: a.stdout}
	var svcs []*service
	defer func() {
		for _, s := range svcs {
			if s.done != nil {
				s.done()
			}
			s.e.close()
		}
	}()
	keys := map[string]string{}
	for _, file := range files {
		sf := f
		sf.config = file
		s := &service{file: file}
		pw := &prefixWriter{w: shared}
		s.p = &printer{w: pw, json: output == "json", style: st}
		e, err := a.open(sf, s.p)
		if err != nil {
			return err
		}
		s.e, s.name = e, runner.Key(e.spec)
		svcs = append(svcs, s)
		if output != "json" {
			pw.prefix = "[" + s.name + "] "
		}
		dir, _ := stateDir(e.spec)
		key := dir + "\x00" + runner.Key(e.spec)
		if prev, dup := keys[key]; dup {
			return drover.Errorf(drover.EINVALID, "%s and %s both deploy %s with one state directory: they would wait on one lock", prev, file, s.name).
				WithHint("deploy them in separate runs, or give the pools their own service names or state_dir")
		}
		keys[key] = file
		if err := prepare(s); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}

	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := do(ctx, s); err != nil {
				s.code = drover.ExitCode(err)
				var ue *usageError
				if errors.As(err, &ue) {
					s.code = drover.ExitUsage
				}
				es, _ := a.style(a.stderr)
				var b bytes.Buffer
				writeError(&b, err, es)
				s.buf.Write(b.Bytes())
			}
		}()
	}
	wg.Wait()

	codes := make([]int, 0, len(svcs))
	for _, s := range svcs {
		if output != "json" {
			fmt.Fprintf(a.stdout, "\n== %s (%s): exit %d\n", s.name, s.file, s.code)
			a.stdout.Write(bytes.TrimLeft(s.buf.Bytes(), "\n"))
		} else {
			a.stdout.Write(s.buf.Bytes())
		}
		codes = append(codes, s.code)
	}
	worst := drover.WorstExit(codes)
	if output != "json" {
		fmt.Fprintf(a.stdout, "\n%d services: exit %d\n", len(svcs), worst)
	}
	a.exit(worst)
	return nil
}

// deployMulti is `drover deploy` with several configs.
func (a *app) deployMulti(c *cobra.Command, files []string, f *deployFlags, parallel int) error {
	return a.multiRun(c.Context(), files, f.specFlags, f.output, parallel,
		func(s *service) error {
			if err := a.checkConfirm(s.e.spec, f.limit, f.yes); err != nil {
				return err
			}
			overrides, err := f.overrides(s.e.spec)
			if err != nil {
				return err
			}
			s.overrides = overrides
			s.e.runner.Confirm = a.confirmer(c.Context(), f.yes, s.p)
			rel, cleanup, err := resolveRelease(c.Context(), f, s.e)
			if err != nil {
				return err
			}
			s.rel, s.done = rel, cleanup
			return nil
		},
		func(ctx context.Context, s *service) error {
			out, err := s.e.runner.Deploy(ctx, runner.DeployOptions{Release: s.rel, Limit: f.limit, Force: f.force, Message: f.message, Overrides: s.overrides})
			if err != nil {
				return err
			}
			st, _ := a.style(a.stdout)
			var shown *shownErrors // the failures its printer showed in full
			if pp, ok := s.p.(*printer); ok {
				shown = &pp.shown
			}
			for _, r := range verdictsOf(out) {
				writeVerdict(&s.buf, f.output == "json", st, r, shown)
			}
			s.code = out.ExitCode
			return nil
		})
}

// lockedWriter serializes writes of several printers to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// prefixWriter writes whole lines, each with prefix, so the events of
// services running at once stay readable.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	part   []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.part = append(p.part, b...)
	var out []byte
	for {
		i := bytes.IndexByte(p.part, '\n')
		if i < 0 {
			break
		}
		line := p.part[:i+1]
		if len(bytes.TrimSpace(line)) > 0 {
			out = append(out, p.prefix...)
		}
		out = append(out, line...)
		p.part = p.part[i+1:]
	}
	p.part = slices.Clone(p.part)
	if len(out) > 0 {
		if _, err := p.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
