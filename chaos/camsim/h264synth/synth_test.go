package h264synth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

func TestEmulationPrevent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rbsp     []byte
		nalu     []byte
		lossless bool // EmulationRemove gives rbsp back
	}{
		{"empty", nil, nil, true},
		{"no zeros", []byte{1, 2, 3}, []byte{1, 2, 3}, true},
		{"one zero", []byte{0, 1}, []byte{0, 1}, true},
		{"00 00 00", []byte{0, 0, 0}, []byte{0, 0, 3, 0}, true},
		{"00 00 01", []byte{0, 0, 1}, []byte{0, 0, 3, 1}, true},
		{"00 00 02", []byte{0, 0, 2}, []byte{0, 0, 3, 2}, true},
		{"00 00 03", []byte{0, 0, 3}, []byte{0, 0, 3, 3}, true},
		{"00 00 04 untouched", []byte{0, 0, 4}, []byte{0, 0, 4}, true},
		{"trailing 00 00", []byte{5, 0, 0}, []byte{5, 0, 0, 3}, true},
		{"four zeros", []byte{0, 0, 0, 0}, []byte{0, 0, 3, 0, 0, 3}, true},
		{"escape resets the count", []byte{0, 0, 1, 0, 0, 1}, []byte{0, 0, 3, 1, 0, 0, 3, 1}, true},
		{"zeros after escape", []byte{0, 0, 0, 0, 0, 0}, []byte{0, 0, 3, 0, 0, 3, 0, 0, 3}, true},
		{"00 ff 00 00 02", []byte{0, 0xFF, 0, 0, 2}, []byte{0, 0xFF, 0, 0, 3, 2}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EmulationPrevent(nil, tc.rbsp)
			if !bytes.Equal(got, tc.nalu) {
				t.Fatalf("EmulationPrevent(% x) = % x, want % x", tc.rbsp, got, tc.nalu)
			}
			if back := EmulationRemove(got); !bytes.Equal(back, tc.rbsp) && len(back)+len(tc.rbsp) > 0 {
				t.Fatalf("EmulationRemove(% x) = % x, want % x", got, back, tc.rbsp)
			}
			// mediacommon's remover is an independent implementation.
			if back := h264.EmulationPreventionRemove(got); !bytes.Equal(back, tc.rbsp) && len(back)+len(tc.rbsp) > 0 {
				t.Fatalf("mediacommon remove(% x) = % x, want % x", got, back, tc.rbsp)
			}
			for i := 0; i+2 < len(got); i++ {
				if got[i] == 0 && got[i+1] == 0 && got[i+2] <= 2 {
					t.Fatalf("start-code emulation at %d in % x", i, got)
				}
			}
		})
	}
}

func TestStampRoundTrip(t *testing.T) {
	for _, st := range []Stamp{
		{Camera: 0, Frame: 0, Time: time.Unix(0, 0)},
		{Camera: 7, Frame: 1 << 40, Time: time.Date(2026, 11, 23, 11, 0, 0, 123456789, time.UTC)},
		{Camera: 0xFFFFFFFF, Frame: 0x0000000100000000, Time: time.Unix(1, 3)},
	} {
		n := appendSEI(nil, st)
		got, ok := ParseStamp(n)
		if !ok || got.Camera != st.Camera || got.Frame != st.Frame || !got.Time.Equal(st.Time) {
			t.Fatalf("ParseStamp(appendSEI(%+v)) = %+v, %v", st, got, ok)
		}
		if len(n) > seiSize {
			t.Fatalf("SEI of %d bytes exceeds seiSize %d", len(n), seiSize)
		}
	}
	if _, ok := ParseStamp([]byte{0x65, 1, 2, 3}); ok {
		t.Fatal("ParseStamp accepted a slice")
	}
	if _, ok := ParseStamp([]byte{0x06, 5, 1, 0}); ok {
		t.Fatal("ParseStamp accepted a short SEI")
	}
}

func TestParamsValidate(t *testing.T) {
	good := Params{Width: 640, Height: 360, FPS: 25, GOP: 50, Bitrate: 1_000_000}
	if _, err := New(good); err != nil {
		t.Fatalf("New(%+v): %v", good, err)
	}
	for _, bad := range []Params{
		{Width: 641, Height: 360, FPS: 25, GOP: 50, Bitrate: 1e6},
		{Width: 0, Height: 360, FPS: 25, GOP: 50, Bitrate: 1e6},
		{Width: 640, Height: 8, FPS: 25, GOP: 50, Bitrate: 1e6},
		{Width: 640, Height: 360, FPS: 0, GOP: 50, Bitrate: 1e6},
		{Width: 640, Height: 360, FPS: 25, GOP: 0, Bitrate: 1e6},
		{Width: 640, Height: 360, FPS: 25, GOP: 50, Bitrate: 0},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted invalid params", bad)
		}
	}
	low := Params{Width: 1920, Height: 1080, FPS: 25, GOP: 50, Bitrate: 100_000}
	if _, err := New(low); !errors.Is(err, ErrBitrateTooLow) {
		t.Fatalf("New(%+v) = %v, want ErrBitrateTooLow", low, err)
	}
}

// TestSPSParses checks the SPS with mediacommon's independent parser.
func TestSPSParses(t *testing.T) {
	for _, p := range []Params{
		{Width: 640, Height: 360, FPS: 25, GOP: 50, Bitrate: 4e6},
		{Width: 1920, Height: 1080, FPS: 30, GOP: 300, Bitrate: 8e6},
		{Width: 176, Height: 144, FPS: 5, GOP: 1, Bitrate: 2e5},
	} {
		s, err := New(p)
		if err != nil {
			t.Fatal(err)
		}
		var sps h264.SPS
		if err := sps.Unmarshal(s.SPS()); err != nil {
			t.Fatalf("%+v: SPS unmarshal: %v", p, err)
		}
		if sps.Width() != p.Width || sps.Height() != p.Height {
			t.Errorf("%+v: SPS says %dx%d", p, sps.Width(), sps.Height())
		}
		if fps := sps.FPS(); fps != float64(p.FPS) {
			t.Errorf("%+v: SPS says %v fps", p, fps)
		}
		if sps.ProfileIdc != 66 {
			t.Errorf("profile %d, want 66", sps.ProfileIdc)
		}
	}
}

// TestBitrateSmooth checks the leaky bucket: every window of a second is
// within a frame's budget of the target, IDR included.
func TestBitrateSmooth(t *testing.T) {
	p := Params{Width: 1280, Height: 720, FPS: 25, GOP: 50, Bitrate: 4_000_000}
	s, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	sizes := make([]int, 0, 500)
	for i := 0; i < 500; i++ {
		f := s.Next(Stamp{Frame: uint64(i)})
		sum := 0
		for _, n := range f.NALUs {
			sum += len(n)
		}
		if sum != f.Size {
			t.Fatalf("frame %d: Size %d, NAL units sum to %d", i, f.Size, sum)
		}
		if f.IDR != (i%p.GOP == 0) {
			t.Fatalf("frame %d: IDR %v", i, f.IDR)
		}
		sizes = append(sizes, f.Size)
	}
	budget := p.Bitrate / 8 / p.FPS
	for i := 0; i+p.FPS <= len(sizes); i++ {
		sum := 0
		for _, v := range sizes[i : i+p.FPS] {
			sum += v
		}
		if d := sum - p.Bitrate/8; d > budget/100+2 || d < -budget/100-2 {
			t.Fatalf("window at frame %d: %d bytes, want %d", i, sum, p.Bitrate/8)
		}
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if testing.Short() {
			t.Skipf("%s not installed (-short)", name)
		}
		t.Fatalf("%s not installed: apt-get install -y ffmpeg", name)
	}
	return path
}

func writeAnnexB(t *testing.T, p Params, frames int) string {
	t.Helper()
	s, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	t0 := time.Now()
	for i := 0; i < frames; i++ {
		f := s.Next(Stamp{Camera: 3, Frame: uint64(i), Time: t0.Add(time.Duration(i) * time.Second / time.Duration(p.FPS))})
		if st, ok := FindStamp(f.NALUs); !ok || st.Frame != uint64(i) || st.Camera != 3 {
			t.Fatalf("frame %d: stamp %+v %v", i, st, ok)
		}
		buf = AnnexB(buf, f.NALUs)
	}
	path := filepath.Join(t.TempDir(), "synth.h264")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDecodesWithFFmpeg decodes the elementary stream with ffmpeg, checks
// that it reports nothing, and checks the decoded pictures pixel by pixel
// where the pattern is known: grey IDR, one white macroblock per P picture.
func TestDecodesWithFFmpeg(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	ffprobe := requireTool(t, "ffprobe")
	for _, p := range []Params{
		{Width: 320, Height: 180, FPS: 25, GOP: 10, Bitrate: 500_000},
		{Width: 176, Height: 144, FPS: 10, GOP: 1, Bitrate: 200_000},
		{Width: 1280, Height: 720, FPS: 25, GOP: 50, Bitrate: 4_000_000},
		{Width: 64, Height: 32, FPS: 30, GOP: 40, Bitrate: 300_000}, // 8 MBs: the block wraps around
	} {
		t.Run(fmt.Sprintf("%dx%d_gop%d", p.Width, p.Height, p.GOP), func(t *testing.T) {
			const frames = 60
			path := writeAnnexB(t, p, frames)

			out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Fatalf("ffmpeg decode: %v\n%s", err, out)
			}

			out, err = exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
				"-show_entries", "stream=codec_name,profile,width,height,nb_read_frames,r_frame_rate",
				"-of", "default=noprint_wrappers=1", path).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, out)
			}
			info := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				k, v, _ := strings.Cut(line, "=")
				info[k] = v
			}
			want := map[string]string{
				"codec_name": "h264", "width": strconv.Itoa(p.Width), "height": strconv.Itoa(p.Height),
				"nb_read_frames": strconv.Itoa(frames), "r_frame_rate": fmt.Sprintf("%d/1", p.FPS),
			}
			for k, v := range want {
				if info[k] != v {
					t.Errorf("ffprobe %s = %q, want %q (all: %v)", k, info[k], v, info)
				}
			}

			raw, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", path,
				"-f", "rawvideo", "-pix_fmt", "yuv420p", "-").Output()
			if err != nil {
				t.Fatalf("ffmpeg rawvideo: %v", err)
			}
			checkPictures(t, p, raw, frames)
		})
	}
}

// checkPictures verifies the luma plane of each decoded frame: IDR frames are all
// 128; in a P frame the macroblock of the frame number is 235 and every
// other pixel is 128.
func checkPictures(t *testing.T, p Params, raw []byte, frames int) {
	t.Helper()
	// yuv420p: the luma plane, then quarter-size chroma planes.
	size := p.Width * p.Height * 3 / 2
	if len(raw) != size*frames {
		t.Fatalf("decoded %d bytes, want %d frames of %d", len(raw), frames, size)
	}
	mbW := (p.Width + 15) / 16
	mbs := mbW * ((p.Height + 15) / 16)
	for i := 0; i < frames; i++ {
		pic := raw[i*size : i*size+p.Width*p.Height]
		white := -1
		if i%p.GOP != 0 {
			white = i % mbs
		}
		for y := 0; y < p.Height; y++ {
			for x := 0; x < p.Width; x++ {
				want := byte(lumaGrey)
				if (y/16)*mbW+x/16 == white {
					want = lumaWhite
				}
				if got := pic[y*p.Width+x]; got != want {
					t.Fatalf("frame %d pixel (%d,%d) = %d, want %d", i, x, y, got, want)
				}
			}
		}
	}
}

// BenchmarkNext measures the cost of one 720p access unit at 4 Mbit/s (the
// per-frame work of a camera, packetisation aside).
func BenchmarkNext(b *testing.B) {
	s, err := New(Params{Width: 1280, Height: 720, FPS: 25, GOP: 50, Bitrate: 4_000_000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var bytes int64
	for i := 0; b.Loop(); i++ {
		bytes += int64(s.Next(Stamp{Frame: uint64(i)}).Size)
	}
	b.SetBytes(bytes / int64(b.N))
}

// FuzzParseStamp feeds arbitrary NAL units to ParseStamp (a checker reads
// stamps from recorded files) and checks escaping round trips.
func FuzzParseStamp(f *testing.F) {
	f.Add(appendSEI(nil, Stamp{Camera: 1, Frame: 2, Time: time.Unix(3, 4)}))
	f.Add([]byte{0x06, 5, 0, 0, 3})
	f.Add([]byte{0x65})
	f.Fuzz(func(t *testing.T, nalu []byte) {
		if st, ok := ParseStamp(nalu); ok {
			again, ok2 := ParseStamp(appendSEI(nil, st))
			if !ok2 || again.Camera != st.Camera || again.Frame != st.Frame || !again.Time.Equal(st.Time) {
				t.Fatalf("stamp %+v does not round-trip: %+v %v", st, again, ok2)
			}
		}
		esc := EmulationPrevent(nil, nalu)
		if back := EmulationRemove(esc); !bytes.Equal(back, nalu) && len(back)+len(nalu) > 0 {
			t.Fatalf("EmulationRemove(EmulationPrevent(% x)) = % x", nalu, back)
		}
		for i := 0; i+2 < len(esc); i++ {
			if esc[i] == 0 && esc[i+1] == 0 && esc[i+2] <= 2 {
				t.Fatalf("start-code emulation at %d in % x", i, esc)
			}
		}
	})
}
