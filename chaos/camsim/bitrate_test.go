package camsim

import "testing"

func TestParseBitrate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"4M", 4_000_000, true},
		{"500k", 500_000, true},
		{"500K", 500_000, true},
		{"4000000", 4_000_000, true},
		{"1.5M", 1_500_000, true},
		{"", 0, false},
		{"M", 0, false},
		{"-1M", 0, false},
		{"0", 0, false},
		{"4G", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"4 M", 0, false},
		{"1e12", 0, false},
	} {
		got, err := ParseBitrate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBitrate(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
