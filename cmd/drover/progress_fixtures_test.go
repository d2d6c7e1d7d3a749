package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drover/runview"
)

// TestProgressFixtures draws the run-view fixtures (runview/testdata, the
// same event files the server's view tests serve to the dashboard) on a
// terminal: the log lines, then the final screen at the last event's time.
func TestProgressFixtures(t *testing.T) {
	files, err := filepath.Glob("../../runview/testdata/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no run-view fixtures: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := runview.DecodeEvents(b)
			if err != nil {
				t.Fatal(err)
			}
			p := newProgress(style{})
			var out []string
			for _, e := range evs {
				if e.Kind == "deploy_start" && p.started() {
					p = newProgress(style{})
				}
				p.apply(e)
			}
			out = append(out, p.takeLog()...)
			out = append(out, "----")
			out = append(out, p.lines(100, 0, evs[len(evs)-1].Time)...)
			got := []byte(strings.Join(out, "\n") + "\n")
			path := filepath.Join("testdata", "progress_"+name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./cmd/drover -run TestProgressFixtures -update writes it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("screen of %s differs from %s:\n%s", name, path, got)
			}
		})
	}
}
