package segment

import (
	"errors"
	"strings"
	"testing"
)

// TestOpenInUse: a second opening of a data directory another store holds
// (a running node) fails with ErrInUse and names the directory, read-only
// (what `understudy segments` and `fsck` do) or not.
func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, ro := range []bool{true, false} {
		_, err := Open(Options{Dir: dir, Logger: quietLogger(), ReadOnly: ro})
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("read-only %v: got %v, want ErrInUse", ro, err)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Errorf("read-only %v: %q does not name %s", ro, err, dir)
		}
	}
}
