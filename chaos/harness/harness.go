package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/chaos/check"
)

// Tokens of the harness's nodes.
const (
	AdminToken = "chaos-admin-token"
	ReadToken  = "chaos-read-token"
)

// BuildBinary builds the understudy binary into dir and returns its path.
// moduleRoot is the directory of go.mod.
func BuildBinary(ctx context.Context, moduleRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "understudy")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "pebblegozstd", "-o", bin, "./cmd/understudy")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("harness: go build: %w\n%s", err, out)
	}
	return bin, nil
}

// BuildFaultBinary builds the understudy binary with the chaosfaults tag
// into dir: its nodes read UNDERSTUDY_CHAOS_FAULTS (no-backfill: the node
// never repairs its archive; no-make-before-break, drop-parts, gossip-cut,
// disk, clock-step: cmd/understudy/faults_chaos.go), so the suite can show its checkers find
// what a broken node loses. A normal build has no such switch.
func BuildFaultBinary(ctx context.Context, moduleRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "understudy-faults")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "pebblegozstd,chaosfaults", "-o", bin, "./cmd/understudy")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("harness: go build -tags chaosfaults: %w\n%s", err, out)
	}
	return bin, nil
}

// Config is what a Cluster runs.
type Config struct {
	// Bin is the understudy binary (BuildBinary). Required.
	Bin string
	// Dir holds every node's data directory and log, and the cameras'
	// send logs. Required.
	Dir string
	// Nodes is the number of recorder nodes, at 127.0.S.2, .3, ...
	// (S is Subnet). Default 1.
	Nodes int
	// Subnet is the third byte of the loopback addresses of the run: the
	// cameras at 127.0.S.1, the nodes after. Runs side by side take
	// distinct ones, so that a node restarting on its port never meets
	// another run's process there. Default 0.
	Subnet int
	// Cameras is the number of simulated cameras (one camsim process).
	// Default 1.
	Cameras int
	// Camera parameters; defaults 320x240, 25 fps, GOP 25, 250 kbit/s.
	Width, Height, FPS, GOP, Bitrate int
	// SegmentDuration of the nodes. Default 10s.
	SegmentDuration time.Duration
	// Replicas is R, the copies of each stream AddStream creates (0: the
	// server's default).
	Replicas int
	// NodeArgs, when set, returns extra flags of node i (for a cluster:
	// --gossip-listen, --join).
	NodeArgs func(c *Cluster, i int) []string
	// NodeEnv are extra environment variables (KEY=value) of every node.
	NodeEnv []string
	// Zones, when set, is the zone of node i (its failure domain is
	// zone=zZONE/host=nI); a node past its end, and every node without
	// it, is in a zone of its own (zI+1).
	Zones []int
	// Netns runs every node in a network namespace of its own, at
	// 10.77.S.2, .3, ... with the cameras at 10.77.S.1 (Linux, root; see
	// netns.go), so that a network fault takes the API and the peer
	// calls too. Default: loopback addresses.
	Netns bool
	// Logf receives what the harness does. Default: nothing.
	Logf func(format string, args ...any)
}

func (c *Config) ensureDefaults() error {
	if c.Bin == "" || c.Dir == "" {
		return errors.New("harness: Config.Bin and Config.Dir are required")
	}
	if c.Nodes == 0 {
		c.Nodes = 1
	}
	if c.Subnet < 0 || c.Subnet > 255 || c.Nodes > 250 {
		return fmt.Errorf("harness: subnet %d and %d nodes: want a subnet of 0..255 and at most 250 nodes", c.Subnet, c.Nodes)
	}
	if c.Cameras == 0 {
		c.Cameras = 1
	}
	if c.Nodes < 1 || c.Nodes > 250 || c.Cameras < 1 || c.Cameras > 1000 {
		return fmt.Errorf("harness: %d nodes, %d cameras: want 1..250 and 1..1000", c.Nodes, c.Cameras)
	}
	if c.Width == 0 {
		c.Width, c.Height = 320, 240
	}
	if c.FPS == 0 {
		c.FPS = 25
	}
	if c.GOP == 0 {
		c.GOP = 25
	}
	if c.Bitrate == 0 {
		c.Bitrate = 250_000
	}
	if c.SegmentDuration == 0 {
		c.SegmentDuration = 10 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// Cluster is N understudy nodes and one camsim process, each a real
// process the harness can kill, stop and restart.
type Cluster struct {
	cfg     Config
	Nodes   []*Node
	Cameras *Process
	// camAddr is the cameras' RTSP address.
	camAddr string
	// camState is what SetCamera last wrote.
	camMu    sync.Mutex
	camState map[int]string
	// netnsUp: the namespaces of Config.Netns are made.
	netnsUp bool
}

// Process is one child process: a node or the cameras. Its alive
// intervals are kept so a checker can be told when it was down.
type Process struct {
	Name    string
	LogPath string
	args    []string
	env     []string
	bin     string
	wrap    []string // runs bin: ip netns exec NS
	ready   func(ctx context.Context) error
	logf    func(string, ...any)

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	alive   []check.Interval // closed intervals; the open one is aliveAt
	aliveAt time.Time        // zero when not alive
	frozen  bool
	starts  []time.Time
	kills   []time.Time // SIGKILLs of a running process
	stops   []time.Time // SIGSTOPs
}

// Node is one recorder.
type Node struct {
	*Process
	ID      string
	Addr    string // host:port of the API
	Gossip  string // host:port of the gossip, in a cluster
	DataDir string
	Netns   string // its network namespace (Config.Netns)
}

// URL is the node's API base URL.
func (n *Node) URL() string { return "http://" + n.Addr }

// New prepares a cluster; Start starts it.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	// An earlier run's data would join this one (its catalog, its
	// segments, its send logs) and spoil both the run and the evidence.
	if ents, err := os.ReadDir(cfg.Dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("harness: %s is not empty (an earlier run's files?): remove it or give another directory", cfg.Dir)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg}
	camIP := fmt.Sprintf("127.0.%d.1", cfg.Subnet)
	if cfg.Netns {
		if err := c.setupNetns(); err != nil {
			return nil, err
		}
		camIP = netnsIP(cfg.Subnet, 1)
	}
	camPort, err := freePort(camIP)
	if err != nil {
		c.teardownNetns()
		return nil, err
	}
	c.camAddr = net.JoinHostPort(camIP, camPort)
	c.Cameras = &Process{
		Name: "camsim", LogPath: filepath.Join(cfg.Dir, "camsim.log"), bin: cfg.Bin, logf: cfg.Logf,
		args: []string{"camsim", "-listen", c.camAddr, "-cameras", strconv.Itoa(cfg.Cameras),
			"-width", strconv.Itoa(cfg.Width), "-height", strconv.Itoa(cfg.Height), "-fps", strconv.Itoa(cfg.FPS),
			"-gop", strconv.Itoa(cfg.GOP), "-bitrate", strconv.Itoa(cfg.Bitrate), "-send-log", c.SendLogDir(),
			"-control", c.cameraControlPath()},
		ready: func(ctx context.Context) error { return waitDial(ctx, c.camAddr) },
	}
	for i := 0; i < cfg.Nodes; i++ {
		ip, port, ns := fmt.Sprintf("127.0.%d.%d", cfg.Subnet, i+2), netnsAPIPort, ""
		if cfg.Netns {
			ip, ns = netnsIP(cfg.Subnet, i+2), c.netns(i)
		} else if port, err = freePort(ip); err != nil {
			return nil, fmt.Errorf("harness: %s: %w (Linux routes all of 127/8 to lo; other systems need aliases)", ip, err)
		}
		n := &Node{ID: fmt.Sprintf("n%d", i+1), Addr: net.JoinHostPort(ip, port), DataDir: filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1), "data"), Netns: ns}
		n.Process = &Process{Name: n.ID, LogPath: filepath.Join(cfg.Dir, n.ID, "serve.log"), bin: cfg.Bin, env: cfg.NodeEnv, logf: cfg.Logf}
		if ns != "" {
			n.wrap = []string{"ip", "netns", "exec", ns}
		}
		n.ready = func(ctx context.Context) error { return waitReady(ctx, n.URL()) }
		c.Nodes = append(c.Nodes, n)
	}
	for i, n := range c.Nodes {
		n.args = []string{"serve", "--id", n.ID, "--domain", fmt.Sprintf("zone=z%d/host=%s", c.Zone(i), n.ID),
			"--data-dir", n.DataDir, "--listen", n.Addr, "--admin-token", AdminToken, "--read-token", ReadToken,
			"--segment-duration", cfg.SegmentDuration.String(), "--log-format", "json"}
	}
	// More than one node: a cluster, gossip-joined.
	if cfg.Nodes > 1 {
		if err := c.clusterArgs(); err != nil {
			c.teardownNetns()
			return nil, err
		}
	}
	for i, n := range c.Nodes {
		if cfg.NodeArgs != nil {
			n.args = append(n.args, cfg.NodeArgs(c, i)...)
		}
	}
	return c, nil
}

// Zone is the zone number of node i (Config.Zones).
func (c *Cluster) Zone(i int) int {
	if i < len(c.cfg.Zones) {
		return c.cfg.Zones[i]
	}
	return i + 1
}

// Config returns the configuration with defaults applied.
func (c *Cluster) Config() Config { return c.cfg }

// SendLogDir is the directory of the cameras' send logs.
func (c *Cluster) SendLogDir() string { return filepath.Join(c.cfg.Dir, "sendlog") }

// CameraURL is the RTSP URL of camera i.
func (c *Cluster) CameraURL(i int) string { return "rtsp://" + c.camAddr + "/cam/" + strconv.Itoa(i) }

// Start starts the cameras, then every node, and waits for them.
func (c *Cluster) Start(ctx context.Context) error {
	if err := c.Cameras.Start(ctx); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := os.MkdirAll(filepath.Dir(n.LogPath), 0o755); err != nil {
			return err
		}
		if err := n.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close kills every process still running, and removes the network
// namespaces of Config.Netns.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Kill()
	}
	c.Cameras.Kill()
	if c.netnsUp {
		c.teardownNetns()
	}
}

// Start starts the process and waits until it is ready (a node answers
// /readyz, the cameras accept connections), at most 30 s.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return fmt.Errorf("harness: %s already running", p.Name)
	}
	lf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	if len(p.wrap) > 0 {
		cmd = exec.Command(p.wrap[0], append(append(p.wrap[1:len(p.wrap):len(p.wrap)], p.bin), p.args...)...)
	}
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		lf.Close()
		return fmt.Errorf("harness: start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		lf.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.cmd = nil
			p.downLocked(time.Now())
		}
		p.mu.Unlock()
		close(exited)
	}()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-rctx.Done():
		}
	}()
	if err := p.ready(rctx); err != nil {
		p.Kill()
		return fmt.Errorf("harness: %s not ready: %w (log: %s)", p.Name, err, p.LogPath)
	}
	now := time.Now()
	p.mu.Lock()
	p.aliveAt, p.frozen = now, false
	p.starts = append(p.starts, now)
	p.mu.Unlock()
	p.logf("%s: started (pid %d)", p.Name, cmd.Process.Pid)
	return nil
}

func (p *Process) downLocked(at time.Time) {
	if !p.aliveAt.IsZero() {
		p.alive = append(p.alive, check.Interval{Start: p.aliveAt, End: at})
		p.aliveAt = time.Time{}
	}
}

// signal sends sig; down marks the process not alive from now.
func (p *Process) signal(sig syscall.Signal, down bool) (chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil, fmt.Errorf("harness: %s is not running", p.Name)
	}
	if down {
		p.downLocked(time.Now())
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("harness: %s: %v: %w", p.Name, sig, err)
	}
	p.logf("%s: %v", p.Name, sig)
	return p.exited, nil
}

// Kill sends SIGKILL and waits for the process to exit. Killing a process
// that is not running does nothing.
func (p *Process) Kill() {
	p.mu.Lock()
	frozen := p.frozen
	p.mu.Unlock()
	killAt := time.Now()
	ex, err := p.signal(syscall.SIGKILL, true)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.kills = append(p.kills, killAt)
	p.mu.Unlock()
	if frozen {
		p.signal(syscall.SIGCONT, false)
	}
	<-ex
}

// Term sends SIGTERM and waits up to timeout for a clean exit, then kills.
func (p *Process) Term(timeout time.Duration) error {
	ex, err := p.signal(syscall.SIGTERM, true)
	if err != nil {
		return err
	}
	select {
	case <-ex:
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("harness: %s did not stop within %v of SIGTERM; killed", p.Name, timeout)
	}
}

// Freeze sends SIGSTOP: the process keeps its sockets but does nothing.
func (p *Process) Freeze() error {
	stopAt := time.Now()
	_, err := p.signal(syscall.SIGSTOP, true)
	if err == nil {
		p.mu.Lock()
		p.frozen = true
		p.stops = append(p.stops, stopAt)
		pid := p.cmd.Process.Pid
		p.mu.Unlock()
		// The signal is delivered asynchronously: wait until every thread
		// is stopped, so that what follows meets a frozen process.
		waitStopped(pid, 2*time.Second)
	}
	return err
}

// waitStopped waits up to d until every thread of pid is in the stopped
// state (Linux /proc); elsewhere, or when /proc cannot tell, it returns
// at once.
func waitStopped(pid int, d time.Duration) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		stopped := true
		for _, t := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
			if err != nil {
				continue // the thread ended
			}
			// pid (comm) S ...: the state follows the last ')'.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) {
				return
			}
			if st := b[i+2]; st != 'T' && st != 't' {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Thaw sends SIGCONT to a frozen process; it counts as alive again from
// now.
func (p *Process) Thaw() error {
	if _, err := p.signal(syscall.SIGCONT, false); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		p.frozen = false
		now := time.Now()
		p.aliveAt = now
		p.starts = append(p.starts, now)
	}
	return nil
}

// Restart kills the process (if running) and starts it again.
func (p *Process) Restart(ctx context.Context) error {
	p.Kill()
	return p.Start(ctx)
}

// Running reports whether the process runs (alive or frozen).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Alive returns the intervals the process was alive (ready, not frozen)
// up to now, and the times it became alive.
func (p *Process) Alive(now time.Time) (alive []check.Interval, starts []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	alive = append(alive, p.alive...)
	if !p.aliveAt.IsZero() {
		alive = append(alive, check.Interval{Start: p.aliveAt, End: now})
	}
	return alive, append([]time.Time(nil), p.starts...)
}

// Kills returns the times the process was killed with SIGKILL.
func (p *Process) Kills() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.kills...)
}

// Stops returns the times the process was frozen with SIGSTOP.
func (p *Process) Stops() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.stops...)
}

// NoneAlive returns the windows within [from, to) in which none of the
// given processes was alive.
func NoneAlive(from, to time.Time, ps ...*Process) []check.Interval {
	var all []check.Interval
	for _, p := range ps {
		a, _ := p.Alive(to)
		all = append(all, a...)
	}
	var down []check.Interval
	at := from
	for at.Before(to) {
		// The alive interval covering at that reaches furthest.
		reach := at
		for _, iv := range all {
			if !iv.Start.After(at) && iv.End.After(reach) {
				reach = iv.End
			}
		}
		if reach.After(at) {
			at = reach
			continue
		}
		// Nobody alive at at: down until the next start.
		next := to
		for _, iv := range all {
			if iv.Start.After(at) && iv.Start.Before(next) {
				next = iv.Start
			}
		}
		down = append(down, check.Interval{Start: at, End: next})
		at = next
	}
	return down
}

// AddStream creates an enabled stream on node n through the API (Connect
// JSON, as any client would).
func (c *Cluster) AddStream(ctx context.Context, n *Node, id, rtspURL string) error {
	body := fmt.Sprintf(`{"stream":{"id":%q,"url":%q,"enabled":true,"replicas":%d}}`, id, rtspURL, c.cfg.Replicas)
	req, err := http.NewRequestWithContext(ctx, "POST", n.URL()+"/understudy.v1.StreamService/CreateStream", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("harness: CreateStream %s on %s: %w", id, n.ID, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("harness: CreateStream %s on %s: %d %s", id, n.ID, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// Export fetches GET /v1/export of [from, to) from node n.
func (c *Cluster) Export(ctx context.Context, n *Node, stream string, from, to time.Time) ([]byte, error) {
	q := url.Values{"stream": {stream}, "start": {from.UTC().Format(time.RFC3339Nano)}, "end": {to.UTC().Format(time.RFC3339Nano)}}
	req, err := http.NewRequestWithContext(ctx, "GET", n.URL()+"/v1/export?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+ReadToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("harness: export %s from %s: %w", stream, n.ID, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("harness: export %s from %s: %w", stream, n.ID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("harness: export %s from %s: %d %s", stream, n.ID, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

func freePort(ip string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, nil
}

func waitDial(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitReady(ctx context.Context, base string) error {
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
