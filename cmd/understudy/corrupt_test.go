package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/segment"
)

// TestCorruptIndexCommands runs the real binary on a data directory whose
// index table is damaged: fsck, segments and export exit 1 with one line
// naming the table and the command that repairs it (no Pebble panic), and
// export leaves no file behind; fsck --repair moves the index aside,
// rebuilds it from the segment files, and the segments come back.
func TestCorruptIndexCommands(t *testing.T) {
	bin := understudyBinary(t)
	dir := t.TempDir()
	w0 := record(t, dir)
	// Opening for writing replays the index WAL into a table.
	s, err := segment.Open(segment.Options{Dir: dir, Logger: storeLog})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := segmentsOf(t, bin, dir, "cam1")
	tables, _ := filepath.Glob(filepath.Join(dir, "index", "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no index table")
	}
	b, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := range 64 {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(tables[0], b, 0o644); err != nil {
		t.Fatal(err)
	}

	clip := filepath.Join(t.TempDir(), "clip.mp4")
	hint := "run 'understudy fsck --repair --data-dir " + dir + "' to rebuild it from the segment files"
	for _, args := range [][]string{
		{"fsck", "--data-dir", dir},
		{"segments", "--data-dir", dir, "--stream", "cam1"},
		{"export", "--data-dir", dir, "--stream", "cam1", "--from", w0.Format(time.RFC3339), "--to", w0.Add(3 * time.Second).Format(time.RFC3339), "-o", clip},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("%s: %v, want exit 1\n%s", args[0], err, out)
		}
		want := args[0] + ": index of " + dir + " is corrupt (index/" + filepath.Base(tables[0]) + ": "
		if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, hint) || strings.Contains(got, "\n") {
			t.Errorf("%s said\n%s\nwant one line %q … %q", args[0], out, want, hint)
		}
	}
	if left, _ := filepath.Glob(clip + "*"); len(left) != 0 {
		t.Errorf("export left %v", left)
	}

	out, err := exec.Command(bin, "fsck", "--repair", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "moved the corrupt index to "+filepath.Join(dir, "index.corrupt-")) ||
		!strings.Contains(string(out), "4 index entries, 4 files, 4 problems: consistent") {
		t.Fatalf("fsck --repair: %v\n%s", err, out)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "index.corrupt-*", filepath.Base(tables[0]))); len(aside) != 1 {
		t.Errorf("corrupt table not kept: %v", aside)
	}
	if after := segmentsOf(t, bin, dir, "cam1"); !reflect.DeepEqual(after, before) {
		t.Errorf("after repair\n%+v\nwant\n%+v", after, before)
	}
	if out, err := exec.Command(bin, "fsck", "--data-dir", dir).CombinedOutput(); err != nil {
		t.Errorf("fsck after repair: %v\n%s", err, out)
	}
}
