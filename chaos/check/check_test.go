package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"

	"github.com/understudy-nvr/understudy/chaos/camsim"
)

// recording is testdata made by the real recorder (TestUpdateTestdata).
type recording struct {
	mp4 []byte
	log []camsim.SendLogEntry
	win window
}

func loadRecording(t testing.TB) recording {
	t.Helper()
	var r recording
	var err error
	if r.mp4, err = os.ReadFile(filepath.Join("testdata", "record.mp4")); err != nil {
		t.Fatal(err)
	}
	if r.log, err = camsim.ReadSendLogFile(filepath.Join("testdata", "record.sendlog")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "window.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r.win); err != nil {
		t.Fatal(err)
	}
	return r
}

// opts checks the exported window, less a frame at its end (the export
// ends before To; a frame stamped just before it may fall after).
func (r recording) opts() Options {
	return Options{Stream: "cam0", From: r.win.From, To: r.win.To.Add(-100 * time.Millisecond)}
}

func check(t *testing.T, mp4 []byte, log []camsim.SendLogEntry, o Options) *Report {
	t.Helper()
	frames, err := ExtractFrames(mp4)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Check(frames, log, o)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteTable(&b, []*Report{rep})
	t.Logf("\n%s", b.String())
	return rep
}

// TestRealRecording: the recorder's export of an undisturbed camera has
// every frame once, in order, on time.
func TestRealRecording(t *testing.T) {
	r := loadRecording(t)
	rep := check(t, r.mp4, r.log, r.opts())
	if !rep.Pass || rep.Lost != 0 || rep.Duplicates != 0 {
		t.Fatalf("report %+v, want a pass", rep)
	}
	if rep.Present < 190 || rep.Present != rep.Generated {
		t.Errorf("%d of %d frames present over ~8 s at 25 fps", rep.Present, rep.Generated)
	}

	// An independent parser (mediacommon's) sees the same samples.
	var p pmp4.Presentation
	if err := p.Unmarshal(bytes.NewReader(r.mp4)); err != nil {
		t.Fatal(err)
	}
	f, err := ParseMP4(r.mp4)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tracks) != len(p.Tracks) {
		t.Fatalf("%d tracks, mediacommon %d", len(f.Tracks), len(p.Tracks))
	}
	for i, tr := range p.Tracks {
		got := f.Tracks[i]
		if got.ID != uint32(tr.ID) || got.TimeScale != tr.TimeScale || len(got.Samples) != len(tr.Samples) {
			t.Fatalf("track %d: id %d scale %d %d samples; mediacommon %d %d %d", i, got.ID, got.TimeScale, len(got.Samples), tr.ID, tr.TimeScale, len(tr.Samples))
		}
		for k, s := range tr.Samples {
			g := got.Samples[k]
			pl, err := s.GetPayload()
			if err != nil {
				t.Fatal(err)
			}
			if g.Size != s.PayloadSize || g.Duration != s.Duration || g.PTSOffset != s.PTSOffset || g.Sync == s.IsNonSyncSample ||
				!bytes.Equal(r.mp4[g.Offset:g.Offset+int64(g.Size)], pl) {
				t.Fatalf("track %d sample %d: %+v, mediacommon %+v", i, k, g, s)
			}
		}
	}
}

// edit rewrites the recording through mediacommon after fn changed the
// samples of its video track.
func edit(t testing.TB, mp4 []byte, fn func(samples []*pmp4.Sample) []*pmp4.Sample) []byte {
	t.Helper()
	var p pmp4.Presentation
	if err := p.Unmarshal(bytes.NewReader(mp4)); err != nil {
		t.Fatal(err)
	}
	for _, tr := range p.Tracks {
		// Payloads read now: GetPayload reads from the original file.
		for _, s := range tr.Samples {
			pl, err := s.GetPayload()
			if err != nil {
				t.Fatal(err)
			}
			pl = slices.Clone(pl)
			s.GetPayload = func() ([]byte, error) { return pl, nil }
		}
	}
	p.Tracks[0].Samples = fn(p.Tracks[0].Samples)
	var b bytes.Buffer
	if err := p.Marshal(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// cut removes samples [i, j) the way an exporter shows a hole: the sample
// before it is held over it.
func cut(samples []*pmp4.Sample, i, j int) []*pmp4.Sample {
	for _, s := range samples[i:j] {
		samples[i-1].Duration += s.Duration
	}
	return slices.Delete(samples, i, j)
}

func stampOf(t *testing.T, mp4 []byte, idx int) uint64 {
	t.Helper()
	frames, err := ExtractFrames(mp4)
	if err != nil {
		t.Fatal(err)
	}
	return frames[idx].Stamp.Frame
}

// TestCutFrames: frames cut out of the real file are found, exactly those,
// as lost ranges; the file stays on time (the hole is held), so there is
// no timing error.
func TestCutFrames(t *testing.T) {
	r := loadRecording(t)
	a, b := stampOf(t, r.mp4, 40), stampOf(t, r.mp4, 100)
	cutMP4 := edit(t, r.mp4, func(s []*pmp4.Sample) []*pmp4.Sample {
		s = cut(s, 100, 112) // 12 frames, an IDR among them (GOP 25)
		return cut(s, 40, 41)
	})
	rep := check(t, cutMP4, r.log, r.opts())
	want := []Range{{First: a, Last: a}, {First: b, Last: b + 11}}
	var got []Range
	for _, lr := range rep.LostRanges {
		got = append(got, Range{First: lr.First, Last: lr.Last})
	}
	if rep.Pass || rep.Lost != 13 || !slices.Equal(got, want) {
		t.Fatalf("lost %d in %v, pass %v; want 13 in %v", rep.Lost, got, rep.Pass, want)
	}
	if rep.Duplicates != 0 || rep.OutOfOrder != 0 || rep.TimingErrors != 0 {
		t.Errorf("cutting frames gave dup %d order %d timing %d", rep.Duplicates, rep.OutOfOrder, rep.TimingErrors)
	}
	if rep.SecondsLost != 13.0/25 {
		t.Errorf("seconds lost %v", rep.SecondsLost)
	}

	// The same hole inside a window no recorder was alive is excused, and
	// so is what follows it up to the camera's next IDR frame.
	o := r.opts()
	fa := func(n uint64) time.Time {
		for _, e := range r.log {
			if e.IsRange() && n >= e.First && n <= e.Last {
				return e.FrameTime(n)
			}
		}
		t.Fatalf("frame %d not logged", n)
		return time.Time{}
	}
	o.Down = []Interval{{fa(b), fa(b + 5)}} // the rest of the hole is before the next IDR
	rep = check(t, cutMP4, r.log, o)
	if rep.Lost != 1 || rep.NoRecorder != 5 || rep.Starting != 7 {
		t.Errorf("down window over the hole: lost %d no recorder %d starting %d; want 1, 5, 7", rep.Lost, rep.NoRecorder, rep.Starting)
	}

	// A frame the camera logged as skipped (starved) is the camera's.
	log := slices.Clone(r.log)
	var split []camsim.SendLogEntry
	for _, e := range log {
		if e.Ev == camsim.EvSent && a >= e.First && a <= e.Last {
			before, mid, after := e, e, e
			before.Last, before.T1 = a-1, e.FrameTime(a-1).UnixNano()
			mid.Ev, mid.Why, mid.First, mid.Last, mid.IDR = camsim.EvSkip, camsim.SkipBehind, a, a, nil
			mid.T0, mid.T1 = e.FrameTime(a).UnixNano(), e.FrameTime(a).UnixNano()
			after.First, after.T0 = a+1, e.FrameTime(a+1).UnixNano()
			if e.IDR != nil && *e.IDR <= a {
				before.IDR, after.IDR = e.IDR, nil
			}
			if before.First <= before.Last {
				split = append(split, before)
			}
			split = append(split, mid, after)
			continue
		}
		split = append(split, e)
	}
	o = r.opts()
	rep = check(t, cutMP4, split, o)
	if rep.Lost != 12 || rep.CameraSkip[camsim.SkipBehind] != 1 {
		t.Errorf("camera skip: lost %d, skips %v; want 12 and 1 behind", rep.Lost, rep.CameraSkip)
	}
	// And the camera's skip found in the recording is a phantom frame.
	rep = check(t, r.mp4, split, o)
	if rep.Phantom != 1 || rep.Pass {
		t.Errorf("a frame never sent but recorded: phantom %d, pass %v", rep.Phantom, rep.Pass)
	}
}

// TestDuplicateAndOrder: a sample repeated and two swapped are found.
func TestDuplicateAndOrder(t *testing.T) {
	r := loadRecording(t)
	dup := edit(t, r.mp4, func(s []*pmp4.Sample) []*pmp4.Sample {
		c := *s[60]
		return slices.Insert(s, 61, &c)
	})
	rep := check(t, dup, r.log, r.opts())
	if rep.Duplicates != 1 || rep.Lost != 0 || rep.Pass {
		t.Errorf("one frame twice: dup %d lost %d pass %v", rep.Duplicates, rep.Lost, rep.Pass)
	}
	swapped := edit(t, r.mp4, func(s []*pmp4.Sample) []*pmp4.Sample {
		s[70].GetPayload, s[71].GetPayload = s[71].GetPayload, s[70].GetPayload
		return s
	})
	rep = check(t, swapped, r.log, r.opts())
	if rep.OutOfOrder != 1 || rep.Duplicates != 0 || rep.Lost != 0 || rep.Pass || rep.TimingErrors != 0 || rep.MaxSkew < 39*time.Millisecond {
		t.Errorf("two frames swapped: order %d dup %d lost %d timing %d pass %v", rep.OutOfOrder, rep.Duplicates, rep.Lost, rep.TimingErrors, rep.Pass)
	}
	// A frame held 300 ms too long shifts every later one off its time.
	late := edit(t, r.mp4, func(s []*pmp4.Sample) []*pmp4.Sample {
		s[50].Duration += 27000
		return s
	})
	rep = check(t, late, r.log, r.opts())
	if rep.TimingErrors == 0 || rep.MaxSkew < 250*time.Millisecond || rep.Pass {
		t.Errorf("a 300 ms stretch: timing errors %d, max skew %v", rep.TimingErrors, rep.MaxSkew)
	}
}

// TestFragmented: the same samples as fMP4 (init + parts, as segments
// are stored) give the same frames.
func TestFragmented(t *testing.T) {
	r := loadRecording(t)
	frag := toFMP4(t, r.mp4, 25)
	want, err := ExtractFrames(r.mp4)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ExtractFrames(frag)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames from fMP4, %d from MP4", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("frame %d: %+v from fMP4, %+v from MP4", i, got[i], want[i])
		}
	}
	if f, _ := ParseMP4(frag); !f.Fragmented {
		t.Error("not seen as fragmented")
	}
}

// toFMP4 rewrites a progressive MP4 as fMP4 with parts of per samples.
func toFMP4(t testing.TB, mp4 []byte, per int) []byte {
	t.Helper()
	var p pmp4.Presentation
	if err := p.Unmarshal(bytes.NewReader(mp4)); err != nil {
		t.Fatal(err)
	}
	var buf seekablebuffer.Buffer
	init := fmp4.Init{}
	for _, tr := range p.Tracks {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: tr.ID, TimeScale: tr.TimeScale, Codec: tr.Codec})
	}
	if err := init.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	out := slices.Clone(buf.Bytes())
	tr := p.Tracks[0]
	var dts uint64
	for i := 0; i < len(tr.Samples); i += per {
		pt := &fmp4.PartTrack{ID: tr.ID, BaseTime: dts}
		for _, s := range tr.Samples[i:min(i+per, len(tr.Samples))] {
			pl, err := s.GetPayload()
			if err != nil {
				t.Fatal(err)
			}
			pt.Samples = append(pt.Samples, &fmp4.Sample{Duration: s.Duration, PTSOffset: s.PTSOffset, IsNonSyncSample: s.IsNonSyncSample, Payload: slices.Clone(pl)})
			dts += uint64(s.Duration)
		}
		var pb seekablebuffer.Buffer
		if err := (&fmp4.Part{SequenceNumber: uint32(i / per), Tracks: []*fmp4.PartTrack{pt}}).Marshal(&pb); err != nil {
			t.Fatal(err)
		}
		out = append(out, pb.Bytes()...)
	}
	return out
}

// TestBadInput: malformed files and wrong use are errors, never panics.
func TestBadInput(t *testing.T) {
	r := loadRecording(t)
	for name, b := range map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("this is not an mp4 file at all"),
		"truncated head": r.mp4[:200],
		"truncated":      r.mp4[:len(r.mp4)/2],
		"no moov":        r.mp4[:32],
	} {
		if _, err := ExtractFrames(b); err == nil {
			t.Errorf("%s: no error", name)
		} else if !errors.Is(err, ErrMP4) && !strings.HasPrefix(err.Error(), "check:") {
			t.Errorf("%s: %v", name, err)
		}
	}
	frames, _ := ExtractFrames(r.mp4)
	if _, err := Check(frames, r.log, Options{From: r.win.To, To: r.win.From}); err == nil {
		t.Error("a window backwards: no error")
	}
	if _, err := Check(frames, r.log, Options{Camera: 3, From: r.win.From, To: r.win.To}); err == nil {
		t.Error("another camera's log: no error")
	}
	if _, err := Check(frames, r.log[1:], Options{From: r.win.From, To: r.win.To}); err == nil {
		t.Error("a log without its start: no error")
	}
}
