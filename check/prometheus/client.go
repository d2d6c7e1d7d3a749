// Package prometheus reads metrics from a Prometheus server through its
// HTTP API (/api/v1/query and /api/v1/query_range) and judges canaries
// with them: static thresholds, a comparison of the canary hosts with the
// rest of the fleet (Mann–Whitney U, as Kayenta does), trends, and
// freshness. It implements drover.Analyzer.
//
// The model: an analysis is one PromQL query whose series carry a host
// label (HostLabel, "host" by default). The series of the hosts being
// judged are the canary; for a baseline analysis, the series of the other
// hosts are the baseline, over the same window. A query rendered per host
// (its template uses .Host) judges the host it was rendered for.
//
// Missing data is reported as drover.AnalysisNoData, never as a pass: the
// caller decides (fail, unless the analysis says on_no_data: pass). A NaN
// value (an error ratio of 0/0 when a host served nothing) is no data too.
package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"drover"
)

// Client queries the HTTP API of Prometheus servers.
type Client struct {
	// HTTP is the client used; nil means one with a 30s timeout. Each
	// call is also bounded by its context.
	HTTP *http.Client
}

// Series is one labelled time series of a query result.
type Series struct {
	Labels map[string]string
	Points []Point
}

// Point is one sample.
type Point struct {
	T time.Time
	V float64
}

// maxBody bounds a response read: a query returning the whole TSDB must
// not take drover's memory with it.
const maxBody = 32 << 20

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// Query runs an instant query at time at. A vector result has one point
// per series; a scalar becomes one series without labels.
func (c *Client) Query(ctx context.Context, base, query string, at time.Time) ([]Series, error) {
	v := url.Values{"query": {query}, "time": {formatTime(at)}}
	return c.do(ctx, base, "/api/v1/query", v, query)
}

// QueryRange runs a range query from start to end at resolution step.
func (c *Client) QueryRange(ctx context.Context, base, query string, start, end time.Time, step time.Duration) ([]Series, error) {
	if step <= 0 {
		step = time.Second
	}
	v := url.Values{
		"query": {query}, "start": {formatTime(start)}, "end": {formatTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	return c.do(ctx, base, "/api/v1/query_range", v, query)
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64)
}

// apiResponse is the envelope of every Prometheus API answer.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

type apiData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type apiSeries struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

func (c *Client) do(ctx context.Context, base, path string, form url.Values, query string) ([]Series, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + path)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, drover.Errorf(drover.EINVALID, "prometheus %q is not an http(s) URL", base)
	}
	where := "prometheus " + u.Host
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "%s: %v", where, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http().Do(req)
	if err != nil {
		code := drover.EFAILED
		if ctx.Err() != nil {
			code = drover.ETIMEOUT
		}
		return nil, &drover.Error{Code: code, Message: where + ": query " + strconv.Quote(query), Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &drover.Error{Code: drover.EFAILED, Message: where + ": reading the answer", Err: err}
	}
	if len(body) > maxBody {
		return nil, drover.Errorf(drover.EFAILED, "%s: the answer to %q is larger than %d MiB; narrow the query", where, query, maxBody>>20)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, drover.Errorf(drover.EFAILED, "%s: HTTP %d, not a Prometheus API answer: %s", where, resp.StatusCode, snippet(body))
	}
	if r.Status != "success" {
		return nil, drover.Errorf(drover.EFAILED, "%s: query %q refused (%s): %s", where, query, r.ErrorType, r.Error)
	}
	var d apiData
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return nil, drover.Errorf(drover.EFAILED, "%s: malformed data: %v", where, err)
	}
	return parseResult(d)
}

func parseResult(d apiData) ([]Series, error) {
	bad := func(err error) ([]Series, error) {
		return nil, drover.Errorf(drover.EFAILED, "prometheus: malformed %s result: %v", d.ResultType, err)
	}
	switch d.ResultType {
	case "scalar":
		var v []any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return bad(err)
		}
		p, err := parsePoint(v)
		if err != nil {
			return bad(err)
		}
		return []Series{{Labels: map[string]string{}, Points: []Point{p}}}, nil
	case "vector", "matrix":
	default:
		return nil, drover.Errorf(drover.EFAILED, "prometheus: result type %q; the query must return numbers", d.ResultType)
	}
	var raw []apiSeries
	if err := json.Unmarshal(d.Result, &raw); err != nil {
		return bad(err)
	}
	out := make([]Series, 0, len(raw))
	for _, s := range raw {
		ser := Series{Labels: s.Metric}
		if ser.Labels == nil {
			ser.Labels = map[string]string{}
		}
		if d.ResultType == "vector" {
			p, err := parsePoint(s.Value)
			if err != nil {
				return bad(err)
			}
			ser.Points = []Point{p}
		} else {
			for _, v := range s.Values {
				p, err := parsePoint(v)
				if err != nil {
					return bad(err)
				}
				ser.Points = append(ser.Points, p)
			}
		}
		out = append(out, ser)
	}
	return out, nil
}

// parsePoint reads [<unix seconds>, "<value>"].
func parsePoint(v []any) (Point, error) {
	if len(v) != 2 {
		return Point{}, fmt.Errorf("a sample has %d parts, want 2", len(v))
	}
	ts, ok := v[0].(float64)
	if !ok {
		return Point{}, fmt.Errorf("timestamp %v is not a number", v[0])
	}
	s, ok := v[1].(string)
	if !ok {
		return Point{}, fmt.Errorf("value %v is not a string", v[1])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return Point{}, fmt.Errorf("value %q: %v", s, err)
	}
	sec := int64(ts)
	return Point{T: time.Unix(sec, int64((ts-float64(sec))*1e9)), V: f}, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}
