package session

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// TestVideoTrackKeepsBFrames feeds the access units of a real x264 stream
// with B-frames (High profile, -bf 2, x264's default B-pyramid: what many
// cameras send) to the video track, with their PTS, as the RTP path does.
// Every frame must come out, in strictly increasing DTS: mediacommon's DTS
// extractor fails on some of these B-frames, and dropping frames up to the
// next keyframe on such a failure lost 0.5-1.6 s of video per error.
func TestVideoTrackKeepsBFrames(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bframes.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", "12",
		"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "2", "-g", "50", "-b:v", "2M", "-pix_fmt", "yuv420p",
		"-movflags", "frag_keyframe+empty_moov+negative_cts_offsets", "-f", "mp4", src).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg (apt-get install -y ffmpeg): %v\n%s", err, out)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	codec, ok := init.Tracks[0].Codec.(*mp4.CodecH264)
	if !ok {
		t.Fatalf("track codec %T", init.Tracks[0].Codec)
	}
	scale := int64(init.Tracks[0].TimeScale)
	var parts fmp4.Parts
	if err := parts.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	type sample struct {
		au  h264.AVCC
		pts int64
	}
	var samples []sample
	var keyframes []int
	for _, p := range parts {
		for _, tr := range p.Tracks {
			dts := int64(tr.BaseTime)
			for _, smp := range tr.Samples {
				var au h264.AVCC
				if err := au.Unmarshal(smp.Payload); err != nil {
					t.Fatal(err)
				}
				if h264.IsRandomAccess(au) {
					keyframes = append(keyframes, len(samples))
				}
				samples = append(samples, sample{au, (dts + int64(smp.PTSOffset)) * 90000 / scale})
				dts += int64(smp.Duration)
			}
		}
	}
	// A recorder joins a camera at any keyframe: the extractor's state
	// depends on the groups of B-frames it saw first.
	// (negative_cts_offsets: ffmpeg writes version-1 trun boxes, whose
	// signed composition offsets mediacommon reads.)
	var repaired uint64
	for _, k := range keyframes {
		v := &videoTrack{format: &format.H264{}, sps: codec.SPS, pps: codec.PPS}
		var kept, reordered int
		var last int64
		for i, smp := range samples[k:] {
			f, _, _, ok := v.frame(smp.au, smp.pts)
			if !ok {
				t.Fatalf("joined at frame %d: frame %d dropped", k, k+i)
			}
			if kept > 0 && f.DTS <= last {
				t.Fatalf("joined at frame %d: frame %d has DTS %d after %d", k, k+i, f.DTS, last)
			}
			if f.PTS != f.DTS {
				reordered++
			}
			last = f.DTS
			kept++
		}
		if reordered == 0 {
			t.Fatalf("joined at frame %d: no B-frame reordered", k)
		}
		repaired += v.dtsRepairs
	}
	if len(samples) != 300 || len(keyframes) < 5 {
		t.Fatalf("%d frames, %d keyframes: not the stream asked of ffmpeg", len(samples), len(keyframes))
	}
	t.Logf("%d frames, joined at each of %d keyframes: every frame kept, %d DTS repaired", len(samples), len(keyframes), repaired)

	// A B-frame whose timestamp jitters below the decoding time of the
	// frame before it, as cheap cameras' clocks do: the DTS extractor
	// fails on it ("DTS is not monotonically increasing" or "DTS is
	// greater than PTS"). The frame and the rest of the GOP are kept.
	v := &videoTrack{format: &format.H264{}, sps: codec.SPS, pps: codec.PPS}
	var last int64
	jittered := false
	for i, smp := range samples {
		pts := smp.pts
		if !jittered && i > 10 && i > 0 && pts < samples[i-1].pts {
			pts = last - 1800 // 20 ms before the previous frame's DTS
			jittered = true
		}
		f, _, _, ok := v.frame(smp.au, pts)
		if !ok {
			t.Fatalf("frame %d dropped (jittered: %v)", i, jittered)
		}
		if i > 0 && f.DTS <= last {
			t.Fatalf("frame %d has DTS %d after %d", i, f.DTS, last)
		}
		last = f.DTS
	}
	if !jittered || v.dtsRepairs == 0 {
		t.Fatalf("jittered %v, %d DTS repaired: the extractor was not made to fail", jittered, v.dtsRepairs)
	}
}
