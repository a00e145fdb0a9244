// Package bench measures what an operator sizes a cluster with: how many
// cameras one node records, at what CPU, memory and disk cost. It runs the
// real `understudy` binary: the simulated cameras in a process of their
// own (their cost is measured apart and not charged to the node) and the
// node in another, and reads the node's cost from /proc and its health
// from its /metrics.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// IngestConfig is one capacity search at one bitrate.
type IngestConfig struct {
	// Bin is the understudy binary; Dir holds the node's data and logs.
	Bin, Dir string
	// Bitrate of each camera in bit/s; 1280x720, 25 fps, GOP 50.
	Bitrate int
	// Start is the first step's stream count; the ramp doubles it until a
	// step fails, then bisects down to Resolution streams. Max bounds it.
	Start, Max, Resolution int
	// Warm is how long a step runs before it is measured; Window how long
	// it is measured.
	Warm, Window time.Duration
	// Progress, if set, gets a line per step.
	Progress func(format string, args ...any)
}

// Step is one measured stream count.
type Step struct {
	Streams int `json:"streams"`
	// OK: every stream recording, no frame dropped, the parts written at
	// the rate the streams produce them, the queues not growing, and the
	// node's CPU below 90 % of the machine.
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	// CPUPercent is the node's CPU over the window, percent of one core;
	// CameraCPUPercent the cameras' process's.
	CPUPercent       float64 `json:"cpu_percent_of_core"`
	CameraCPUPercent float64 `json:"camera_cpu_percent_of_core"`
	RSSBytes         int64   `json:"rss_bytes"`
	DiskBytesPerSec  float64 `json:"disk_bytes_per_s"`
	PartsPerSec      float64 `json:"parts_per_s"`
	FramesDropped    float64 `json:"frames_dropped"`
	QueueBytes       float64 `json:"queue_bytes"`
}

// IngestResult is a capacity search.
type IngestResult struct {
	Bitrate int `json:"bitrate"`
	// Capacity is the largest stream count whose step passed.
	Capacity int `json:"capacity"`
	// IdleRSSBytes is the node's memory with no stream.
	IdleRSSBytes int64  `json:"idle_rss_bytes"`
	Steps        []Step `json:"steps"`
	// At the capacity: CPU per stream (percent of a core) and memory per
	// stream above the idle node.
	CPUPerStream      float64 `json:"cpu_percent_of_core_per_stream"`
	RSSPerStreamBytes float64 `json:"rss_bytes_per_stream"`
	DiskBytesPerSec   float64 `json:"disk_bytes_per_s"`
}

// token of the benchmark node.
const token = "bench-admin-token"

// Ingest finds the capacity of one node at cfg.Bitrate.
func Ingest(ctx context.Context, cfg IngestConfig) (*IngestResult, error) {
	if cfg.Resolution < 1 {
		cfg.Resolution = 1
	}
	logf := cfg.Progress
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	camAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cams, err := start(ctx, cfg.Bin, filepath.Join(cfg.Dir, "camsim.log"), nil, "camsim", "-listen", camAddr,
		"-cameras", strconv.Itoa(cfg.Max), "-bitrate", strconv.Itoa(cfg.Bitrate), "-width", "1280", "-height", "720", "-gop", "50")
	if err != nil {
		return nil, err
	}
	defer stop(cams)
	data := filepath.Join(cfg.Dir, fmt.Sprintf("node-%d", cfg.Bitrate))
	os.RemoveAll(data)
	node, err := start(ctx, cfg.Bin, filepath.Join(cfg.Dir, fmt.Sprintf("node-%d.log", cfg.Bitrate)), []string{"UNDERSTUDY_ADMIN_TOKEN=" + token},
		"serve", "--id", "bench", "--data-dir", data, "--listen", apiAddr, "--segment-duration", "10s", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer stop(node)
	api := &apiClient{base: "http://" + apiAddr}
	if err := waitReady(ctx, api); err != nil {
		return nil, err
	}
	res := &IngestResult{Bitrate: cfg.Bitrate}
	if err := sleep(ctx, 3*time.Second); err != nil {
		return nil, err
	}
	res.IdleRSSBytes = rss(node.Process.Pid)

	streams := 0
	set := func(n int) error {
		for ; streams < n; streams++ {
			body := fmt.Sprintf(`{"stream":{"id":"cam%d","url":"rtsp://%s/cam/%d","enabled":true,"replicas":1}}`, streams, camAddr, streams)
			if err := api.call(ctx, "understudy.v1.StreamService/CreateStream", body); err != nil {
				return err
			}
		}
		for ; streams > n; streams-- {
			if err := api.call(ctx, "understudy.v1.StreamService/DeleteStream", fmt.Sprintf(`{"id":"cam%d"}`, streams-1)); err != nil {
				return err
			}
		}
		return nil
	}
	measure := func(n int) (Step, error) {
		if err := set(n); err != nil {
			return Step{}, err
		}
		if err := sleep(ctx, cfg.Warm); err != nil {
			return Step{}, err
		}
		st := Step{Streams: n}
		m0, err := api.metrics(ctx)
		if err != nil {
			return st, err
		}
		c0, k0, w0, t0 := cpuTicks(node.Process.Pid), cpuTicks(cams.Process.Pid), writeBytes(node.Process.Pid), time.Now()
		if err := sleep(ctx, cfg.Window); err != nil {
			return st, err
		}
		m1, err := api.metrics(ctx)
		if err != nil {
			return st, err
		}
		el := time.Since(t0).Seconds()
		st.CPUPercent = float64(cpuTicks(node.Process.Pid)-c0) / clkTck / el * 100
		st.CameraCPUPercent = float64(cpuTicks(cams.Process.Pid)-k0) / clkTck / el * 100
		st.DiskBytesPerSec = float64(writeBytes(node.Process.Pid)-w0) / el
		st.RSSBytes = rss(node.Process.Pid)
		st.PartsPerSec = (m1["understudy_parts_written_total"] - m0["understudy_parts_written_total"]) / el
		st.FramesDropped = m1["understudy_frames_dropped_total"] - m0["understudy_frames_dropped_total"]
		st.QueueBytes = m1["understudy_queue_bytes"]
		recording := m1["understudy_streams_recording"]
		cores := float64(numCPU())
		switch {
		case recording < float64(n):
			st.Reason = fmt.Sprintf("%g of %d streams recording", recording, n)
		case st.FramesDropped > 0:
			st.Reason = fmt.Sprintf("%g frames dropped", st.FramesDropped)
		case st.PartsPerSec < 0.9*float64(n):
			st.Reason = fmt.Sprintf("%.1f parts/s written, %d expected", st.PartsPerSec, n)
		case st.QueueBytes > float64(n)*float64(cfg.Bitrate)/8*2:
			st.Reason = fmt.Sprintf("queues hold %.0f MB: the disk falls behind", st.QueueBytes/1e6)
		case st.CPUPercent+st.CameraCPUPercent > 90*cores:
			st.Reason = fmt.Sprintf("the machine is saturated: node %.0f %% + cameras %.0f %% of %g cores", st.CPUPercent, st.CameraCPUPercent, cores)
		default:
			st.OK = true
		}
		verdict := "ok"
		if !st.OK {
			verdict = "FAIL: " + st.Reason
		}
		logf("  %4d streams at %s: node %5.1f %% CPU, %6.1f MB RSS, %5.1f MB/s to disk, cameras %5.1f %% CPU: %s",
			n, rateString(cfg.Bitrate), st.CPUPercent, float64(st.RSSBytes)/1e6, st.DiskBytesPerSec/1e6, st.CameraCPUPercent, verdict)
		res.Steps = append(res.Steps, st)
		return st, nil
	}
	good, bad := 0, 0
	var best Step
	for n := cfg.Start; n <= cfg.Max; n *= 2 {
		st, err := measure(n)
		if err != nil {
			return res, err
		}
		if !st.OK {
			bad = n
			break
		}
		good, best = n, st
		if n == cfg.Max {
			break
		}
		if 2*n > cfg.Max {
			n = cfg.Max / 2 // the last doubling stops at Max
		}
	}
	for bad > 0 && bad-good > cfg.Resolution {
		mid := (good + bad) / 2
		st, err := measure(mid)
		if err != nil {
			return res, err
		}
		if st.OK {
			good, best = mid, st
		} else {
			bad = mid
		}
	}
	res.Capacity = good
	if good > 0 {
		res.CPUPerStream = best.CPUPercent / float64(good)
		res.RSSPerStreamBytes = float64(best.RSSBytes-res.IdleRSSBytes) / float64(good)
		res.DiskBytesPerSec = best.DiskBytesPerSec
	}
	return res, nil
}

func rateString(bps int) string {
	if bps%1_000_000 == 0 {
		return fmt.Sprintf("%d Mbit/s", bps/1_000_000)
	}
	return fmt.Sprintf("%d kbit/s", bps/1000)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// proc is a child process and the end of its Wait.
type proc struct {
	*exec.Cmd
	done chan struct{}
}

func start(ctx context.Context, bin, logPath string, env []string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start %s: %w", args[0], err)
	}
	p := &proc{Cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

func stop(p *proc) {
	_ = p.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.Process.Kill()
		<-p.done
	}
}

// apiClient calls the node's Connect JSON API and reads its metrics.
type apiClient struct{ base string }

func (a *apiClient) call(ctx context.Context, proc, body string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/"+proc, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: %s: %d %s", proc, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// metrics returns the node's unlabelled metrics.
func (a *apiClient) metrics(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		if f := strings.Fields(line); len(f) == 2 {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out, sc.Err()
}

func waitReady(ctx context.Context, a *apiClient) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(a.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("bench: the node did not become ready in 20 s")
}

// clkTck is the kernel's clock ticks per second (USER_HZ), 100 on Linux.
const clkTck = 100

// cpuTicks is the user+system CPU time of pid in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// rss is the resident memory of pid in bytes.
func rss(pid int) int64 {
	return procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") * 1024
}

// writeBytes is what pid caused to be written to storage.
func writeBytes(pid int) int64 {
	return procField(fmt.Sprintf("/proc/%d/io", pid), "write_bytes:")
}

func procField(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}
