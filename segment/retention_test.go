package segment

import (
	"testing"
	"time"
)

// TestDeleteBefore: retention deletes the closed segments ending by the
// cut-off (entries and files, empty day directories too), keeps the one
// straddling it and the one being written, drops archive outages that end
// before it, and leaves the index consistent with the files.
func TestDeleteBefore(t *testing.T) {
	m := loadMedia(t)
	s := openTestStore(t, Options{})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.frames(testWall0, true, 6*testFPS) {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddSourceOutage("cam1", Interval{Start: testWall0.Add(-time.Hour), End: testWall0.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSourceOutage("cam1", Interval{Start: testWall0.Add(time.Hour), End: testWall0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Segments("cam1", time.Time{}, time.Time{})
	parts0 := s.Stats().PartsWritten
	cut := testWall0.Add(3500 * time.Millisecond)
	rep, err := s.DeleteBefore("cam1", ClassArchive, cut)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := s.Segments("cam1", time.Time{}, time.Time{})
	t.Logf("%d segments, deleted %+v, %d left; %d parts written", len(before), rep, len(after), parts0)
	var want int
	var wantBytes int64
	for _, si := range before {
		if !si.End.After(cut) && si.Checksum != "" {
			want++
			wantBytes += si.Bytes
			if _, err := s.fs.Stat(s.abs(si.Path)); err == nil {
				t.Errorf("%s still on disk", si.Path)
			}
		}
	}
	if want < 2 || rep.Segments != want || rep.Bytes != wantBytes || len(after) != len(before)-want {
		t.Errorf("deleted %+v of %d segments, want %d segments, %d bytes", rep, len(before), want, wantBytes)
	}
	for _, si := range after {
		if !si.End.After(cut) {
			t.Errorf("segment %v..%v ending by the cut-off kept", si.Start, si.End)
		}
	}
	if rep.Outages != 1 {
		t.Errorf("outages deleted %d, want the one before the cut-off", rep.Outages)
	}
	if o, _ := s.SourceOutages("cam1", time.Time{}, time.Time{}); len(o) != 1 {
		t.Errorf("outages left %v, want the later one", o)
	}
	if st := s.Stats(); st.SegmentsDeleted != uint64(want) || st.BytesDeleted != uint64(wantBytes) || parts0 < uint64(len(before)-1) {
		t.Errorf("stats %+v", st)
	}
	// The segment being written survives any cut-off.
	if _, err := s.DeleteBefore("cam1", ClassArchive, testWall0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	last, _ := s.Segments("cam1", time.Time{}, time.Time{})
	if len(last) != 1 || last[0].Checksum == "" {
		t.Errorf("after deleting everything closed while writing: %+v, want the segment that was open", last)
	}
	// Buffers are not the archive's retention.
	if rep, _ := s.DeleteBefore("cam1", ClassBuffer, testWall0.Add(time.Hour)); rep.Segments != 0 {
		t.Errorf("buffer retention deleted archive segments: %+v", rep)
	}
	if rep, err := s.Check(false); err != nil || len(rep.Problems) != 0 {
		t.Errorf("check after retention: %v %+v", err, rep.Problems)
	}
	if _, err := s.DeleteBefore("../x", ClassArchive, cut); err == nil {
		t.Error("bad stream id accepted")
	}
}
