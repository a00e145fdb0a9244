package api

import "testing"

// TestParseByteRange: the Range forms players send, and the ones a server
// must ignore (sending the whole clip) or refuse (416) rather than guess.
func TestParseByteRange(t *testing.T) {
	const size = 1000
	for _, tc := range []struct {
		v           string
		off, length int64
		ok          bool
	}{
		{"bytes=0-", 0, 1000, true},
		{"bytes=0-0", 0, 1, true},
		{"bytes=10-19", 10, 10, true},
		{" bytes= 10 - 19 ", 10, 10, true},
		{"bytes=990-5000", 990, 10, true},
		{"bytes=-10", 990, 10, true},
		{"bytes=-5000", 0, 1000, true},
		{"bytes=999-", 999, 1, true},
		{"bytes=1000-", 0, 0, true}, // past the end: 416
		{"bytes=-0", 0, 0, true},    // an empty suffix: 416
		{"bytes=19-10", 0, 0, false},
		{"bytes=0-1,5-6", 0, 0, false},
		{"bytes=abc-", 0, 0, false},
		{"bytes=+5-10", 0, 0, false},
		{"bytes=5", 0, 0, false},
		{"bytes=-", 0, 0, false},
		{"bytes=99999999999999999999-", 0, 0, false},
		{"items=0-5", 0, 0, false},
		{"", 0, 0, false},
	} {
		off, length, ok := parseByteRange(tc.v, size)
		if off != tc.off || length != tc.length || ok != tc.ok {
			t.Errorf("%q: %d+%d %v, want %d+%d %v", tc.v, off, length, ok, tc.off, tc.length, tc.ok)
		}
	}
}
