package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestTakeDistinctBindableBelowEphemeral(t *testing.T) {
	seen := map[int]bool{}
	for range 5 {
		ports, err := Take(20)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
			if p < low || p >= ephemeralLow() {
				t.Errorf("port %d outside %d..%d", p, low, ephemeralLow()-1)
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Errorf("port %d: %v", p, err)
				continue
			}
			ln.Close()
		}
	}
}

// A port someone listens on is skipped.
func TestTakeSkipsPortInUse(t *testing.T) {
	ports, err := Take(1)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	busy := next
	mu.Unlock()
	// If another program holds it already, it is just as busy.
	if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(busy))); err == nil {
		defer ln.Close()
	}
	got, err := Take(1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] == busy || got[0] == ports[0] {
		t.Errorf("got port %d, busy %d, handed out before %d", got[0], busy, ports[0])
	}
}
