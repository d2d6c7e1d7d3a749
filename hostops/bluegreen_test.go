package hostops

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"drover"
)

func makeSlot(t *testing.T, h *Host, slot, version string) {
	t.Helper()
	dir := h.slotDir(slot)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	meta := `{"release":"` + slot + `","version":"` + version + `","config_hash":"c"}`
	if err := os.WriteFile(filepath.Join(dir, SlotMetaName), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBlueGreenPromoteRestoreFinalize(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := &Host{Root: t.TempDir(), Now: func() time.Time { return t0 }}
	makeSlot(t, h, "s1", "1.0")
	makeSlot(t, h, "s2", "2.0")

	// First deploy into blue: nothing ran before, nothing is kept.
	st, err := h.Promote(ctx, drover.PromoteRequest{Slot: "s1", Color: drover.ColorBlue, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if st.Live != "blue" || st.Current != "s1" || st.Idle == nil || st.Idle.Color != "green" || st.Idle.Running {
		t.Fatalf("after the first switch: %+v idle %+v", st, st.Idle)
	}
	if h.ColorTarget("blue") != "s1" || h.currentTarget() != "s1" {
		t.Fatalf("links: blue %q current %q", h.ColorTarget("blue"), h.currentTarget())
	}

	// Second deploy into green: blue is kept running until keep.
	keep := t0.Add(30 * time.Minute)
	st, err = h.Promote(ctx, drover.PromoteRequest{Slot: "s2", Color: drover.ColorGreen, KeepUntil: keep, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	want := drover.IdleColor{Color: "blue", Slot: "s1", Release: "s1", Version: "1.0", Running: true, KeepUntil: keep}
	if st.Live != "green" || st.Current != "s2" || st.Previous != "s1" || st.Idle == nil || *st.Idle != want {
		t.Fatalf("after the second switch: %+v idle %+v, want idle %+v", st, st.Idle, want)
	}
	if h.ColorTarget("green") != "s2" || h.ColorTarget("blue") != "s1" || h.currentTarget() != "s2" {
		t.Fatal("links after the second switch are wrong")
	}

	// Switch back to blue (an instant rollback): green is kept in turn.
	st, err = h.Restore(ctx, drover.RestoreRequest{To: drover.Snapshot{Current: "s1", Release: "s1", Version: "1.0", Live: "blue"}, Color: drover.ColorBlue, Action: drover.ActionRollback, KeepUntil: keep, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	want = drover.IdleColor{Color: "green", Slot: "s2", Release: "s2", Version: "2.0", Running: true, KeepUntil: keep}
	if st.Live != "blue" || st.Current != "s1" || *st.Idle != want || h.currentTarget() != "s1" {
		t.Fatalf("after switching back: %+v idle %+v", st, st.Idle)
	}
	if last := st.History[len(st.History)-1]; last.Action != drover.ActionRollback || last.From != "s2" || last.To != "s1" {
		t.Fatalf("history: %+v", last)
	}

	// Finalize green: recorded stopped, nothing else changes.
	st, err = h.Restore(ctx, drover.RestoreRequest{Color: drover.ColorGreen, Action: drover.ActionFinalize})
	if err != nil {
		t.Fatal(err)
	}
	if st.Idle.Running || !st.Idle.KeepUntil.IsZero() || st.Live != "blue" || st.Current != "s1" || h.ColorTarget("green") != "s2" {
		t.Fatalf("after finalize: %+v idle %+v", st, st.Idle)
	}
	// The live colour cannot be finalized; colours are only blue and green.
	if _, err := h.Restore(ctx, drover.RestoreRequest{Color: drover.ColorBlue, Action: drover.ActionFinalize}); drover.ErrorCode(err) != drover.EINVALID {
		t.Fatalf("finalize of the live colour: %v", err)
	}
	if _, err := h.Promote(ctx, drover.PromoteRequest{Slot: "s2", Color: "../x"}); drover.ErrorCode(err) != drover.EINVALID {
		t.Fatalf("colour ../x: %v", err)
	}
}
