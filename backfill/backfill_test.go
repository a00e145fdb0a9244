package backfill

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
	"github.com/understudy-nvr/understudy/chaos/check"
	"github.com/understudy-nvr/understudy/replica"
	"github.com/understudy-nvr/understudy/segment"
)

const fps = 25

var wall0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// camera is the whole recording of a simulated camera: frame i at
// wall0 + i/fps, an IDR every second, each frame stamped with its number.
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
		c.frames = append(c.frames, segment.Frame{Track: 0, PTS: pts, DTS: pts, Wall: w, Random: f.IDR, Payload: avcc})
	}
	return c
}

// record writes the frames of [from, to) seconds into a new segment run of
// store s (class cls), segments of segDur, wall times moved by skew.
func (c *camera) record(t *testing.T, s *segment.Store, cls segment.Class, from, to float64, segDur, skew time.Duration) {
	t.Helper()
	w, err := s.NewWriter(segment.WriterConfig{Stream: "cam", Class: cls, SegmentDuration: segDur,
		Tracks: []segment.Track{{ClockRate: 90000, Codec: &mp4.CodecH264{SPS: c.sps, PPS: c.pps}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c.frames[int(from*fps):int(to*fps)] {
		f.Wall = f.Wall.Add(skew)
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T, node, dir string) *segment.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := segment.Open(segment.Options{Dir: dir, Node: node, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// peers lists the segments of the stores as the other holders, each
// fetched through fetch (nil: as stored).
func peers(stores []*segment.Store, fetch func(si segment.SegmentInfo, b []byte) ([]byte, error)) func(context.Context, string, time.Time, time.Time) ([]segment.RemoteSegment, bool) {
	return func(_ context.Context, stream string, from, to time.Time) ([]segment.RemoteSegment, bool) {
		var out []segment.RemoteSegment
		for _, s := range stores {
			segs, err := s.Segments(stream, from, to)
			if err != nil {
				return nil, false
			}
			for _, si := range segs {
				out = append(out, segment.RemoteSegment{Info: si, Fetch: func(context.Context) ([]byte, error) {
					b, err := s.ReadSegment(si)
					if err == nil && fetch != nil {
						return fetch(si, b)
					}
					return b, err
				}})
			}
		}
		return out, true
	}
}

func at(s float64) time.Time { return wall0.Add(time.Duration(s * float64(time.Second))) }

// framesOf exports the archive of s over [from, to) and returns the frame
// numbers it plays, in order.
func framesOf(t *testing.T, s *segment.Store, from, to time.Time) []uint64 {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Export(context.Background(), "cam", from, to, &buf); err != nil {
		t.Fatal(err)
	}
	fs, err := check.ExtractFrames(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, f := range fs {
		out = append(out, f.Stamp.Frame)
	}
	return out
}

func wantRun(t *testing.T, got []uint64, first, n uint64) {
	t.Helper()
	if uint64(len(got)) != n {
		t.Errorf("%d frames, want %d (%d..%d)", len(got), n, first, first+n-1)
	}
	for i, f := range got {
		if f != first+uint64(i) {
			t.Fatalf("frame %d is number %d, want %d: a frame missing or twice", i, f, first+uint64(i))
		}
	}
}

// TestRepairFillsHoles: the home n1 lost 4..8 s of its archive (it was
// down). Its own buffer holds 4..6 s (it recorded as replica before), n2
// (7 ms clock skew, other segment boundaries) holds 1..12 s, n3 holds
// 6..9 s but its copy arrives corrupt. After Repair the archive has no
// hole, nothing of n3 is in it, and an export of 0..12 s plays every frame
// once, in order; a second Repair does nothing.
func TestRepairFillsHoles(t *testing.T) {
	cam := newCamera(t, 14)
	n1, n2, n3 := openStore(t, "n1", ""), openStore(t, "n2", ""), openStore(t, "n3", "")
	cam.record(t, n1, segment.ClassArchive, 0, 4, 2*time.Second, 0)
	cam.record(t, n1, segment.ClassBuffer, 4, 6, 2*time.Second, 0)
	cam.record(t, n1, segment.ClassArchive, 8, 12, 2*time.Second, 0)
	cam.record(t, n2, segment.ClassBuffer, 1, 12, 3*time.Second, 7*time.Millisecond)
	cam.record(t, n3, segment.ClassBuffer, 6, 9, 3*time.Second, -3*time.Millisecond)
	corrupt := func(si segment.SegmentInfo, b []byte) ([]byte, error) {
		if si.Node == "n3" {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0xff
		}
		return b, nil
	}
	buf, err := replica.New(n1, replica.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(Config{Store: n1, Self: "n1", Buffer: buf, Remote: peers([]*segment.Store{n2, n3}, corrupt), Now: func() time.Time { return at(3600) }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Repair(context.Background(), "cam", at(0), at(12))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holes) != 1 || !res.Holes[0].Start.Equal(at(4)) || !res.Holes[0].End.Equal(at(8)) {
		t.Errorf("holes %v, want 4..8 s", res.Holes)
	}
	nodes := map[string]int{}
	for _, si := range res.Filled {
		nodes[si.Node]++
	}
	if nodes["n1"] == 0 || nodes["n3"] != 0 || len(res.Final) != 0 {
		t.Errorf("filled from %v (final %v): want its own buffer first and nothing of n3", nodes, res.Final)
	}
	// Its own buffer became archive in place: no copy, no buffer left.
	if res.Promoted != nodes["n1"] {
		t.Errorf("%d of its own segments promoted, %d filled from it", res.Promoted, nodes["n1"])
	}
	if left, _ := buf.Segments("cam", at(0), at(12)); len(left) != 0 {
		t.Errorf("buffer segments left after promotion: %v", left)
	}
	if h, _ := f.Holes("cam", at(0), at(12)); len(h) != 0 {
		t.Errorf("holes after the repair: %v", h)
	}
	segs, _ := n1.Segments("cam", at(0), at(12))
	for _, si := range segs {
		if si.Node == "n3" {
			t.Errorf("n3's corrupt copy was indexed: %v", si)
		}
	}
	wantRun(t, framesOf(t, n1, at(0), at(12)), 0, 12*fps)
	again, err := f.Repair(context.Background(), "cam", at(0), at(12))
	if err != nil || len(again.Filled) != 0 || len(again.Holes) != 0 {
		t.Errorf("second repair: %+v, %v; want nothing to do", again, err)
	}
}

// TestRepairFinalOnce: a hole no holder has is final once every holder
// answered and it is old enough, reported once, and not tried again; while
// a holder did not answer it stays pending.
func TestRepairFinalOnce(t *testing.T) {
	cam := newCamera(t, 10)
	n1, n2 := openStore(t, "n1", ""), openStore(t, "n2", "")
	cam.record(t, n1, segment.ClassArchive, 0, 3, 3*time.Second, 0)
	cam.record(t, n1, segment.ClassArchive, 7, 10, 3*time.Second, 0)
	cam.record(t, n2, segment.ClassBuffer, 5, 10, 3*time.Second, 0) // 3..5 s: nobody
	now := at(60)
	complete := true
	remote := peers([]*segment.Store{n2}, nil)
	f, _ := New(Config{Store: n1, Self: "n1", Now: func() time.Time { return now }, FinalAfter: 2 * time.Minute,
		Remote: func(ctx context.Context, s string, a, b time.Time) ([]segment.RemoteSegment, bool) {
			segs, _ := remote(ctx, s, a, b)
			return segs, complete
		}})
	ctx := context.Background()
	res, _ := f.Repair(ctx, "cam", at(0), at(10))
	if len(res.Final) != 0 || len(res.Pending) != 1 || len(res.Filled) == 0 {
		t.Errorf("young hole: final %v pending %v filled %d; want pending 3..5 s, 5..7 s filled", res.Final, res.Pending, len(res.Filled))
	}
	now, complete = at(600), false
	if res, _ = f.Repair(ctx, "cam", at(0), at(10)); len(res.Final) != 0 {
		t.Errorf("a holder did not answer: final %v", res.Final)
	}
	complete = true
	res, _ = f.Repair(ctx, "cam", at(0), at(10))
	if len(res.Final) != 1 || !res.Final[0].Start.Equal(at(3)) || !res.Final[0].End.Equal(at(5)) {
		t.Errorf("final %v, want 3..5 s", res.Final)
	}
	if res, _ = f.Repair(ctx, "cam", at(0), at(10)); len(res.Final)+len(res.Holes)+len(res.Filled) != 0 {
		t.Errorf("after the final report: %+v; want nothing", res)
	}
}

// TestRepairCrashResumes: a repair stopped in the middle of a copy (the
// process dies) leaves nothing half-indexed; after a restart the next
// repair copies the rest, nothing twice, and the store checks clean.
func TestRepairCrashResumes(t *testing.T) {
	cam := newCamera(t, 12)
	dir := t.TempDir()
	n1, n2 := openStore(t, "n1", dir), openStore(t, "n2", "")
	cam.record(t, n1, segment.ClassArchive, 0, 2, 2*time.Second, 0)
	cam.record(t, n2, segment.ClassBuffer, 0, 12, 2*time.Second, 0)
	var copies atomic.Int32 // copies run ahead of their turn, concurrently
	ctx, cancel := context.WithCancel(context.Background())
	f, _ := New(Config{Store: n1, Self: "n1", Now: func() time.Time { return at(3600) },
		Remote: peers([]*segment.Store{n2}, func(_ segment.SegmentInfo, b []byte) ([]byte, error) {
			if copies.Add(1) == 3 {
				cancel() // dies while copying the third
				return nil, context.Canceled
			}
			return b, nil
		})})
	if _, err := f.Repair(ctx, "cam", at(0), at(12)); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted repair: %v", err)
	}
	n1.Close()
	n1 = openStore(t, "n1", dir)
	if rep, err := n1.Check(false); err != nil || !rep.Consistent() {
		t.Fatalf("after the crash: %v %v", rep, err)
	}
	kept, _ := n1.Segments("cam", at(0), at(12))
	before := len(kept) - 1 // the one recorded at 0..2 s
	f, _ = New(Config{Store: n1, Self: "n1", Now: func() time.Time { return at(3600) }, Remote: peers([]*segment.Store{n2}, nil)})
	res, err := f.Repair(context.Background(), "cam", at(0), at(12))
	if err != nil {
		t.Fatal(err)
	}
	// 2..12 s is 5 segments: one or two went in before the crash (the
	// second's copy ran ahead of its turn), the rest after the restart.
	if before < 1 || before > 2 || len(res.Filled) != 5-before {
		t.Errorf("%d segments copied before the crash, %d after the restart; want 5 in all", before, len(res.Filled))
	}
	segs, _ := n1.Segments("cam", at(0), at(12))
	seen := map[string]bool{}
	for _, si := range segs {
		k := si.Node + si.Start.String()
		if seen[k] {
			t.Errorf("segment %v indexed twice", si)
		}
		seen[k] = true
	}
	if rep, err := n1.Check(false); err != nil || !rep.Consistent() {
		t.Errorf("fsck after the resumed repair: %v %v", rep, err)
	}
	wantRun(t, framesOf(t, n1, at(0), at(12)), 0, 12*fps)
}

// TestRepairRefillsQuarantined: a segment of the home's archive whose
// bytes were flipped on disk fails its checksum when read, is quarantined
// (a hole), and the next repair refills it from a peer: the export plays
// every frame again.
func TestRepairRefillsQuarantined(t *testing.T) {
	cam := newCamera(t, 8)
	n1, n2 := openStore(t, "n1", ""), openStore(t, "n2", "")
	cam.record(t, n1, segment.ClassArchive, 0, 8, 2*time.Second, 0)
	cam.record(t, n2, segment.ClassBuffer, 0, 8, 4*time.Second, 5*time.Millisecond)
	segs, _ := n1.Segments("cam", at(0), at(8))
	victim := segs[1] // 2..4 s
	path := filepath.Join(n1.Dir(), filepath.FromSlash(victim.Path))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-100] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.ReadSegment(victim); !errors.Is(err, segment.ErrChecksumMismatch) {
		t.Fatalf("reading the flipped segment: %v, want a checksum mismatch", err)
	}
	f, _ := New(Config{Store: n1, Self: "n1", Remote: peers([]*segment.Store{n2}, nil), Now: func() time.Time { return at(3600) }})
	res, err := f.Repair(context.Background(), "cam", at(0), at(8))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holes) != 1 || !res.Holes[0].Start.Equal(at(2)) || len(res.Filled) == 0 {
		t.Fatalf("repair after the quarantine: holes %v, filled %d", res.Holes, len(res.Filled))
	}
	wantRun(t, framesOf(t, n1, at(0), at(8)), 0, 8*fps)
}

// TestRepairFillsOwnOutage: a home that was frozen recorded 4..8 s as the
// camera's outage (its RTSP session timed out) while n2 received the
// camera: the repair fills it from n2. Time nobody holds (a real camera
// outage, 14..16 s) stays excused: neither pending nor final.
func TestRepairFillsOwnOutage(t *testing.T) {
	cam := newCamera(t, 20)
	n1, n2 := openStore(t, "n1", ""), openStore(t, "n2", "")
	cam.record(t, n1, segment.ClassArchive, 0, 4, 2*time.Second, 0)
	cam.record(t, n1, segment.ClassArchive, 8, 14, 2*time.Second, 0)
	cam.record(t, n1, segment.ClassArchive, 16, 20, 2*time.Second, 0)
	cam.record(t, n2, segment.ClassBuffer, 0, 14, 2*time.Second, 0)
	cam.record(t, n2, segment.ClassBuffer, 16, 20, 2*time.Second, 0)
	for _, iv := range []segment.Interval{{Start: at(4), End: at(8)}, {Start: at(14), End: at(16)}} {
		if err := n1.AddSourceOutage("cam", iv); err != nil {
			t.Fatal(err)
		}
	}
	f, err := New(Config{Store: n1, Self: "n1", Remote: peers([]*segment.Store{n2}, nil), Now: func() time.Time { return at(3600) }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Repair(context.Background(), "cam", at(0), at(20))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Filled) == 0 || len(res.Pending) != 0 || len(res.Final) != 0 {
		t.Fatalf("repair %+v: want 4..8 s filled from n2, nothing pending or final", res)
	}
	wantRun(t, framesOf(t, n1, at(0), at(14)), 0, 14*fps)
	if h, _ := f.Holes("cam", at(0), at(20)); len(h) != 0 {
		t.Errorf("holes after the repair: %v (the camera's own outage 14..16 s is no hole)", h)
	}
	again, err := f.Repair(context.Background(), "cam", at(0), at(20))
	if err != nil || len(again.Filled) != 0 || len(again.Pending) != 0 || len(again.Final) != 0 {
		t.Errorf("second repair: %+v, %v; want nothing to do", again, err)
	}
}
