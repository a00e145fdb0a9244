package segment

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// writeLPCMAt writes one closed segment of n 20 ms LPCM frames of stream
// cam1 starting at start.
func writeLPCMAt(t *testing.T, s *Store, start time.Time, n int) {
	t.Helper()
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: []Track{{ClockRate: 8000, Codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(n) {
		if err := w.WriteFrame(Frame{PTS: i * 160, DTS: i * 160, Wall: start.Add(time.Duration(i) * 20 * time.Millisecond), Random: true, Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// corruptIndexStore records two segments with a hole between them, flushes
// the index into a table and damages that table's first block, as a bad
// disk would. It returns the segments and coverage recorded, and the table.
func corruptIndexStore(t *testing.T, dir string) ([]SegmentInfo, []Interval, string) {
	t.Helper()
	s := openTestStore(t, Options{Dir: dir})
	writeLPCMAt(t, s, testWall0, 100)
	writeLPCMAt(t, s, testWall0.Add(5*time.Second), 100)
	segs := mustSegments(t, s)
	cov, err := s.Coverage("cam1", time.Time{}, time.Time{})
	if err != nil || len(segs) != 2 || len(cov) != 2 {
		t.Fatalf("recorded %v, coverage %v, %v", segs, cov, err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, indexDir, "*.sst"))
	if len(tables) != 1 {
		t.Fatalf("index tables %v, want 1", tables)
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
	return segs, cov, tables[0]
}

// wantCorrupt checks that err reports the corrupt index and names table.
func wantCorrupt(t *testing.T, what string, err error, dir, table string) {
	t.Helper()
	var ce *IndexCorruptError
	if !errors.Is(err, ErrIndexCorrupt) || !errors.As(err, &ce) {
		t.Fatalf("%s: %v, want ErrIndexCorrupt", what, err)
	}
	if want := "index/" + filepath.Base(table); ce.File != want || ce.Dir != dir || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%s: %q (file %q), want one line naming %s", what, err, ce.File, want)
	}
}

// TestCorruptIndexReads: every read of a store whose index table is damaged
// fails with ErrIndexCorrupt naming the table, instead of Pebble's Fatalf
// panic; the index is marked failed once, and the store still closes.
func TestCorruptIndexReads(t *testing.T) {
	dir := t.TempDir()
	segs, _, table := corruptIndexStore(t, dir)
	reads := []struct {
		name string
		read func(s *Store) error
	}{
		{"Segments", func(s *Store) error { _, err := s.Segments("cam1", time.Time{}, time.Time{}); return err }},
		{"Coverage", func(s *Store) error { _, err := s.Coverage("cam1", testWall0, testWall0.Add(time.Hour)); return err }},
		{"Gaps", func(s *Store) error { _, err := s.Gaps("cam1", time.Time{}, time.Time{}); return err }},
		{"Streams", func(s *Store) error { _, err := s.Streams(); return err }},
		{"Extent", func(s *Store) error { _, _, err := s.Extent("cam1"); return err }},
		{"SourceOutages", func(s *Store) error { _, err := s.SourceOutages("cam1", time.Time{}, time.Time{}); return err }},
		{"ReadSegment", func(s *Store) error { _, err := s.ReadSegment(segs[1]); return err }},
		{"Export", func(s *Store) error {
			_, err := s.Export(context.Background(), "cam1", testWall0, testWall0.Add(time.Second), io.Discard)
			return err
		}},
		{"Check", func(s *Store) error { _, err := s.Check(false); return err }},
	}
	for _, r := range reads {
		var told []error
		s, err := Open(Options{Dir: dir, ReadOnly: true, Logger: quietLogger(), OnIndexFailure: func(err error) { told = append(told, err) }})
		if err != nil {
			t.Fatal(err)
		}
		wantCorrupt(t, r.name, r.read(s), dir, table)
		wantCorrupt(t, r.name+" again", r.read(s), dir, table)
		if len(told) != 1 || !errors.Is(told[0], ErrIndexCorrupt) {
			t.Errorf("%s: OnIndexFailure told %v, want the corruption once", r.name, told)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: Close: %v", r.name, err)
		}
	}
	// A node opening it runs recovery, which reads the whole index.
	_, err := Open(Options{Dir: dir, Logger: quietLogger()})
	wantCorrupt(t, "Open", err, dir, table)
}

// TestCorruptIndexOpen: an index whose table is missing or truncated, or
// whose MANIFEST is damaged, fails Open with ErrIndexCorrupt.
func TestCorruptIndexOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(dir, table string) error
	}{
		{"missing table", func(_, table string) error { return os.Remove(table) }},
		{"truncated table", func(_, table string) error { return os.Truncate(table, 100) }},
		{"damaged manifest", func(dir, _ string) error {
			ms, _ := filepath.Glob(filepath.Join(dir, indexDir, "MANIFEST-*"))
			slices.Sort(ms)
			return os.Truncate(ms[len(ms)-1], 20)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, _, table := corruptIndexStore(t, dir)
			if err := tc.damage(dir, table); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{true, false} {
				_, err := Open(Options{Dir: dir, ReadOnly: ro, Logger: quietLogger()})
				if !errors.Is(err, ErrIndexCorrupt) {
					t.Fatalf("Open read-only=%v: %v, want ErrIndexCorrupt", ro, err)
				}
			}
		})
	}
}

// TestRebuildIndex: RebuildIndex moves a corrupt index aside (kept, not
// deleted) and indexes the segment files again: the same segments and
// coverage come back. It refuses a directory in use.
func TestRebuildIndex(t *testing.T) {
	dir := t.TempDir()
	segs, cov, table := corruptIndexStore(t, dir)

	busy := openTestStore(t, Options{Dir: t.TempDir()})
	if _, _, err := RebuildIndex(Options{Dir: busy.Dir(), Logger: quietLogger()}); !errors.Is(err, ErrInUse) {
		t.Fatalf("RebuildIndex of an open store: %v, want ErrInUse", err)
	}
	if _, err := os.Stat(filepath.Join(busy.Dir(), indexDir)); err != nil {
		t.Fatalf("index of the open store moved: %v", err)
	}
	if _, _, err := RebuildIndex(Options{Dir: dir, ReadOnly: true}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only RebuildIndex: %v", err)
	}

	s, aside, err := RebuildIndex(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(aside, "index.corrupt-") {
		t.Errorf("moved aside to %q", aside)
	}
	if _, err := os.Stat(filepath.Join(dir, aside, filepath.Base(table))); err != nil {
		t.Errorf("corrupt table not kept: %v", err)
	}
	rec := s.Recovery()
	if len(rec.Problems) != 2 || !hasProblem(rec, ProblemUnindexedFile, true) {
		t.Errorf("recovery %+v, want 2 files indexed", rec)
	}
	if got := mustSegments(t, s); !slices.Equal(got, segs) {
		t.Errorf("segments after rebuild\n%v\nwant\n%v", got, segs)
	}
	if got, err := s.Coverage("cam1", time.Time{}, time.Time{}); err != nil || !slices.Equal(got, cov) {
		t.Errorf("coverage after rebuild %v %v, want %v", got, err, cov)
	}
	if rep, err := s.Check(false); err != nil || !rep.Consistent() || rep.Entries != 2 {
		t.Errorf("Check after rebuild: %+v %v", rep, err)
	}
}
