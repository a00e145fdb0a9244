package segment

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestExport cuts clips across segment boundaries and checks that ffprobe
// accepts them with the expected duration, that a clip starts at the
// keyframe at or before from, and that an uncovered range is ErrNoCoverage.
func TestExport(t *testing.T) {
	m := loadMedia(t)
	s := openTestStore(t, Options{})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m.frames(testWall0, true, 10*testFPS))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, tc := range []struct {
		from, to  time.Duration
		wantStart time.Duration // keyframe at or before from (GOP = 1 s)
	}{
		{0, 10 * time.Second, 0},
		{1500 * time.Millisecond, 7200 * time.Millisecond, time.Second}, // across two boundaries
		{2900 * time.Millisecond, 3100 * time.Millisecond, 2 * time.Second},
		{-5 * time.Second, 2 * time.Second, 0}, // starts before the recording
	} {
		path := filepath.Join(dir, "clip.mp4")
		f, _ := os.Create(path)
		info, err := s.Export(context.Background(), "cam1", testWall0.Add(tc.from), testWall0.Add(tc.to), f)
		f.Close()
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !info.Start.Equal(testWall0.Add(tc.wantStart)) {
			t.Errorf("case %d: clip starts at %v, want %v", i, info.Start.Sub(testWall0), tc.wantStart)
		}
		pr := ffprobe(t, path)
		if pr.errors != "" {
			t.Errorf("case %d: ffprobe: %s", i, pr.errors)
		}
		want := info.End.Sub(info.Start).Seconds()
		if exp := (tc.to - tc.wantStart).Seconds(); tc.to <= 10*time.Second && math.Abs(want-exp) > 1.0/testFPS+1e-6 {
			t.Errorf("case %d: clip covers %.3f s, want %.3f", i, want, exp)
		}
		if math.Abs(pr.duration-want) > 0.05 {
			t.Errorf("case %d: ffprobe duration %.3f s, clip %.3f s", i, pr.duration, want)
		}
		if len(pr.streams) != 2 {
			t.Errorf("case %d: %d streams", i, len(pr.streams))
		}
	}
	_, err = s.Export(context.Background(), "cam1", testWall0.Add(time.Hour), testWall0.Add(2*time.Hour), &bytes.Buffer{})
	if !errors.Is(err, ErrNoCoverage) {
		t.Fatalf("export of an empty range: %v", err)
	}
	if _, err := s.Export(context.Background(), "nope", testWall0, testWall0.Add(time.Second), &bytes.Buffer{}); !errors.Is(err, ErrNoCoverage) {
		t.Fatalf("export of an unknown stream: %v", err)
	}
}
