package promfleet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigHasOneLabelledTargetPerHost(t *testing.T) {
	s := &Server{dir: t.TempDir(), o: Options{ScrapeInterval: 500 * time.Millisecond}}
	if err := s.writeConfig([]Target{{Host: "h01", Address: "127.0.0.1:18001"}, {Host: "h02", Address: "127.0.0.1:18002"}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scrape_interval: 500ms", `- targets: ["127.0.0.1:18001"]`, `labels: {host: "h02"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("prometheus.yml lacks %q:\n%s", want, b)
		}
	}
}

// A binary that cannot run is an error naming it.
func TestStartNamesMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), Binary: filepath.Join(t.TempDir(), "no-prometheus")})
	if err == nil || !strings.Contains(err.Error(), "no-prometheus") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadIsBoundedAndStops(t *testing.T) {
	stop := Load([]string{"http://127.0.0.1:1/"}, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	sent, failed := stop()
	if sent == 0 || failed != sent {
		t.Errorf("sent %d, failed %d: every request to a closed port fails", sent, failed)
	}
	if sent > 20 {
		t.Errorf("sent %d requests in ~100ms at one per 10ms: not paced", sent)
	}
}
