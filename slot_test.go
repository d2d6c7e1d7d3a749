package drover

import "testing"

func TestSlotFormat(t *testing.T) {
	c := SlotCandidates("1.2-abcdef012345", "0123456789abcdef")
	if c != [2]string{"1.2-abcdef012345", "1.2-abcdef012345+01234567"} {
		t.Fatalf("SlotCandidates = %q", c)
	}
	for _, tt := range []struct {
		slot, release string
	}{
		{"", ""},
		{"1.2-abcdef012345", "1.2-abcdef012345"},
		{"1.2-abcdef012345+01234567", "1.2-abcdef012345"},
	} {
		if got := SlotRelease(tt.slot); got != tt.release {
			t.Errorf("SlotRelease(%q) = %q, want %q", tt.slot, got, tt.release)
		}
	}
	for _, tt := range []struct {
		slot, id string
		want     bool
	}{
		{"1.2-a", "1.2-a", true},
		{"1.2-a+01234567", "1.2-a", true},
		{"1.2-ab", "1.2-a", false}, // a release whose ID extends another's is not it
		{"", "", false},
		{"1.2-a", "1.2-a+01234567", false},
	} {
		if got := SlotHolds(tt.slot, tt.id); got != tt.want {
			t.Errorf("SlotHolds(%q, %q) = %v, want %v", tt.slot, tt.id, got, tt.want)
		}
	}
}
