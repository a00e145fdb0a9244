package camsim

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
)

// Config configures a Server. Zero fields take the defaults given next to
// them, applied by EnsureDefaults.
type Config struct {
	// Listen is the RTSP (TCP) address. Default "127.0.0.1:8554". Port 0
	// picks a free port: Server.Addr tells which.
	Listen string
	// Cameras is the number of cameras, at paths /cam/0 .. /cam/N-1. Default 1.
	Cameras int
	// Width and Height of the video in pixels, even. Default 1280x720.
	Width, Height int
	// FPS is the video frame rate. Default 25.
	FPS int
	// GOP is the distance between IDR frames in frames. Default 50.
	GOP int
	// Bitrate is the video bitrate in bit/s (H.264 NAL unit bytes).
	// Default 4_000_000.
	Bitrate int
	// Audio adds a silent AAC-LC track. Default off.
	Audio bool
	// AudioSampleRate in Hz. Default 48000.
	AudioSampleRate int
	// AudioChannels is 1 or 2. Default 1.
	AudioChannels int
	// User and Pass, when User is set, are the credentials every request
	// must carry (Basic or Digest). Default none.
	User, Pass string
	// Query, when set, is a query string ("user=admin&password=x") every
	// DESCRIBE must carry, as cameras that take their credentials in the
	// URL do; URL appends it. A DESCRIBE without it (same parameters, any
	// order) gets 401. Default none.
	Query string
	// UDPRTPAddress and UDPRTCPAddress enable the UDP transport when both
	// are set (even and odd port, like ":8000" and ":8001"). Default: TCP
	// only.
	UDPRTPAddress, UDPRTCPAddress string
	// SenderReportPeriod is the interval of RTCP sender reports. Default 1s.
	SenderReportPeriod time.Duration
	// Now is the cameras' wall clock, read when a camera starts; frames are
	// then timed from it at the nominal rate. Tests may skew it.
	// Default time.Now.
	Now func() time.Time
	// Logger receives session events at debug level. Default slog.Default().
	Logger *slog.Logger
	// SendLogDir, when set, is the directory of the cameras' send logs
	// (SendLogPath): what each camera sent and skipped, frame by frame.
	// Frame numbers continue from the last one logged there, so a
	// restarted camera process does not reuse them. Default none.
	SendLogDir string
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8554"
	}
	if c.Cameras == 0 {
		c.Cameras = 1
	}
	if c.Width == 0 && c.Height == 0 {
		c.Width, c.Height = 1280, 720
	}
	if c.FPS == 0 {
		c.FPS = 25
	}
	if c.GOP == 0 {
		c.GOP = 50
	}
	if c.Bitrate == 0 {
		c.Bitrate = 4_000_000
	}
	if c.AudioSampleRate == 0 {
		c.AudioSampleRate = 48000
	}
	if c.AudioChannels == 0 {
		c.AudioChannels = 1
	}
	if c.SenderReportPeriod == 0 {
		c.SenderReportPeriod = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// maxCameras bounds Cameras: each camera has a goroutine and its stream.
const maxCameras = 10000

// validate checks a Config after EnsureDefaults.
func (c *Config) validate() error {
	if c.Cameras < 1 || c.Cameras > maxCameras {
		return fmt.Errorf("camsim: cameras %d: want 1..%d", c.Cameras, maxCameras)
	}
	if (c.UDPRTPAddress == "") != (c.UDPRTCPAddress == "") {
		return fmt.Errorf("camsim: UDP needs both UDPRTPAddress and UDPRTCPAddress")
	}
	if c.AudioChannels != 1 && c.AudioChannels != 2 {
		return fmt.Errorf("camsim: audio channels %d: want 1 or 2", c.AudioChannels)
	}
	switch c.AudioSampleRate {
	case 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000:
	default:
		return fmt.Errorf("camsim: audio sample rate %d: not an AAC sampling frequency", c.AudioSampleRate)
	}
	if c.SenderReportPeriod < 0 {
		return fmt.Errorf("camsim: sender report period %v: want > 0", c.SenderReportPeriod)
	}
	if _, err := url.ParseQuery(c.Query); err != nil {
		return fmt.Errorf("camsim: query does not parse: %w", err)
	}
	if c.User == "" && c.Pass != "" {
		return fmt.Errorf("camsim: a password needs a user")
	}
	if err := c.videoParams().Validate(); err != nil {
		return fmt.Errorf("camsim: %w", err)
	}
	return nil
}

func (c *Config) videoParams() h264synth.Params {
	return h264synth.Params{Width: c.Width, Height: c.Height, FPS: c.FPS, GOP: c.GOP, Bitrate: c.Bitrate}
}
