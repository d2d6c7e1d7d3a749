package hello

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func serve(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// error_rate = 0.2 fails exactly every 5th request to /, and only /:
// checks on /health and /version still pass, so only metrics tell.
func TestErrorRateIsDeterministic(t *testing.T) {
	h := Handler(Config{Port: 1, Version: "1.0", Message: "hi", Health: HealthOK, ErrorRate: 0.2})
	var codes []int
	for i := 0; i < 20; i++ {
		code, _ := serve(t, h, "/")
		codes = append(codes, code)
	}
	for i, c := range codes {
		want := 200
		if (i+1)%5 == 0 {
			want = 500
		}
		if c != want {
			t.Fatalf("request %d: %d, want %d (all: %v)", i+1, c, want, codes)
		}
	}
	if code, _ := serve(t, h, "/health"); code != 200 {
		t.Errorf("/health %d", code)
	}
	_, m := serve(t, h, "/metrics")
	for _, want := range []string{
		`hello_http_requests_total{code="200"} 16`,
		`hello_http_requests_total{code="500"} 4`,
		`hello_http_request_duration_seconds_count 20`,
		`hello_http_request_duration_seconds_bucket{le="+Inf"} 20`,
		`hello_build_info{version="1.0"} 1`,
		"# TYPE hello_http_request_duration_seconds histogram",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, m)
		}
	}
	rss := regexp.MustCompile(`(?m)^process_resident_memory_bytes (\d+)$`).FindStringSubmatch(m)
	if rss == nil {
		t.Fatalf("no resident memory in\n%s", m)
	}
	if n, _ := strconv.ParseUint(rss[1], 10, 64); n < 1<<20 {
		t.Errorf("resident memory %d bytes: implausible", n)
	}
}

// Every line of the exposition is a comment or `name{labels} value`, and
// histogram buckets never decrease: what Prometheus's parser requires.
func TestMetricsExpositionFormat(t *testing.T) {
	h := Handler(Config{Port: 1, Version: "1.0", Health: HealthOK})
	_, m := serve(t, h, "/metrics")
	if !strings.Contains(m, `hello_http_requests_total{code="200"} 0`) {
		t.Errorf("no zero series before the first request:\n%s", m)
	}
	serve(t, h, "/")
	_, m = serve(t, h, "/metrics")
	line := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? [-+0-9.eE]+(Inf)?$`)
	prev := -1.0
	for _, l := range strings.Split(strings.TrimSuffix(m, "\n"), "\n") {
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			continue
		}
		if !line.MatchString(l) {
			t.Errorf("bad line %q", l)
		}
		if strings.HasPrefix(l, "hello_http_request_duration_seconds_bucket") {
			v, _ := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
			if v < prev {
				t.Errorf("bucket %q below the previous one", l)
			}
			prev = v
		}
	}
}

func TestConfigErrorRate(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("port = 1\nversion = v\nerror_rate = 0.25\n"), "hello.conf")
	if err != nil || c.ErrorRate != 0.25 {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"1.5", "-0.1", "lots"} {
		_, err := ParseConfig(strings.NewReader("port = 1\nversion = v\nerror_rate = "+bad+"\n"), "hello.conf")
		if err == nil || !strings.Contains(err.Error(), "hello.conf:3: error_rate must be a number from 0 to 1") {
			t.Errorf("error_rate = %s: %v", bad, err)
		}
	}
}

func TestWriteReleaseWithErrorRate(t *testing.T) {
	dir := t.TempDir()
	if err := WriteReleaseWith(dir, "2.0", ReleaseOptions{ErrorRate: 0.2}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ConfigTemplate))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nerror_rate = 0.2\n") || !strings.Contains(string(data), "health = ok") {
		t.Errorf("template:\n%s", data)
	}
	if err := WriteReleaseWith(dir, "2.0", ReleaseOptions{ErrorRate: 2}); err == nil {
		t.Error("error rate 2 accepted")
	}
}
