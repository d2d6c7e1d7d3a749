package runner

import (
	"context"
	"strings"
	"testing"
)

// TestConvergeSummarySingular: the usual converge, one round, says "1
// round", not "1 rounds" (issue 17 point 14).
func TestConvergeSummarySingular(t *testing.T) {
	e := newEnv(t, convergeSpec(2))
	out, err := e.r.Converge(context.Background(), ConvergeOptions{Release: mkRelease(t, "1.0.0")})
	if err != nil || !out.Converged || out.Rounds != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	if !strings.HasPrefix(out.Summary, "converged in 1 round (") || strings.Contains(out.Summary, "1 rounds") {
		t.Errorf("summary %q", out.Summary)
	}
}
