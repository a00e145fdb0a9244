package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PeerConfig is the side-by-side run: the same cameras recorded by one
// understudy node and by MediaMTX (fMP4, 1 s parts, 60 s segments), one
// after the other, at each stream count.
type PeerConfig struct {
	Bin      string // understudy
	MediaMTX string // the MediaMTX binary; "" skips the peer
	Dir      string
	Bitrate  int
	Counts   []int
	Warm     time.Duration
	Window   time.Duration
	Progress func(format string, args ...any)
}

// Side is one recorder at one stream count.
type Side struct {
	Streams      int     `json:"streams"`
	CPUPercent   float64 `json:"cpu_percent_of_core"`
	CPUPerStream float64 `json:"cpu_percent_of_core_per_stream"`
	RSSBytes     int64   `json:"rss_bytes"`
	DiskBytesPS  float64 `json:"disk_bytes_per_s"`
}

// PeerRow compares the two at one count.
type PeerRow struct {
	Understudy Side `json:"understudy"`
	MediaMTX   Side `json:"mediamtx"`
	// CPURatio and RSSRatio are understudy's figure over MediaMTX's.
	CPURatio float64 `json:"cpu_ratio"`
	RSSRatio float64 `json:"rss_ratio"`
}

// PeerResult is the side-by-side run.
type PeerResult struct {
	Bitrate int       `json:"bitrate"`
	Peer    string    `json:"peer"`
	Skipped string    `json:"skipped,omitempty"` // why there is no peer figure
	Rows    []PeerRow `json:"rows"`
}

// Peer runs the side-by-side comparison.
func Peer(ctx context.Context, cfg PeerConfig) (*PeerResult, error) {
	logf := cfg.Progress
	if logf == nil {
		logf = func(string, ...any) {}
	}
	res := &PeerResult{Bitrate: cfg.Bitrate, Peer: "MediaMTX v1.15.3"}
	if cfg.MediaMTX == "" {
		res.Skipped = "no MediaMTX binary (build it with scripts/build-mediamtx.sh)"
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	maxN := 0
	for _, n := range cfg.Counts {
		maxN = max(maxN, n)
	}
	camAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cams, err := start(ctx, cfg.Bin, filepath.Join(cfg.Dir, "camsim.log"), nil, "camsim", "-listen", camAddr,
		"-cameras", strconv.Itoa(maxN), "-bitrate", strconv.Itoa(cfg.Bitrate), "-width", "1280", "-height", "720", "-gop", "50")
	if err != nil {
		return nil, err
	}
	defer stop(cams)
	for _, n := range cfg.Counts {
		row := PeerRow{}
		u, err := cfg.understudy(ctx, camAddr, n)
		if err != nil {
			return res, err
		}
		row.Understudy = u
		logf("  %3d streams: understudy %5.1f %% CPU (%.2f per stream), %6.1f MB RSS", n, u.CPUPercent, u.CPUPerStream, float64(u.RSSBytes)/1e6)
		if cfg.MediaMTX != "" {
			m, err := cfg.mediamtx(ctx, camAddr, n)
			if err != nil {
				return res, err
			}
			row.MediaMTX = m
			if m.CPUPerStream > 0 {
				row.CPURatio = u.CPUPerStream / m.CPUPerStream
			}
			if m.RSSBytes > 0 {
				row.RSSRatio = float64(u.RSSBytes) / float64(m.RSSBytes)
			}
			logf("  %3d streams: MediaMTX   %5.1f %% CPU (%.2f per stream), %6.1f MB RSS; understudy/MediaMTX CPU %.2f, RSS %.2f",
				n, m.CPUPercent, m.CPUPerStream, float64(m.RSSBytes)/1e6, row.CPURatio, row.RSSRatio)
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// sample measures a process over the window after the warm-up.
func (cfg PeerConfig) sample(ctx context.Context, p *proc, n int) (Side, error) {
	if err := sleep(ctx, cfg.Warm); err != nil {
		return Side{}, err
	}
	c0, w0, t0 := cpuTicks(p.Process.Pid), writeBytes(p.Process.Pid), time.Now()
	if err := sleep(ctx, cfg.Window); err != nil {
		return Side{}, err
	}
	el := time.Since(t0).Seconds()
	s := Side{Streams: n, RSSBytes: rss(p.Process.Pid)}
	s.CPUPercent = float64(cpuTicks(p.Process.Pid)-c0) / clkTck / el * 100
	s.CPUPerStream = s.CPUPercent / float64(n)
	s.DiskBytesPS = float64(writeBytes(p.Process.Pid)-w0) / el
	return s, nil
}

func (cfg PeerConfig) understudy(ctx context.Context, camAddr string, n int) (Side, error) {
	apiAddr, err := freeAddr()
	if err != nil {
		return Side{}, err
	}
	data := filepath.Join(cfg.Dir, fmt.Sprintf("understudy-%d", n))
	node, err := start(ctx, cfg.Bin, data+".log", []string{"UNDERSTUDY_ADMIN_TOKEN=" + token},
		"serve", "--id", "bench", "--data-dir", data, "--listen", apiAddr, "--log-level", "warn")
	if err != nil {
		return Side{}, err
	}
	defer func() { stop(node); os.RemoveAll(data) }()
	api := &apiClient{base: "http://" + apiAddr}
	if err := waitReady(ctx, api); err != nil {
		return Side{}, err
	}
	for i := range n {
		body := fmt.Sprintf(`{"stream":{"id":"cam%d","url":"rtsp://%s/cam/%d","enabled":true,"replicas":1}}`, i, camAddr, i)
		if err := api.call(ctx, "understudy.v1.StreamService/CreateStream", body); err != nil {
			return Side{}, err
		}
	}
	s, err := cfg.sample(ctx, node, n)
	if err != nil {
		return s, err
	}
	m, err := api.metrics(ctx)
	if err != nil {
		return s, err
	}
	if r := m["understudy_streams_recording"]; r < float64(n) {
		return s, fmt.Errorf("bench: understudy records %g of %d streams", r, n)
	}
	return s, nil
}

func (cfg PeerConfig) mediamtx(ctx context.Context, camAddr string, n int) (Side, error) {
	dir := filepath.Join(cfg.Dir, fmt.Sprintf("mediamtx-%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Side{}, err
	}
	defer os.RemoveAll(dir)
	var y strings.Builder
	fmt.Fprintf(&y, `logLevel: warn
rtsp: no
rtmp: no
hls: no
webrtc: no
srt: no
api: no
metrics: no
playback: no
pathDefaults:
  record: yes
  recordPath: %s/%%path/%%Y-%%m-%%d_%%H-%%M-%%S-%%f
  recordFormat: fmp4
  recordPartDuration: 1s
  recordSegmentDuration: 60s
paths:
`, dir)
	for i := range n {
		fmt.Fprintf(&y, "  cam%d:\n    source: rtsp://%s/cam/%d\n    rtspTransport: tcp\n", i, camAddr, i)
	}
	conf := filepath.Join(dir, "mediamtx.yml")
	if err := os.WriteFile(conf, []byte(y.String()), 0o644); err != nil {
		return Side{}, err
	}
	p, err := start(ctx, cfg.MediaMTX, dir+".log", nil, conf)
	if err != nil {
		return Side{}, err
	}
	defer stop(p)
	s, err := cfg.sample(ctx, p, n)
	if err != nil {
		return s, err
	}
	select {
	case <-p.done:
		b, _ := os.ReadFile(dir + ".log")
		return s, fmt.Errorf("bench: MediaMTX exited: %s", b)
	default:
	}
	// Every stream must be recording: a file per path.
	for i := range n {
		fs, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("cam%d", i), "*"))
		if len(fs) == 0 {
			return s, fmt.Errorf("bench: MediaMTX wrote nothing for cam%d", i)
		}
	}
	return s, nil
}
