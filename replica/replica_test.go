package replica

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
	"github.com/understudy-nvr/understudy/segment"
)

const fps = 25

var wall0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return wall0.Add(time.Duration(s * float64(time.Second))) }

// camera is a simulated camera's frames: frame i at wall0 + i/fps, an
// IDR every second.
type camera struct {
	sps, pps []byte
	frames   []segment.Frame
}

func newCamera(t *testing.T, seconds int) *camera {
	t.Helper()
	st, err := h264synth.New(h264synth.Params{Width: 64, Height: 64, FPS: fps, GOP: fps, Bitrate: 200_000})
	if err != nil {
		t.Fatal(err)
	}
	c := &camera{}
	for i := range seconds * fps {
		w := wall0.Add(time.Duration(i) * time.Second / fps)
		f := st.Next(h264synth.Stamp{Camera: 1, Frame: uint64(i), Time: w})
		if f.IDR && c.sps == nil {
			c.sps, c.pps = bytes.Clone(f.NALUs[0]), bytes.Clone(f.NALUs[1])
		}
		var avcc []byte
		for _, n := range f.NALUs {
			avcc = binary.BigEndian.AppendUint32(avcc, uint32(len(n)))
			avcc = append(avcc, n...)
		}
		pts := int64(i) * 90000 / fps
		c.frames = append(c.frames, segment.Frame{PTS: pts, DTS: pts, Wall: w, Random: f.IDR, Payload: avcc})
	}
	return c
}

func (c *camera) writer(t *testing.T, s *segment.Store, stream string, cls segment.Class) *segment.Writer {
	t.Helper()
	w, err := s.NewWriter(segment.WriterConfig{Stream: stream, Class: cls, SegmentDuration: 2 * time.Second,
		Tracks: []segment.Track{{ClockRate: 90000, Codec: &mp4.CodecH264{SPS: c.sps, PPS: c.pps}}}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// record writes the frames of [from, to) seconds of stream as one closed
// run of 2 s segments.
func (c *camera) record(t *testing.T, s *segment.Store, stream string, cls segment.Class, from, to float64) {
	t.Helper()
	w := c.writer(t, s, stream, cls)
	for _, f := range c.frames[int(from*fps):int(to*fps)] {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T, dir string) *segment.Store {
	t.Helper()
	s, err := segment.Open(segment.Options{Dir: dir, Node: "n2", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func classSegs(t *testing.T, s *segment.Store, stream string, cls segment.Class) []segment.SegmentInfo {
	t.Helper()
	all, err := s.Segments(stream, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var out []segment.SegmentInfo
	for _, si := range all {
		if si.Class == cls {
			out = append(out, si)
		}
	}
	return out
}

func onDisk(dir string, si segment.SegmentInfo) bool {
	_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(si.Path)))
	return err == nil
}

// TestWindow: what ended more than the window ago goes, files and index;
// the archive of the same stream and the segment being written stay; a
// second call finds nothing more; the report says what is held.
func TestWindow(t *testing.T) {
	cam := newCamera(t, 40)
	dir := t.TempDir()
	s := openStore(t, dir)
	cam.record(t, s, "cam", segment.ClassArchive, 0, 10)
	cam.record(t, s, "cam", segment.ClassBuffer, 10, 30)
	open := cam.writer(t, s, "cam", segment.ClassBuffer)
	for _, f := range cam.frames[30*fps : 31*fps] {
		if err := open.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	before := classSegs(t, s, "cam", segment.ClassBuffer)
	b, err := New(s, Policy{Window: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := at(31)
	rep, err := b.Enforce(now)
	if err != nil {
		t.Fatal(err)
	}
	var want int
	var wantBytes, kept int64
	for _, si := range before {
		gone := si.Checksum != "" && !si.End.After(now.Add(-10*time.Second))
		if gone {
			want++
			wantBytes += si.Bytes
		} else if si.Checksum != "" {
			kept += si.Bytes
		}
		if onDisk(dir, si) == gone {
			t.Errorf("segment %v..%v: on disk %v, evicted %v", si.Start, si.End, !gone, gone)
		}
	}
	if want == 0 || rep.Evicted != want || rep.Bytes != wantBytes || rep.Early != 0 || rep.OverBudget || rep.Held != kept {
		t.Errorf("report %+v, want %d segments / %d bytes evicted, %d held", rep, want, wantBytes, kept)
	}
	if rep.Reach <= 0 || rep.Reach > 10*time.Second {
		t.Errorf("reach %v, want within the 10 s window", rep.Reach)
	}
	if got := classSegs(t, s, "cam", segment.ClassArchive); len(got) != 5 {
		t.Errorf("archive segments %d after buffer eviction, want all 5", len(got))
	}
	if again, err := b.Enforce(now); err != nil || again.Evicted != 0 || again.Held != kept {
		t.Errorf("second call: %+v %v", again, err)
	}
	// A window ending after everything: all closed buffer segments go, the
	// one being written stays.
	if _, err := b.Enforce(at(3600)); err != nil {
		t.Fatal(err)
	}
	left := classSegs(t, s, "cam", segment.ClassBuffer)
	if len(left) != 1 || left[0].Checksum != "" {
		t.Errorf("left %+v, want only the segment being written", left)
	}
	if err := open.Close(); err != nil {
		t.Fatal(err)
	}
	if rc, err := s.Check(false); err != nil || !rc.Consistent() {
		t.Errorf("Check: %+v %v", rc, err)
	}
}

// TestBudget: a budget smaller than the window needs evicts early, the
// oldest first across streams, down to the budget; the report and the
// totals say so; what survives is the newest of each stream.
func TestBudget(t *testing.T) {
	cam := newCamera(t, 40)
	dir := t.TempDir()
	s := openStore(t, dir)
	cam.record(t, s, "a", segment.ClassBuffer, 0, 20)
	cam.record(t, s, "b", segment.ClassBuffer, 10, 30)
	var total int64
	before := map[string][]segment.SegmentInfo{}
	for _, id := range []string{"a", "b"} {
		before[id] = classSegs(t, s, id, segment.ClassBuffer)
		for _, si := range before[id] {
			total += si.Bytes
		}
	}
	budget := total / 2
	b, err := New(s, Policy{Window: time.Hour, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := b.Enforce(at(30))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OverBudget || rep.Early == 0 || rep.Early != rep.Evicted || rep.Held > budget || rep.Held+rep.Bytes != total {
		t.Errorf("report %+v for %d bytes under a %d budget", rep, total, budget)
	}
	// Oldest first across streams: every evicted segment ended no later
	// than every kept one.
	var lastEvicted, firstKept time.Time
	for _, id := range []string{"a", "b"} {
		kept := map[string]bool{}
		for _, si := range classSegs(t, s, id, segment.ClassBuffer) {
			kept[si.Path] = true
			if firstKept.IsZero() || si.End.Before(firstKept) {
				firstKept = si.End
			}
		}
		for _, si := range before[id] {
			if !kept[si.Path] && si.End.After(lastEvicted) {
				lastEvicted = si.End
			}
		}
	}
	if lastEvicted.IsZero() || lastEvicted.After(firstKept) {
		t.Errorf("evicted up to %v, kept from %v: not the oldest first", lastEvicted, firstKept)
	}
	if want := at(30).Sub(firstKept) + 2*time.Second; rep.Reach > want || rep.Reach < want-2*time.Second || rep.Reach >= 30*time.Second {
		t.Errorf("reach %v: want about %v, from the oldest segment kept", rep.Reach, want)
	}
	segs, bytes, early := b.Totals()
	if segs != uint64(rep.Evicted) || bytes != uint64(rep.Bytes) || early != uint64(rep.Early) {
		t.Errorf("totals %d %d %d, report %+v", segs, bytes, early, rep)
	}
	if err := b.SetPolicy(Policy{Window: time.Hour, Budget: -1}); err == nil {
		t.Error("a negative budget was accepted")
	}
}

// TestReopen: a buffer opened again over the same store (a restart)
// learns what is held from the index and goes on evicting; Promote takes
// a segment out of the buffer's accounting.
func TestReopen(t *testing.T) {
	cam := newCamera(t, 20)
	dir := t.TempDir()
	s := openStore(t, dir)
	cam.record(t, s, "cam", segment.ClassBuffer, 0, 12)
	b, _ := New(s, Policy{Window: time.Hour})
	r1, err := b.Enforce(at(12))
	if err != nil {
		t.Fatal(err)
	}
	segs := classSegs(t, s, "cam", segment.ClassBuffer)
	p, err := b.Promote(segs[len(segs)-1])
	if err != nil || p.Class != segment.ClassArchive {
		t.Fatalf("promote: %+v %v", p, err)
	}
	if _, err := b.Promote(p); err == nil {
		t.Error("an archive segment was promoted")
	}
	s.Close()
	s2 := openStore(t, dir)
	b2, _ := New(s2, Policy{Window: 5 * time.Second})
	r2, err := b2.Enforce(at(12))
	if err != nil {
		t.Fatal(err)
	}
	if r2.Held+r2.Bytes != r1.Held-p.Bytes || r2.Evicted == 0 {
		t.Errorf("after reopen %+v; before %+v, promoted %d bytes", r2, r1, p.Bytes)
	}
	if got := classSegs(t, s2, "cam", segment.ClassArchive); len(got) != 1 {
		t.Errorf("archive after eviction: %v, want the promoted one", got)
	}
	if rc, err := s2.Check(false); err != nil || !rc.Consistent() {
		t.Errorf("Check: %+v %v", rc, err)
	}
}

// TestEvictWhileRecording: eviction under a budget far smaller than what
// is written never fails or stalls a live writer and never removes its
// segment being written; every frame written is in the store's closed
// segments or evicted whole.
func TestEvictWhileRecording(t *testing.T) {
	cam := newCamera(t, 40)
	dir := t.TempDir()
	s := openStore(t, dir)
	b, _ := New(s, Policy{Window: time.Hour, Budget: 1})
	w := cam.writer(t, s, "cam", segment.ClassBuffer)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	var calls int
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.Enforce(at(40)); err != nil {
				t.Error(err)
				return
			}
			calls++
			time.Sleep(time.Millisecond)
		}
	}()
	for i, f := range cam.frames {
		if err := w.WriteFrame(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := b.Enforce(at(40))
	if err != nil {
		t.Fatal(err)
	}
	segs, _, _ := b.Totals()
	left := classSegs(t, s, "cam", segment.ClassBuffer)
	t.Logf("%d Enforce calls while recording; %d segments evicted, %d left", calls, segs, len(left))
	if len(left) != 0 || rep.Held != 0 || segs != 20 {
		t.Errorf("left %d segments, held %d, evicted %d: want all 20 evicted once closed", len(left), rep.Held, segs)
	}
	if rc, err := s.Check(false); err != nil || !rc.Consistent() {
		t.Errorf("Check: %+v %v", rc, err)
	}
}
