package camsim

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
)

// testConfig is a small stream that keeps the tests light on CPU.
func testConfig() Config {
	return Config{
		Listen:  "127.0.0.1:0",
		Cameras: 2,
		Width:   640, Height: 360,
		FPS: 25, GOP: 25,
		Bitrate: 2_000_000,
		Logger:  slog.New(slog.DiscardHandler),
	}
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// udpPorts finds a free even/odd UDP port pair on 127.0.0.1.
func udpPorts(t *testing.T) (string, string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		p := 20000 + 2*rand.IntN(20000)
		a, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		b, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return "127.0.0.1:" + strconv.Itoa(p), "127.0.0.1:" + strconv.Itoa(p+1)
	}
	t.Fatal("no free UDP port pair")
	return "", ""
}

type videoPacket struct {
	at   time.Time
	ts   uint32
	size int
}

type accessUnit struct {
	at    time.Time
	ts    uint32
	idr   bool
	stamp h264synth.Stamp
}

// receiver is a gortsplib client playing one camera and recording what
// arrives.
type receiver struct {
	t      *testing.T
	client *gortsplib.Client
	video  *description.Media
	audio  *description.Media

	mu         sync.Mutex
	packets    []videoPacket
	aus        []accessUnit
	reports    map[uint32]*rtcp.SenderReport // by SSRC
	firstRTP   bool                          // an RTP packet arrived
	reportLead bool                          // a sender report arrived before the first RTP packet
	audioAUs   [][]byte
	audioTS    []uint32
	done       chan error
}

func dial(t *testing.T, rawURL string, transport gortsplib.Transport) (*receiver, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, reports: map[uint32]*rtcp.SenderReport{}, done: make(chan error, 1)}
	r.client = &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &transport, ReadTimeout: 5 * time.Second}
	if err := r.client.Start2(); err != nil {
		return nil, err
	}
	desc, _, err := r.client.Describe(u)
	if err != nil {
		r.client.Close()
		return nil, err
	}
	var h264f *format.H264
	r.video = desc.FindFormat(&h264f)
	if r.video == nil {
		r.client.Close()
		t.Fatal("no H.264 track")
	}
	var aacf *format.MPEG4Audio
	r.audio = desc.FindFormat(&aacf)
	if err := r.client.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		r.client.Close()
		return nil, err
	}
	dec, err := h264f.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	r.client.OnPacketRTP(r.video, h264f, func(pkt *rtp.Packet) {
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.firstRTP {
			r.firstRTP = true
			r.reportLead = len(r.reports) > 0
		}
		r.packets = append(r.packets, videoPacket{at: now, ts: pkt.Timestamp, size: len(pkt.Payload)})
		au, err := dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				t.Errorf("H.264 depacketize: %v", err)
			}
			return
		}
		st, ok := h264synth.FindStamp(au)
		if !ok {
			t.Errorf("access unit without stamp")
		}
		r.aus = append(r.aus, accessUnit{at: now, ts: pkt.Timestamp, idr: h264.IsRandomAccess(au), stamp: st})
	})
	if r.audio != nil {
		adec, err := aacf.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		r.client.OnPacketRTP(r.audio, aacf, func(pkt *rtp.Packet) {
			aus, err := adec.Decode(pkt)
			if err != nil {
				t.Errorf("AAC depacketize: %v", err)
				return
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			for i, au := range aus {
				r.audioAUs = append(r.audioAUs, au)
				r.audioTS = append(r.audioTS, pkt.Timestamp+uint32(i*aacSamplesPerFrame))
			}
		})
	}
	r.client.OnPacketRTCPAny(func(_ *description.Media, pkt rtcp.Packet) {
		if sr, ok := pkt.(*rtcp.SenderReport); ok {
			r.mu.Lock()
			r.reports[sr.SSRC] = sr
			r.mu.Unlock()
		}
	})
	if _, err := r.client.Play(nil); err != nil {
		r.client.Close()
		return nil, err
	}
	go func() { r.done <- r.client.Wait() }()
	t.Cleanup(r.client.Close)
	return r, nil
}

func (r *receiver) snapshot() ([]videoPacket, []accessUnit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]videoPacket(nil), r.packets...), append([]accessUnit(nil), r.aus...)
}

// waitEnded waits for the session to end and returns its error.
func (r *receiver) waitEnded(d time.Duration) (error, bool) {
	select {
	case err := <-r.done:
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

func TestRTSP(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport gortsplib.Transport
	}{
		{"tcp", gortsplib.TransportTCP},
		{"udp", gortsplib.TransportUDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.transport == gortsplib.TransportUDP {
				cfg.UDPRTPAddress, cfg.UDPRTCPAddress = udpPorts(t)
			}
			s := startServer(t, cfg)
			r, err := dial(t, s.URL(1), tc.transport)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(3500 * time.Millisecond)
			packets, aus := r.snapshot()
			checkBitrate(t, cfg, packets)
			if d := s.Camera(1).Stats().Dropped; d > 0 {
				t.Fatalf("the camera dropped %d frames: machine too loaded to judge", d)
			}
			// UDP may lose packets on a loaded machine (the race detector
			// is enough): then frames may be missing or merged, and only
			// their order is checked.
			lost := r.client.Stats().Session.RTPPacketsLost
			if lost > 0 {
				t.Logf("%d RTP packets lost", lost)
			}
			checkFrames(t, cfg, aus, 1, lost == 0)
			checkClock(t, r, aus)
			if st := s.Camera(1).Stats(); st.Readers != 1 || st.FramesSent == 0 {
				t.Errorf("camera 1 stats %+v, want 1 reader and frames sent", st)
			}
			if st := s.Camera(0).Stats(); st.Readers != 0 || st.FramesSent != 0 {
				t.Errorf("camera 0 stats %+v, want nothing sent", st)
			}
		})
	}
}

// checkBitrate measures the bitrate over 3 s of RTP time, from the first
// packet on.
func checkBitrate(t *testing.T, cfg Config, packets []videoPacket) {
	t.Helper()
	if len(packets) == 0 {
		t.Fatal("no video packets")
	}
	const window = 3
	ts0 := packets[0].ts
	bytes := 0
	for _, p := range packets {
		if p.ts-ts0 < window*90000 {
			bytes += p.size
		}
	}
	if last := packets[len(packets)-1].ts; last-ts0 < window*90000 {
		t.Fatalf("only %.2f s of video received", float64(last-ts0)/90000)
	}
	got := float64(bytes) * 8 / window
	t.Logf("bitrate over %d s of RTP time: %.0f bit/s (target %d, %+.2f%%)",
		window, got, cfg.Bitrate, 100*(got/float64(cfg.Bitrate)-1))
	if got < 0.9*float64(cfg.Bitrate) || got > 1.1*float64(cfg.Bitrate) {
		t.Errorf("bitrate %.0f bit/s, want %d ±10%%", got, cfg.Bitrate)
	}
	// By arrival time too, which includes scheduling jitter.
	span := packets[len(packets)-1].at.Sub(packets[0].at).Seconds()
	all := 0
	for _, p := range packets {
		all += p.size
	}
	if byArrival := float64(all) * 8 / span; byArrival < 0.9*float64(cfg.Bitrate) || byArrival > 1.1*float64(cfg.Bitrate) {
		t.Errorf("bitrate by arrival %.0f bit/s over %.2f s, want %d ±10%%", byArrival, span, cfg.Bitrate)
	}
}

// checkFrames checks stamps: consecutive frame numbers, the right camera,
// RTP timestamps 1/fps apart, IDR every GOP frames once the first arrived.
// Unless strict, it only checks that frames and timestamps increase.
func checkFrames(t *testing.T, cfg Config, aus []accessUnit, camera uint32, strict bool) {
	t.Helper()
	if len(aus) < 2*cfg.FPS {
		t.Fatalf("%d access units, want at least %d", len(aus), 2*cfg.FPS)
	}
	step := uint32(90000 / cfg.FPS)
	firstIDR := -1
	for i, au := range aus {
		if au.stamp.Camera != camera {
			t.Fatalf("AU %d: stamp camera %d, want %d", i, au.stamp.Camera, camera)
		}
		if au.idr && firstIDR < 0 {
			firstIDR = i
		}
		if i == 0 {
			continue
		}
		prev := aus[i-1]
		if !strict {
			if au.stamp.Frame <= prev.stamp.Frame || int32(au.ts-prev.ts) <= 0 {
				t.Fatalf("AU %d: frame %d (ts %d) after %d (ts %d)", i, au.stamp.Frame, au.ts, prev.stamp.Frame, prev.ts)
			}
			continue
		}
		if au.stamp.Frame != prev.stamp.Frame+1 {
			t.Fatalf("AU %d: frame %d after %d", i, au.stamp.Frame, prev.stamp.Frame)
		}
		if au.ts-prev.ts != step {
			t.Fatalf("AU %d: RTP timestamp step %d, want %d", i, au.ts-prev.ts, step)
		}
		if firstIDR >= 0 && au.idr != ((i-firstIDR)%cfg.GOP == 0) {
			t.Fatalf("AU %d: IDR %v, GOP %d from AU %d", i, au.idr, cfg.GOP, firstIDR)
		}
	}
	if firstIDR < 0 || firstIDR > cfg.GOP {
		t.Fatalf("first IDR at AU %d", firstIDR)
	}
}

// checkClock checks the sender reports: one arrived before the first RTP
// packet, and the wall clock they give each frame (RFC 3550 NTP format) is
// the frame's stamp and close to its arrival.
func checkClock(t *testing.T, r *receiver, aus []accessUnit) {
	t.Helper()
	r.mu.Lock()
	lead := r.reportLead
	reports := make(map[uint32]*rtcp.SenderReport, len(r.reports))
	for k, v := range r.reports {
		reports[k] = v
	}
	r.mu.Unlock()
	if !lead {
		t.Error("no sender report before the first RTP packet")
	}
	stats := r.client.Stats()
	ssrc := stats.Session.Medias[r.video].Formats[r.video.Formats[0]].RemoteSSRC
	sr := reports[ssrc]
	if sr == nil {
		t.Fatalf("no sender report for the video SSRC %08x (have %v)", ssrc, reports)
	}
	srTime := NTPTime(sr.NTPTime)
	for _, au := range aus {
		ntp := srTime.Add(time.Duration(int32(au.ts-sr.RTPTime)) * time.Second / 90000)
		if d := ntp.Sub(au.stamp.Time); d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("frame %d: sender report time %v, stamp %v", au.stamp.Frame, ntp, au.stamp.Time)
		}
		// A frame leaves at its wall-clock time or later; the upper bound
		// leaves room for a loaded machine.
		if d := au.at.Sub(ntp); d < -5*time.Millisecond || d > time.Second {
			t.Fatalf("frame %d: arrived %v after its wall-clock time", au.stamp.Frame, d)
		}
	}
}

func TestStopStart(t *testing.T) {
	s := startServer(t, testConfig())
	r, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	other, err := dial(t, s.URL(1), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	s.Camera(0).Stop()
	if got := s.Camera(0).State(); got != Stopped {
		t.Fatalf("state %v after Stop", got)
	}
	if _, ended := r.waitEnded(3 * time.Second); !ended {
		t.Fatal("session of a stopped camera still open")
	}
	_, err = dial(t, s.URL(0), gortsplib.TransportTCP)
	var bad liberrors.ErrClientBadStatusCode
	if !errors.As(err, &bad) || bad.Code != base.StatusNotFound {
		t.Fatalf("DESCRIBE of a stopped camera: %v, want 404", err)
	}
	if _, ended := other.waitEnded(0); ended {
		t.Fatal("stopping camera 0 ended camera 1's session")
	}
	_, aus := r.snapshot()
	lastFrame := aus[len(aus)-1].stamp.Frame

	if err := s.Camera(0).Start(); err != nil {
		t.Fatal(err)
	}
	r2, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatalf("after Start: %v", err)
	}
	// The reader joins a running camera mid-GOP, as with a real one: an
	// IDR comes within a GOP (1 s).
	time.Sleep(1200 * time.Millisecond)
	_, aus = r2.snapshot()
	if len(aus) == 0 {
		t.Fatal("no frames after Start")
	}
	idr := false
	for _, au := range aus {
		idr = idr || au.idr
	}
	if !idr {
		t.Error("no IDR frame within a GOP of the restart")
	}
	if aus[0].stamp.Frame <= lastFrame {
		t.Errorf("frame numbers went back: %d after %d", aus[0].stamp.Frame, lastFrame)
	}
}

func TestPauseResume(t *testing.T) {
	cfg := testConfig()
	cfg.GOP = 250 // so an IDR after Resume comes from Resume, not the GOP
	s := startServer(t, cfg)
	r, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	s.Camera(0).Pause()
	if got := s.Camera(0).State(); got != Paused {
		t.Fatalf("state %v after Pause", got)
	}
	time.Sleep(200 * time.Millisecond) // packets in flight
	before, ausBefore := r.snapshot()
	time.Sleep(time.Second)
	after, _ := r.snapshot()
	if len(after) != len(before) {
		t.Fatalf("%d packets arrived while paused", len(after)-len(before))
	}
	if _, ended := r.waitEnded(0); ended {
		t.Fatal("pause ended the session")
	}
	s.Camera(0).Resume()
	time.Sleep(500 * time.Millisecond)
	_, aus := r.snapshot()
	resumed := aus[len(ausBefore):]
	if len(resumed) == 0 {
		t.Fatal("no frames after Resume")
	}
	if !resumed[0].idr {
		t.Error("first frame after Resume is not an IDR")
	}
	last := ausBefore[len(ausBefore)-1]
	gap := resumed[0].stamp.Frame - last.stamp.Frame
	if gap < uint64(cfg.FPS) { // paused for more than 1.2 s
		t.Errorf("frame numbers advanced by %d over the pause, want > %d", gap, cfg.FPS)
	}
	if d := resumed[0].ts - last.ts; d != uint32(gap)*90000/uint32(cfg.FPS) {
		t.Errorf("RTP time advanced by %d over %d frames", d, gap)
	}
}

func TestUnreachable(t *testing.T) {
	s := startServer(t, testConfig())
	r, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	other, err := dial(t, s.URL(1), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	s.Camera(0).SetUnreachable(true)
	if _, ended := r.waitEnded(3 * time.Second); !ended {
		t.Fatal("session of an unreachable camera still open")
	}
	_, err = dial(t, s.URL(0), gortsplib.TransportTCP)
	var bad liberrors.ErrClientBadStatusCode
	if err == nil || errors.As(err, &bad) {
		t.Fatalf("DESCRIBE of an unreachable camera: %v, want the connection closed without answer", err)
	}
	if _, ended := other.waitEnded(0); ended {
		t.Fatal("camera 1's session ended")
	}
	if got := s.Camera(0).State(); got != Running {
		t.Errorf("unreachable camera state %v, want running", got)
	}
	s.Camera(0).SetUnreachable(false)
	r2, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatalf("reachable again: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if p, _ := r2.snapshot(); len(p) == 0 {
		t.Fatal("no packets once reachable again")
	}
}

func TestCredentials(t *testing.T) {
	cfg := testConfig()
	cfg.User, cfg.Pass = "viewer", "s3cret:@/"
	s := startServer(t, cfg)
	r, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if p, _ := r.snapshot(); len(p) == 0 {
		t.Fatal("no packets with credentials")
	}
	bare := strings.Replace(s.URL(0), "viewer:s3cret%3A%40%2F@", "", 1)
	if bare == s.URL(0) {
		t.Fatalf("URL %s does not carry the escaped credentials", s.URL(0))
	}
	var bad liberrors.ErrClientBadStatusCode
	if _, err := dial(t, bare, gortsplib.TransportTCP); !errors.As(err, &bad) || bad.Code != base.StatusUnauthorized {
		t.Fatalf("without credentials: %v, want 401", err)
	}
	wrong := strings.Replace(s.URL(0), "s3cret", "guess", 1)
	if _, err := dial(t, wrong, gortsplib.TransportTCP); err == nil {
		t.Fatal("wrong password accepted")
	}
}

func TestAudio(t *testing.T) {
	cfg := testConfig()
	cfg.Audio = true
	cfg.AudioChannels = 2
	s := startServer(t, cfg)
	r, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.audio == nil {
		t.Fatal("no audio track")
	}
	if n := len(r.audioAUs); n < 40 || n > 55 { // 46.9 frames/s
		t.Fatalf("%d AAC frames in 1 s", n)
	}
	for i, au := range r.audioAUs {
		if !bytes.Equal(au, aacSilentStereo) {
			t.Fatalf("AAC frame %d = % x", i, au)
		}
		if i > 0 && r.audioTS[i]-r.audioTS[i-1] != aacSamplesPerFrame {
			t.Fatalf("AAC frame %d: timestamp step %d", i, r.audioTS[i]-r.audioTS[i-1])
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

// TestFFmpeg reads cameras with ffmpeg over RTSP (TCP) and checks that the
// video and audio decode without a single complaint.
func TestFFmpeg(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	ffprobe := requireTool(t, "ffprobe")
	for _, channels := range []int{1, 2} {
		t.Run(fmt.Sprintf("audio%d", channels), func(t *testing.T) {
			cfg := testConfig()
			cfg.Audio, cfg.AudioChannels = true, channels
			s := startServer(t, cfg)
			out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
				"-i", s.URL(1), "-t", "2", "-f", "null", "-").CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			out, err = exec.Command(ffprobe, "-v", "error", "-rtsp_transport", "tcp",
				"-show_entries", "stream=codec_name,width,height,channels,sample_rate",
				"-of", "compact=p=0:nk=1", s.URL(0)).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, out)
			}
			want := fmt.Sprintf("h264|640|360\naac|48000|%d", channels)
			if got := strings.TrimSpace(string(out)); got != want {
				t.Fatalf("ffprobe streams:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"cameras":      func(c *Config) { c.Cameras = -1 },
		"odd width":    func(c *Config) { c.Width = 641 },
		"bitrate":      func(c *Config) { c.Bitrate = 50_000 },
		"udp half":     func(c *Config) { c.UDPRTPAddress = "127.0.0.1:8000" },
		"channels":     func(c *Config) { c.AudioChannels = 6 },
		"sample rate":  func(c *Config) { c.AudioSampleRate = 44000 },
		"pass no user": func(c *Config) { c.Pass = "x" },
	} {
		cfg := testConfig()
		mutate(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	cfg := testConfig()
	cfg.Bitrate = 50_000
	if _, err := New(cfg); !errors.Is(err, h264synth.ErrBitrateTooLow) {
		t.Errorf("low bitrate: %v, want ErrBitrateTooLow", err)
	}
	s, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Camera(0).Start(); err == nil {
		t.Error("camera started before the server")
	}
	if s.Camera(2) != nil || s.Camera(-1) != nil {
		t.Error("Camera out of range is not nil")
	}
	s.Close()
	if err := s.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}

func TestNTP(t *testing.T) {
	for _, tc := range []struct {
		t time.Time
		v uint64
	}{
		{time.Unix(0, 0), ntpEpochOffset << 32},
		{time.Unix(1, 500_000_000), (ntpEpochOffset+1)<<32 | 0x80000000},
		{time.Unix(1700000000, 250_000_000), (1700000000+ntpEpochOffset)<<32 | 0x40000000},
	} {
		if got := NTPTimestamp(tc.t); got != tc.v {
			t.Errorf("NTPTimestamp(%v) = %x, want %x", tc.t, got, tc.v)
		}
		if got := NTPTime(tc.v); !got.Equal(tc.t) {
			t.Errorf("NTPTime(%x) = %v, want %v", tc.v, got, tc.t)
		}
	}
	now := time.Now()
	if d := NTPTime(NTPTimestamp(now)).Sub(now); d < -time.Nanosecond || d > time.Nanosecond {
		t.Errorf("round trip off by %v", d)
	}
}

func TestClockSkew(t *testing.T) {
	s := startServer(t, testConfig())
	r, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	const skew = -90 * time.Minute
	s.Camera(0).SetClockSkew(skew)
	time.Sleep(1300 * time.Millisecond) // a sender report period
	_, aus := r.snapshot()
	last := aus[len(aus)-1]
	if d := last.at.Sub(last.stamp.Time) + skew; d < -5*time.Millisecond || d > time.Second {
		t.Fatalf("stamp %v at arrival %v: skew not applied", last.stamp.Time, last.at)
	}
	r.mu.Lock()
	var sr *rtcp.SenderReport
	for _, v := range r.reports {
		sr = v
	}
	r.mu.Unlock()
	ntp := NTPTime(sr.NTPTime).Add(time.Duration(int32(last.ts-sr.RTPTime)) * time.Second / 90000)
	if d := ntp.Sub(last.stamp.Time); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("sender report maps the last frame to %v, its stamp says %v", ntp, last.stamp.Time)
	}
	for i := 1; i < len(aus); i++ {
		if aus[i].ts-aus[i-1].ts != 3600 {
			t.Fatalf("RTP timestamps disturbed by the clock step at AU %d", i)
		}
	}
}
