package runview

import (
	"bytes"
	"encoding/json"
	"fmt"

	"drover"
)

// DecodeEvents reads events in the --output json form, one object a line
// (docs/events.md), as the fixtures in testdata/ hold them. Lines that are
// not events (the final summary) are skipped.
func DecodeEvents(data []byte) ([]drover.Event, error) {
	var out []drover.Event
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var e drover.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if e.Kind == "" {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// Fold folds events into a new view; a deploy_start begins the view anew,
// so the view is of the last run the events begin.
func Fold(events []drover.Event) *View {
	v := New()
	for _, e := range events {
		v.Apply(e)
	}
	return v
}
