package main

// Golden tests of the NDJSON event stream (--output json), the contract CI
// systems parse: the real binary deploys, halts and rolls back a fleet of
// two local hosts, one step at a time so the order of events is fixed,
// and the normalized stream is compared with testdata/events_*.golden.
// `go test ./cmd/drover -run Events -update` rewrites the files.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"drover"
	"drover/internal/localfleet"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// sequentialGroups promote one host at a time and stage one at a time, so
// the event stream of a run has one possible order.
const sequentialGroups = `groups:
  - name: canary
    hosts: [h01]
    batch: 1
    failure_limit: 0
  - name: default
    hosts: ["h*"]
    batch: 1
    failure_limit: 0
`

func TestEventsGolden(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: sequentialGroups, ExtraYAML: "stage_parallelism: 1\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	v1 := writeRelease(t, f, "1.0.0", true)
	// v2's restart hook fails on h02: the canary is switched, h02 fails,
	// the limit of 0 is exceeded, and both go back to 1.0.0.
	v2 := writeRelease(t, f, "2.0.0", true)
	breakRestartOn(t, v2, "h02")
	v3 := writeRelease(t, f, "3.0.0", true)

	steps := []struct {
		golden string
		args   []string
		code   int
	}{
		{"events_deploy", []string{"deploy", "-c", f.Config, "--release", v1, "--output", "json"}, drover.ExitOK},
		{"events_halt", []string{"deploy", "-c", f.Config, "--release", v2, "--output", "json"}, drover.ExitRolledBack},
		{"", []string{"deploy", "-c", f.Config, "--release", v3, "--output", "json"}, drover.ExitOK},
		{"events_rollback", []string{"rollback", "-c", f.Config, "--yes", "--output", "json"}, drover.ExitOK},
	}
	for _, s := range steps {
		r := runDrover(t, s.args...)
		mustExit(t, r, s.code)
		events := parseEvents(t, r.stdout)
		checkEventContract(t, events)
		if s.golden == "" {
			continue
		}
		got := normalizeEvents(t, f, events)
		compareGolden(t, filepath.Join("testdata", s.golden+".golden"), got)
	}
}

// breakRestartOn makes the release's restart hook fail on one host.
func breakRestartOn(t *testing.T, src, host string) {
	t.Helper()
	p := filepath.Join(src, "bin", "restart")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "set -eu\n", "set -eu\ncase \"${1:-}\" in */hosts/"+host+"/*) echo \"restart refused on "+host+"\" >&2; exit 1;; esac\n", 1)
	if s == string(b) {
		t.Fatalf("bin/restart has no `set -eu` line to add to:\n%s", b)
	}
	if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
}

func parseEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("--output json line is not JSON: %v\n%s", err, sc.Text())
		}
		events = append(events, m)
	}
	if len(events) == 0 {
		t.Fatal("no events")
	}
	return events
}

// checkEventContract holds for every stream, golden or not: a schema
// version on every line, documented kinds only, one deploy_start first
// and one result last.
func checkEventContract(t *testing.T, events []map[string]any) {
	t.Helper()
	doc := readEventsDoc(t)
	for i, e := range events {
		if e["schema"] != float64(drover.EventSchema) {
			t.Errorf("event %d has schema %v, want %d: %v", i, e["schema"], drover.EventSchema, e)
		}
		kind, _ := e["kind"].(string)
		if !regexp.MustCompile("(?m)^### .*`" + regexp.QuoteMeta(kind) + "`").MatchString(doc) {
			t.Errorf("event kind %q is not documented in docs/events.md", kind)
		}
		for field := range e {
			if !strings.Contains(doc, "`"+field+"`") {
				t.Errorf("field %q of %s is not documented in docs/events.md", field, kind)
			}
		}
	}
	if k := events[0]["kind"]; k != drover.EventDeployStart {
		t.Errorf("first event is %v, want deploy_start", k)
	}
	if k := events[len(events)-1]["kind"]; k != "result" {
		t.Errorf("last event is %v, want result", k)
	}
}

func readEventsDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "events.md"))
	if err != nil {
		t.Fatalf("the event schema is documented in docs/events.md: %v", err)
	}
	return string(b)
}

var (
	reReleaseID = regexp.MustCompile(`\b(\d+\.\d+\.\d+)-[0-9a-f]{12}(\+[0-9a-f]{8})?\b`)
	reDeployID  = regexp.MustCompile(`\bd-\d{8}T\d{6}-[0-9a-f]{4}(-[a-z]+)?\b`)
	reDuration  = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s|m)\b`)
	reClock     = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?`)
)

// normalizeEvents replaces what differs between runs — times, deploy ids,
// durations, content hashes, paths and ports — with stable words, and
// prints one event per line with sorted keys.
func normalizeEvents(t *testing.T, f *localfleet.Fleet, events []map[string]any) string {
	t.Helper()
	ids := map[string]string{}
	var fix func(v any) any
	fix = func(v any) any {
		switch x := v.(type) {
		case string:
			x = strings.ReplaceAll(x, f.Dir, "FLEET")
			for _, h := range f.Hosts {
				x = strings.ReplaceAll(x, fmt.Sprint(h.Port), "PORT")
			}
			x = reReleaseID.ReplaceAllString(x, "${1}-HASH")
			x = reDeployID.ReplaceAllStringFunc(x, func(id string) string {
				if _, ok := ids[id]; !ok {
					ids[id] = fmt.Sprintf("DEPLOY%d", len(ids)+1)
				}
				return ids[id]
			})
			x = reClock.ReplaceAllString(x, "TIME")
			return reDuration.ReplaceAllString(x, "DUR")
		case []any:
			for i := range x {
				x[i] = fix(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = fix(x[k])
			}
		}
		return v
	}
	var b strings.Builder
	for _, e := range events {
		if _, ok := e["time"]; ok {
			e["time"] = "TIME"
		}
		if _, ok := e["elapsed_ns"]; ok {
			e["elapsed_ns"] = "ELAPSED"
		}
		fix(e)
		line, err := json.Marshal(e) // maps marshal with sorted keys
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update to accept):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff shows the lines that differ, numbered.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d\n- %s\n+ %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
