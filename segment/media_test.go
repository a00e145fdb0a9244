package segment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// Test media: a real H.264 elementary stream (25 fps, 160x120, one IDR per
// second, no B-frames) and AAC-LC audio (48 kHz mono), made by ffmpeg once
// per test binary and split into access units with mediacommon.

const (
	testFPS       = 25
	testMediaSecs = 30
	aacRate       = 48000
	aacFrame      = 1024 // samples per AAC frame
)

type testMedia struct {
	sps, pps []byte
	video    [][]byte // AVCC access units
	idr      []bool
	aac      [][]byte // raw AAC frames
	aacConf  mpeg4audio.AudioSpecificConfig
}

var (
	mediaOnce sync.Once
	media     *testMedia
	mediaErr  error
)

func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if testing.Short() {
			t.Skipf("%s not installed (-short)", name)
		}
		t.Fatalf("%s is required (apt-get install -y ffmpeg): %v", name, err)
	}
}

func loadMedia(t testing.TB) *testMedia {
	t.Helper()
	requireTool(t, "ffmpeg")
	mediaOnce.Do(func() { media, mediaErr = makeMedia() })
	if mediaErr != nil {
		t.Fatal(mediaErr)
	}
	return media
}

func makeMedia() (*testMedia, error) {
	v, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i",
		"testsrc=size=160x120:rate="+strconv.Itoa(testFPS), "-t", strconv.Itoa(testMediaSecs),
		"-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-g", strconv.Itoa(testFPS), "-bf", "0",
		"-f", "h264", "-").Output()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg h264: %w: %s", err, stderrOf(err))
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(v); err != nil {
		return nil, err
	}
	m := &testMedia{}
	var au [][]byte
	for _, n := range nalus {
		typ := h264.NALUType(n[0] & 0x1f)
		switch typ {
		case h264.NALUTypeSPS:
			if m.sps == nil {
				m.sps = n
			}
		case h264.NALUTypePPS:
			if m.pps == nil {
				m.pps = n
			}
		}
		au = append(au, n)
		if typ == h264.NALUTypeIDR || typ == h264.NALUTypeNonIDR {
			b, err := h264.AVCC(au).Marshal()
			if err != nil {
				return nil, err
			}
			m.video = append(m.video, b)
			m.idr = append(m.idr, typ == h264.NALUTypeIDR)
			au = nil
		}
	}
	a, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i",
		"sine=frequency=440:sample_rate="+strconv.Itoa(aacRate), "-t", strconv.Itoa(testMediaSecs),
		"-c:a", "aac", "-ac", "1", "-f", "adts", "-").Output()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg aac: %w: %s", err, stderrOf(err))
	}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(a); err != nil {
		return nil, err
	}
	for _, p := range pkts {
		m.aac = append(m.aac, p.AU)
	}
	m.aacConf = mpeg4audio.AudioSpecificConfig{Type: pkts[0].Type, SampleRate: pkts[0].SampleRate, ChannelCount: pkts[0].ChannelCount}
	return m, nil
}

func (m *testMedia) tracks(audio bool) []Track {
	tr := []Track{{ClockRate: 90000, Codec: &mp4.CodecH264{SPS: m.sps, PPS: m.pps}}}
	if audio {
		tr = append(tr, Track{ClockRate: aacRate, Codec: &mp4.CodecMPEG4Audio{Config: m.aacConf}})
	}
	return tr
}

// frames returns the frames of [from, to) seconds of the test media (video
// and, with audio, AAC) in arrival order, timestamped with pts0 (90 kHz)
// at wall0.
func (m *testMedia) frames(wall0 time.Time, audio bool, n int) []Frame {
	var out []Frame
	ai := 0
	for i := 0; i < n; i++ {
		vi := i % len(m.video)
		pts := int64(i) * 90000 / testFPS
		vt := time.Duration(i) * time.Second / testFPS
		if audio {
			for {
				at := time.Duration(ai) * aacFrame * time.Second / aacRate
				if at > vt {
					break
				}
				apts := int64(ai) * aacFrame
				out = append(out, Frame{Track: 1, PTS: apts, DTS: apts, Wall: wall0.Add(at), Random: true, Payload: m.aac[ai%len(m.aac)]})
				ai++
			}
		}
		out = append(out, Frame{Track: 0, PTS: pts, DTS: pts, Wall: wall0.Add(vt), Random: m.idr[vi] || (vi == 0), Payload: m.video[vi]})
	}
	return out
}

type probeResult struct {
	errors   string
	duration float64
	streams  []map[string]any
}

// ffprobe runs ffprobe -v error on a file and returns its error output and
// container duration.
func ffprobe(t testing.TB, path string) probeResult {
	t.Helper()
	requireTool(t, "ffprobe")
	cmd := exec.Command("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", path, err, stderr.String())
	}
	var res struct {
		Format  struct{ Duration string } `json:"format"`
		Streams []map[string]any          `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	d, _ := strconv.ParseFloat(res.Format.Duration, 64)
	// Decode every frame too: -v error prints any decoding error.
	dec := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-")
	var decErr bytes.Buffer
	dec.Stderr = &decErr
	if err := dec.Run(); err != nil {
		t.Fatalf("ffmpeg decode %s: %v: %s", path, err, decErr.String())
	}
	return probeResult{errors: strings.TrimSpace(stderr.String() + decErr.String()), duration: d, streams: res.Streams}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
