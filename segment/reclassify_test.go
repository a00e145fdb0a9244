package segment

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReclassify: a buffer segment becomes archive under its new name
// with the same bytes (a hard link, no copy), the index and the files
// agree after it and after a reopen, a corrupt one is refused and
// quarantined, and one being written is refused.
func TestReclassify(t *testing.T) {
	m := loadMedia(t)
	dir := t.TempDir()
	s := openTestStore(t, Options{Dir: dir, Node: "n2"})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: time.Second, Class: ClassBuffer})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m.frames(testWall0, true, 4*testFPS))
	segs, _ := s.Segments("cam1", time.Time{}, time.Time{})
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	open := segs[len(segs)-1]
	if _, err := s.Reclassify(open, ClassArchive); err == nil {
		t.Error("reclassified the segment being written")
	}
	src := segs[0]
	before, _ := os.Stat(filepath.Join(dir, filepath.FromSlash(src.Path)))
	got, err := s.Reclassify(src, ClassArchive)
	if err != nil {
		t.Fatal(err)
	}
	if got.Class != ClassArchive || got.Origin != src.Origin || got.Node != "n2" || got.Checksum != src.Checksum ||
		!got.Start.Equal(src.Start) || !got.End.Equal(src.End) || got.Path == src.Path {
		t.Errorf("reclassified %+v from %+v", got, src)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(src.Path))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old name still there: %v", err)
	}
	after, err := os.Stat(filepath.Join(dir, filepath.FromSlash(got.Path)))
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("new name is not the same file (no copy): %v", err)
	}
	if data, err := s.ReadSegment(got); err != nil || int64(len(data)) != src.Bytes {
		t.Errorf("read back: %d bytes, %v", len(data), err)
	}
	// Again: nothing to do.
	if again, err := s.Reclassify(got, ClassArchive); err != nil || again.Path != got.Path {
		t.Errorf("second reclassify: %+v %v", again, err)
	}
	// A flipped byte is refused and quarantined.
	bad := segs[1]
	p := filepath.Join(dir, filepath.FromSlash(bad.Path))
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 1
	os.WriteFile(p, data, 0o644)
	if _, err := s.Reclassify(bad, ClassArchive); !errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("corrupt segment reclassified: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rc, err := s.Check(false); err != nil || !rc.Consistent() {
		t.Errorf("Check: %+v %v", rc, err)
	}
	s.Close()
	s2 := openTestStore(t, Options{Dir: dir, Node: "n2"})
	re, _ := s2.Segments("cam1", time.Time{}, time.Time{})
	var arch int
	for _, si := range re {
		if si.Class == ClassArchive {
			arch++
			if si.Path != got.Path {
				t.Errorf("archive segment %s after reopen, want %s", si.Path, got.Path)
			}
		}
		if si.Start.Equal(bad.Start) {
			t.Errorf("quarantined segment indexed again: %+v", si)
		}
	}
	if arch != 1 || len(s2.Recovery().Problems) != 0 {
		t.Errorf("after reopen %d archive segments (want 1), recovery %+v", arch, s2.Recovery())
	}
}

// TestDeleteRange deletes the segments of one class inside a range and
// nothing before it or of the other class.
func TestDeleteRange(t *testing.T) {
	m := loadMedia(t)
	s := openTestStore(t, Options{})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: time.Second, Class: ClassBuffer})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m.frames(testWall0, true, 6*testFPS))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := s.Segments("cam1", time.Time{}, time.Time{})
	if len(segs) < 5 {
		t.Fatalf("%d segments", len(segs))
	}
	if _, err := s.Reclassify(segs[2], ClassArchive); err != nil {
		t.Fatal(err)
	}
	rep, err := s.DeleteRange("cam1", ClassBuffer, segs[1].Start, segs[3].End)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Segments != 2 || rep.Bytes != segs[1].Bytes+segs[3].Bytes {
		t.Errorf("deleted %+v, want segments 1 and 3", rep)
	}
	left, _ := s.Segments("cam1", time.Time{}, time.Time{})
	if len(left) != len(segs)-2 || !left[0].Start.Equal(segs[0].Start) || left[1].Class != ClassArchive {
		t.Errorf("left %+v", left)
	}
}

// TestSegmentReader: a closed segment read in small chunks gives its
// bytes and then io.EOF; with a byte flipped, the read after the last
// byte reports the mismatch and the segment is quarantined; an unknown
// start is ErrNoSegment.
func TestSegmentReader(t *testing.T) {
	m := loadMedia(t)
	dir := t.TempDir()
	s := openTestStore(t, Options{Dir: dir})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m.frames(testWall0, true, 3*testFPS))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := s.Segments("cam1", time.Time{}, time.Time{})
	want, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(segs[0].Path)))
	r, err := s.OpenSegmentAt("cam1", segs[0].Start, segs[0].Checksum)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(r, 1<<30))
	r.Close()
	if err != nil || !bytes.Equal(got, want) || r.Info().Bytes != int64(len(want)) {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(want), err)
	}
	if _, err := s.OpenSegmentAt("cam1", segs[0].Start.Add(time.Millisecond), ""); !errors.Is(err, ErrNoSegment) {
		t.Errorf("unknown start: %v", err)
	}
	bad := append([]byte(nil), want...)
	bad[len(bad)/3] ^= 1
	os.WriteFile(filepath.Join(dir, filepath.FromSlash(segs[0].Path)), bad, 0o644)
	r, err = s.OpenSegmentAt("cam1", segs[0].Start, "")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	var rerr error
	for rerr == nil {
		_, rerr = r.Read(buf)
	}
	r.Close()
	if !errors.Is(rerr, ErrChecksumMismatch) {
		t.Errorf("corrupt segment read to its end: %v, want a checksum mismatch", rerr)
	}
	if left, _ := s.Segments("cam1", segs[0].Start, segs[0].End); len(left) != 0 && left[0].Start.Equal(segs[0].Start) {
		t.Errorf("corrupt segment still indexed: %v", left)
	}
}
