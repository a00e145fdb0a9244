package segment

import (
	"math"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// TestWriterH265 records a real H.265 stream (libx265, closed 1 s GOPs, no
// B-frames) and checks that ffprobe decodes every segment cleanly with the
// indexed duration.
func TestWriterH265(t *testing.T) {
	requireTool(t, "ffmpeg")
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "5",
		"-pix_fmt", "yuv420p", "-c:v", "libx265", "-x265-params", "keyint=25:min-keyint=25:bframes=0:log-level=error",
		"-f", "hevc", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg hevc: %v: %s", err, stderrOf(err))
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	var vps, sps, pps []byte
	var aus [][][]byte
	var cur [][]byte
	for _, n := range nalus {
		typ := h265.NALUType((n[0] >> 1) & 0x3f)
		switch typ {
		case h265.NALUType_VPS_NUT:
			vps = n
		case h265.NALUType_SPS_NUT:
			sps = n
		case h265.NALUType_PPS_NUT:
			pps = n
		}
		cur = append(cur, n)
		if typ < 32 { // VCL: one slice per picture here
			aus = append(aus, cur)
			cur = nil
		}
	}
	s := openTestStore(t, Options{})
	w, err := s.NewWriter(WriterConfig{Stream: "hevc", SegmentDuration: 2 * time.Second,
		Tracks: []Track{{ClockRate: 90000, Codec: &mp4.CodecH265{VPS: vps, SPS: sps, PPS: pps}}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, au := range aus {
		payload, err := h264.AVCC(au).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pts := int64(i) * 90000 / testFPS
		if err := w.WriteFrame(Frame{PTS: pts, DTS: pts, Wall: testWall0.Add(time.Duration(i) * time.Second / testFPS),
			Random: h265.IsRandomAccess(au), Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := s.Segments("hevc", time.Time{}, time.Time{})
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	for _, sg := range segs {
		pr := ffprobe(t, filepath.Join(s.Dir(), filepath.FromSlash(sg.Path)))
		if pr.errors != "" {
			t.Errorf("ffprobe %s: %s", sg.Path, pr.errors)
		}
		if d := sg.End.Sub(sg.Start).Seconds(); math.Abs(pr.duration-d) > 1.0/testFPS+0.01 {
			t.Errorf("ffprobe duration %.3f, indexed %.3f", pr.duration, d)
		}
	}
}
