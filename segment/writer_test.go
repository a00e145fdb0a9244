package segment

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

var testWall0 = time.Date(2026, 11, 23, 23, 59, 52, 123456789, time.UTC) // crosses midnight

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func writeAll(t testing.TB, w *Writer, frames []Frame) {
	t.Helper()
	for i, f := range frames {
		if err := w.WriteFrame(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
}

func TestValidateStreamID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"cam-1", true}, {"Front_Door.main", true}, {"a", true}, {string(make128('x')), true},
		{"", false}, {".", false}, {"..", false}, {"a/b", false}, {`a\b`, false}, {"a\x00b", false},
		{"a b", false}, {"caméra", false}, {"a\nb", false}, {string(make128('x')) + "x", false},
	} {
		err := ValidateStreamID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateStreamID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidStreamID) {
			t.Errorf("ValidateStreamID(%q) error %v does not wrap ErrInvalidStreamID", tc.id, err)
		}
	}
}

func make128(c byte) []byte {
	b := make([]byte, 128)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestIntervalArithmetic(t *testing.T) {
	at := func(s int) time.Time { return testWall0.Add(time.Duration(s) * time.Second) }
	ivs := []Interval{{at(5), at(7)}, {at(0), at(2)}, {at(2), at(3)}, {at(6), at(9)}, {at(20), at(20)}}
	m := Merge(ivs)
	want := []Interval{{at(0), at(3)}, {at(5), at(9)}}
	if len(m) != len(want) || m[0] != want[0] || m[1] != want[1] {
		t.Fatalf("Merge = %v, want %v", m, want)
	}
	r := Interval{at(-1), at(10)}
	g := Subtract(r, Clip(m, r.Start, r.End))
	wantG := []Interval{{at(-1), at(0)}, {at(3), at(5)}, {at(9), at(10)}}
	if len(g) != 3 || g[0] != wantG[0] || g[1] != wantG[1] || g[2] != wantG[2] {
		t.Fatalf("Subtract = %v, want %v", g, wantG)
	}
	// coverage ∪ gaps = range, disjoint
	var total time.Duration
	for _, iv := range append(Clip(m, r.Start, r.End), g...) {
		total += iv.Duration()
	}
	if total != r.Duration() {
		t.Fatalf("coverage+gaps = %v, want %v", total, r.Duration())
	}
}

func TestEntryEncoding(t *testing.T) {
	e := &entry{Stream: "cam1", Start: testWall0, End: testWall0.Add(time.Minute), Bytes: 12345, Node: "n1",
		Path: segmentRelPath("cam1", testWall0, ClassBuffer, OriginBackfill, "n1"), Class: ClassBuffer, Origin: OriginBackfill}
	e.Checksum = sha256.Sum256([]byte("x"))
	k, v := segmentKey(e), e.encode()
	got, err := decodeEntry(k, v)
	if err != nil {
		t.Fatal(err)
	}
	if got.info() != e.info() || got.Open != e.Open {
		t.Fatalf("round trip: %+v != %+v", got, e)
	}
	for i := range v { // any single corrupted byte is an error, not a panic
		c := append([]byte(nil), v...)
		c[i] ^= 0x40
		if _, err := decodeEntry(k, c); err == nil {
			t.Fatalf("corrupting byte %d went unnoticed", i)
		}
	}
	for n := 0; n < len(v); n++ {
		if _, err := decodeEntry(k, v[:n]); err == nil {
			t.Fatalf("truncated value of %d bytes accepted", n)
		}
	}
	fn, err := parseSegmentRelPath(e.Path)
	if err != nil || fn.stream != "cam1" || !fn.start.Equal(testWall0) || fn.class != ClassBuffer || fn.origin != OriginBackfill || fn.node != "n1" {
		t.Fatalf("parseSegmentRelPath(%s) = %+v, %v", e.Path, fn, err)
	}
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestWriterSegments writes 12 s of real H.264 + AAC with 3 s segments and
// checks naming, contiguity, coverage, checksums and that ffprobe accepts
// every segment with the indexed duration.
func TestWriterSegments(t *testing.T) {
	m := loadMedia(t)
	s := openTestStore(t, Options{Node: "n1"})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const n = 12 * testFPS
	writeAll(t, w, m.frames(testWall0, true, n))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := s.Segments("cam1", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 4 {
		t.Fatalf("got %d segments, want 4: %+v", len(segs), segs)
	}
	for i, sg := range segs {
		if i == 0 && !sg.Start.Equal(testWall0) {
			t.Errorf("first segment starts at %v, want %v", sg.Start, testWall0)
		}
		if i > 0 && !sg.Start.Equal(segs[i-1].End) {
			t.Errorf("segment %d starts at %v, previous ended at %v: not contiguous", i, sg.Start, segs[i-1].End)
		}
		if d := sg.End.Sub(sg.Start); d != 3*time.Second {
			t.Errorf("segment %d lasts %v, want 3s", i, d)
		}
		if sg.Class != ClassArchive || sg.Origin != OriginLive || sg.Node != "n1" || sg.Stream != "cam1" {
			t.Errorf("segment %d metadata %+v", i, sg)
		}
		path := filepath.Join(s.Dir(), filepath.FromSlash(sg.Path))
		if got := fileSHA(t, path); got != sg.Checksum {
			t.Errorf("segment %d checksum %s, file has %s", i, sg.Checksum, got)
		}
		st, _ := os.Stat(path)
		if st.Size() != sg.Bytes {
			t.Errorf("segment %d: %d bytes indexed, file has %d", i, sg.Bytes, st.Size())
		}
		pr := ffprobe(t, path)
		if pr.errors != "" {
			t.Errorf("ffprobe %s: %s", sg.Path, pr.errors)
		}
		if math.Abs(pr.duration-3) > 1.0/testFPS+0.03 {
			t.Errorf("ffprobe duration of segment %d = %.3f s, want 3", i, pr.duration)
		}
	}
	if segs[3].Path != "segments/cam1/2026-11-24/20261124T000001.123456789Z-archive-live-n1.mp4" {
		t.Errorf("last segment path %s", segs[3].Path)
	}
	cov, _ := s.Coverage("cam1", time.Time{}, time.Time{})
	end := testWall0.Add(n * time.Second / testFPS)
	if len(cov) != 1 || !cov[0].Start.Equal(testWall0) || !cov[0].End.Equal(end) {
		t.Fatalf("coverage %v, want [%v, %v)", cov, testWall0, end)
	}
	gaps, _ := s.Gaps("cam1", testWall0.Add(-time.Second), end.Add(time.Second))
	if len(gaps) != 2 || gaps[0].Duration() != time.Second || gaps[1].Duration() != time.Second {
		t.Fatalf("gaps %v, want 1 s before and after", gaps)
	}
	// range query in the middle finds exactly the overlapping segments
	mid, _ := s.Segments("cam1", testWall0.Add(4*time.Second), testWall0.Add(6*time.Second+1))
	if len(mid) != 2 || mid[0].Path != segs[1].Path || mid[1].Path != segs[2].Path {
		t.Fatalf("Segments(4s, 6s] = %v", mid)
	}
	streams, _ := s.Streams()
	if len(streams) != 1 || streams[0] != "cam1" {
		t.Fatalf("Streams = %v", streams)
	}
	if iv, ok, err := s.Extent("cam1"); err != nil || !ok || !iv.Start.Equal(testWall0) || !iv.End.Equal(end) {
		t.Fatalf("Extent = %v, %v, %v; want [%v, %v)", iv, ok, err, testWall0, end)
	}
	if _, ok, err := s.Extent("cam"); err != nil || ok {
		t.Fatalf("Extent of a stream with no segments = %v, %v; want none", ok, err)
	}
	// Reopen: same index, nothing to recover, Check consistent.
	dir := s.Dir()
	s.Close()
	s2 := openTestStore(t, Options{Dir: dir, Node: "n1"})
	if rep := s2.Recovery(); len(rep.Problems) != 0 {
		t.Fatalf("recovery on a clean store: %v", rep.Problems)
	}
	rep, err := s2.Check(false)
	if err != nil || !rep.Consistent() || rep.Entries != 4 || rep.Files != 4 {
		t.Fatalf("Check = %+v, %v", rep, err)
	}
}

// TestWriterCodecs writes every supported codec family and reads the files
// back with the package's own parser.
func TestWriterCodecs(t *testing.T) {
	s := openTestStore(t, Options{})
	cases := []struct {
		name  string
		track Track
	}{
		{"opus", Track{ClockRate: 48000, Codec: &mp4.CodecOpus{ChannelCount: 2}}},
		{"lpcm", Track{ClockRate: 8000, Codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}},
	}
	for _, tc := range cases {
		w, err := s.NewWriter(WriterConfig{Stream: tc.name, Tracks: []Track{tc.track}, SegmentDuration: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		step := int64(tc.track.ClockRate / 50)
		for i := int64(0); i < 250; i++ { // 5 s of 20 ms frames
			f := Frame{PTS: i * step, DTS: i * step, Wall: testWall0.Add(time.Duration(i) * 20 * time.Millisecond), Random: true, Payload: make([]byte, 160)}
			if err := w.WriteFrame(f); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		cov, _ := s.Coverage(tc.name, time.Time{}, time.Time{})
		if len(cov) != 1 || cov[0].Duration() != 5*time.Second {
			t.Errorf("%s: coverage %v, want 5 s", tc.name, cov)
		}
		segs, _ := s.Segments(tc.name, time.Time{}, time.Time{})
		if len(segs) != 3 {
			t.Errorf("%s: %d segments, want 3", tc.name, len(segs))
		}
		for _, sg := range segs {
			data, err := s.readFile(sg.Path, -1)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := parseSegment(data)
			if err != nil || ps.Torn != nil || ps.mediaDuration() != sg.End.Sub(sg.Start) {
				t.Errorf("%s: parse %s: %v torn=%v", tc.name, sg.Path, err, ps.Torn)
			}
		}
	}
	if _, err := s.NewWriter(WriterConfig{Stream: "../x", Tracks: []Track{cases[0].track}}); !errors.Is(err, ErrInvalidStreamID) {
		t.Fatalf("bad stream id: %v", err)
	}
}

// TestUseAfterClose: a closed store answers ErrClosed, never a Pebble panic,
// and a writer whose store was closed reports errors.
func TestUseAfterClose(t *testing.T) {
	s := openTestStore(t, Options{})
	w, err := s.NewWriter(WriterConfig{Stream: "a", Tracks: []Track{{ClockRate: 8000, Codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	f := Frame{Wall: testWall0, Random: true, Payload: []byte{1, 2}}
	if err := w.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Segments("a", time.Time{}, time.Time{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Segments after Close: %v", err)
	}
	if _, err := s.Streams(); !errors.Is(err, ErrClosed) {
		t.Errorf("Streams after Close: %v", err)
	}
	var werr error
	for i := int64(1); i < 200 && werr == nil; i++ {
		f.PTS, f.DTS, f.Wall = i*160, i*160, testWall0.Add(time.Duration(i)*20*time.Millisecond)
		werr = w.WriteFrame(f)
	}
	if !errors.Is(werr, ErrClosed) {
		t.Errorf("WriteFrame after the store closed: %v", werr)
	}
	_ = w.Close()
}

// TestSourceOutages: outages merge and clip.
func TestSourceOutages(t *testing.T) {
	s := openTestStore(t, Options{})
	at := func(sec int) time.Time { return testWall0.Add(time.Duration(sec) * time.Second) }
	for _, iv := range []Interval{{at(10), at(20)}, {at(30), at(40)}, {at(20), at(25)}, {at(35), at(50)}} {
		if err := s.AddSourceOutage("cam1", iv); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.SourceOutages("cam1", time.Time{}, time.Time{})
	if err != nil || len(got) != 2 || got[0] != (Interval{at(10), at(25)}) || got[1] != (Interval{at(30), at(50)}) {
		t.Fatalf("outages %v %v", got, err)
	}
	got, _ = s.SourceOutages("cam1", at(22), at(31))
	if len(got) != 2 || got[0] != (Interval{at(22), at(25)}) || got[1] != (Interval{at(30), at(31)}) {
		t.Fatalf("clipped outages %v", got)
	}
	if err := s.AddSourceOutage("cam1", Interval{at(5), at(5)}); err == nil {
		t.Error("empty outage accepted")
	}
	if err := s.AddSourceOutage("a/b", Interval{at(5), at(6)}); !errors.Is(err, ErrInvalidStreamID) {
		t.Errorf("bad stream: %v", err)
	}
}

// TestDiscontinuities: a timestamp jump starts a new segment anchored at
// the frame's wall clock (no false gap, no false coverage); a wall-clock
// step beyond the drift bound re-anchors too.
func TestDiscontinuities(t *testing.T) {
	s := openTestStore(t, Options{})
	lpcm := []Track{{ClockRate: 8000, Codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}}
	run := func(stream string, ptsJump int64, wallJump time.Duration) []SegmentInfo {
		w, err := s.NewWriter(WriterConfig{Stream: stream, Tracks: lpcm})
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < 200; i++ {
			pts, wall := i*160, testWall0.Add(time.Duration(i)*20*time.Millisecond)
			if i >= 100 {
				pts += ptsJump
				wall = wall.Add(wallJump)
			}
			if err := w.WriteFrame(Frame{PTS: pts, DTS: pts, Wall: wall, Random: true, Payload: []byte{1, 2}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		segs, _ := s.Segments(stream, time.Time{}, time.Time{})
		return segs
	}
	at := func(d time.Duration) time.Time { return testWall0.Add(d) }
	for _, tc := range []struct {
		name     string
		ptsJump  int64
		wallJump time.Duration
		want     []Interval
	}{
		{"pts-forward", 10 * 8000, 0, []Interval{{at(0), at(2 * time.Second)}, {at(2 * time.Second), at(4 * time.Second)}}},
		{"pts-back", -50 * 160, 0, []Interval{{at(0), at(2 * time.Second)}, {at(2 * time.Second), at(4 * time.Second)}}},
		{"wall-step", 0, 5 * time.Second, []Interval{{at(0), at(2 * time.Second)}, {at(7 * time.Second), at(9 * time.Second)}}},
		{"small-jitter", 0, 100 * time.Millisecond, []Interval{{at(0), at(4 * time.Second)}}},
	} {
		segs := run(tc.name, tc.ptsJump, tc.wallJump)
		if len(segs) != len(tc.want) {
			t.Errorf("%s: %d segments %+v, want %v", tc.name, len(segs), segs, tc.want)
			continue
		}
		for i, sg := range segs {
			if sg.Interval() != tc.want[i] {
				t.Errorf("%s: segment %d = %v..%v, want %v..%v", tc.name, i, sg.Start.Sub(testWall0), sg.End.Sub(testWall0),
					tc.want[i].Start.Sub(testWall0), tc.want[i].End.Sub(testWall0))
			}
		}
	}
}

// TestConcurrentWriters runs four writers and a reader of the index at
// once (meaningful under -race); Check skips the segments being written.
func TestConcurrentWriters(t *testing.T) {
	s := openTestStore(t, Options{})
	lpcm := []Track{{ClockRate: 8000, Codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}}
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			w, err := s.NewWriter(WriterConfig{Stream: fmt.Sprintf("cam%d", g), Tracks: lpcm, SegmentDuration: time.Second, PartDuration: 200 * time.Millisecond})
			if err != nil {
				done <- err
				return
			}
			for i := int64(0); i < 250; i++ {
				if err := w.WriteFrame(Frame{PTS: i * 160, DTS: i * 160, Wall: testWall0.Add(time.Duration(i) * 20 * time.Millisecond), Random: true, Payload: []byte{byte(i)}}); err != nil {
					done <- err
					return
				}
			}
			done <- w.Close()
		}(g)
	}
	finished := 0
	for finished < 4 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished++
		default:
			if rc, err := s.Check(false); err != nil || !rc.Consistent() {
				t.Fatalf("Check while writing: %+v %v", rc, err)
			}
			if _, err := s.Coverage("cam0", time.Time{}, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	streams, _ := s.Streams()
	if len(streams) != 4 {
		t.Fatalf("streams %v", streams)
	}
	for _, st := range streams {
		cov, _ := s.Coverage(st, time.Time{}, time.Time{})
		if len(cov) != 1 || cov[0].Duration() != 5*time.Second {
			t.Errorf("%s: coverage %v", st, cov)
		}
	}
}

// TestWriterSetClass: a replica promoted to home switches class at the next
// keyframe; the buffer segment and the archive one meet exactly, so the
// stream's coverage over both classes has no hole and no overlap.
func TestWriterSetClass(t *testing.T) {
	m := loadMedia(t)
	s := openTestStore(t, Options{Node: "n1"})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Class: ClassBuffer, Tracks: m.tracks(true), SegmentDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	frames := m.frames(testWall0, true, 6*testFPS)
	half := len(frames) / 2
	writeAll(t, w, frames[:half])
	if err := w.SetClass(Class(9)); err == nil {
		t.Errorf("SetClass(9) accepted")
	}
	if err := w.SetClass(ClassArchive); err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, frames[half:])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := s.Segments("cam1", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || segs[0].Class != ClassBuffer || segs[1].Class != ClassArchive {
		t.Fatalf("segments %+v, want a buffer one then an archive one", segs)
	}
	if !segs[1].Start.Equal(segs[0].End) {
		t.Errorf("archive starts at %v, buffer ended at %v", segs[1].Start, segs[0].End)
	}
	end := testWall0.Add(6 * time.Second)
	if !segs[0].Start.Equal(testWall0) || !segs[1].End.Equal(end) {
		t.Errorf("segments cover [%v, %v), want [%v, %v)", segs[0].Start, segs[1].End, testWall0, end)
	}
	// The switch waits for a keyframe: the buffer segment holds the frames
	// up to it (at least the half written before SetClass).
	if d := segs[0].End.Sub(testWall0); d < 3*time.Second {
		t.Errorf("buffer segment ends %v after the start, before SetClass", d)
	}
	for _, sg := range segs {
		if pr := ffprobe(t, filepath.Join(s.Dir(), filepath.FromSlash(sg.Path))); pr.errors != "" {
			t.Errorf("ffprobe %s: %s", sg.Path, pr.errors)
		}
	}
}

// WriteOwnedFrame, which keeps the payloads it is given instead of copying
// them, writes the same bytes as WriteFrame.
func TestWriteOwnedFrame(t *testing.T) {
	m := loadMedia(t)
	write := func(owned bool) []string {
		s := openTestStore(t, Options{Node: "n1"})
		w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range m.frames(testWall0, true, 7*testFPS) {
			write := w.WriteFrame
			if owned {
				f.Payload = append([]byte(nil), f.Payload...) // the caller's own, fresh per frame
				write = w.WriteOwnedFrame
			}
			if err := write(f); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		segs, err := s.Segments("cam1", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var sums []string
		for _, sg := range segs {
			if got := fileSHA(t, filepath.Join(s.Dir(), filepath.FromSlash(sg.Path))); got != sg.Checksum {
				t.Fatalf("segment %s: checksum %s, file has %s", sg.Path, sg.Checksum, got)
			}
			sums = append(sums, sg.Checksum)
		}
		return sums
	}
	copied, owned := write(false), write(true)
	if len(copied) != 3 || fmt.Sprint(copied) != fmt.Sprint(owned) {
		t.Fatalf("segments written with WriteFrame %v, with WriteOwnedFrame %v", copied, owned)
	}
}
