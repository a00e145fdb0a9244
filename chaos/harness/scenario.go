package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/chaos/check"
)

// Scenario is a fault schedule scripted in Go.
type Scenario struct {
	Name    string
	Summary string
	// Long scenarios run under `make chaos` (CHAOS_LONG=1), not in the
	// short suite.
	Long bool
	// Nodes and Cameras are the defaults of the cluster; Replicas is R of
	// every stream in a cluster (default 2).
	Nodes, Cameras, Replicas int
	// Zones, when set, are the zones of the nodes (Config.Zones): nodes
	// of one zone share a failure domain. Default: a zone each.
	Zones []int
	// Faults, when set, are the UNDERSTUDY_CHAOS_FAULTS of every node: the
	// scenario needs a chaosfaults build (BuildFaultBinary) as
	// RunOptions.Bin.
	Faults string
	// Netns runs the nodes in network namespaces (Config.Netns): the
	// scenario cuts networks, not only the gossip. Needs root.
	Netns bool
	// Script drives the faults; it runs after every node recorded a
	// first stretch and returns when the episode is over.
	Script func(ctx context.Context, r *Run) error
}

// Run is one run of a scenario: the cluster, the seeded random source
// and a log.
type Run struct {
	*Cluster
	Seed uint64
	Rand *rand.Rand
	// In a cluster: the streams, the placement every node agreed on
	// before the script, and R.
	Streams  []string
	Placed   map[string][]string
	Replicas int
	failures []string
	// cameraStarts are the times each camera came back from an outage,
	// cameraOut its outages (CameraOutage).
	cameraStarts map[int][]time.Time
	cameraOut    map[int][]Span
	// schedule is what the script drew from the seed and did, in order
	// (Result.Schedule).
	schedule []string
}

// Vary returns d scaled by a factor drawn from the seed in [0.75, 1.25),
// rounded to 100 ms, and notes it in the schedule under label: three
// seeds of a fixed scenario are three schedules (the fault lands at
// another point of a part and of a segment, a node stays down longer),
// and a seed replays its own.
func (r *Run) Vary(label string, d time.Duration) time.Duration {
	v := (time.Duration(float64(d)*(0.75+r.Rand.Float64()/2)) + 50*time.Millisecond).Truncate(100 * time.Millisecond)
	r.Plan("%s %v", label, v)
	return v
}

// Plan notes a step of the schedule (and logs it).
func (r *Run) Plan(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.schedule = append(r.schedule, s)
	r.Logf("schedule: %s", s)
}

// Fail records a failed check of the script; the scenario fails.
func (r *Run) Fail(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
	r.Logf("FAIL: "+format, args...)
}

// Sleep waits d or until ctx ends.
func (r *Run) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Logf logs through the cluster's Config.Logf.
func (r *Run) Logf(format string, args ...any) { r.cfg.Logf(format, args...) }

// Result is the outcome of a scenario.
type Result struct {
	Scenario string
	Seed     uint64
	Reports  []*check.Report
	Started  time.Time
	Took     time.Duration
	// Down are the windows no recorder was alive, as given to the checker.
	Down []check.Interval
	// InFlight are the windows before a kill whose frames a single node
	// may lose with the part it was writing.
	InFlight []check.Interval
	// Inputs are what each report was checked from, to check again.
	Inputs []CheckInput
	Pass   bool
	// Schedule is what the script drew from the seed and did, in order:
	// the same seed gives the same schedule (`chaos run --seed`).
	Schedule []string

	// Cluster runs only (Nodes > 1).
	Nodes, Replicas int
	// FramesSent counts the frames sent once per stream (Reports holds an
	// export of each stream through each node).
	FramesSent int
	// MaxUnderReplicated is the longest a stream had fewer than R live
	// recorders (sampled every second).
	MaxUnderReplicated time.Duration
	// BackfillBytes is what the nodes backfilled since their last start.
	BackfillBytes int64
	// TimeToWhole is from the end of the episode until every home's own
	// archive was whole over it; -1 s if it never was.
	TimeToWhole time.Duration
	// Failures are the cluster checks that failed, in words.
	Failures []string
	// Own are the frame checks of every current home's own copy over the
	// episode (its data directory exported offline, after backfill), and
	// OwnInputs what they were checked from.
	Own       []*check.Report
	OwnInputs []CheckInput
}

// CheckInput is what one stream was checked from.
type CheckInput struct {
	Frames  []check.Frame
	Log     []camsim.SendLogEntry
	Options check.Options
}

// Totals sums the reports.
func (r *Result) Totals() (sent, lost, dups int, secondsLost float64) {
	for _, rep := range r.Reports {
		sent += rep.Sent
		lost += rep.Lost
		dups += rep.Duplicates
		secondsLost += rep.SecondsLost
	}
	if r.FramesSent > 0 {
		sent = r.FramesSent
	}
	return
}

// RunOptions configure RunScenario; zero fields take the scenario's
// defaults.
type RunOptions struct {
	Bin     string // required
	Dir     string // required
	Seed    uint64
	Nodes   int
	Cameras int
	// Replicas overrides the scenario's R (cluster runs).
	Replicas int
	// NodeArgs are extra flags of every node, NodeEnv extra environment
	// variables (KEY=value).
	NodeArgs []string
	NodeEnv  []string
	// WholeTimeout bounds the wait for every home's archive to be whole
	// (default 2 min).
	WholeTimeout time.Duration
	// Subnet is Config.Subnet: runs side by side take distinct ones.
	Subnet int
	Logf   func(string, ...any)
}

// Warmup is how long every stream records before the script starts.
const Warmup = 3 * time.Second

// CrashTail is how much a killed node may lose before the kill: the part
// being written (about a second) and its fsync.
const CrashTail = 2 * time.Second

// FreezeTail is how much a frozen node may lose before the SIGSTOP: the
// frames in its socket's buffer that it had not read yet. On the thaw the
// RTSP client's inactivity timer, overdue, may end the connection before
// its reader gets to them (gortsplib checks the time of the last frame read
// once a second), and a lone node has nobody else who holds them.
const FreezeTail = 250 * time.Millisecond

// settle is how long after the script the harness waits before exporting:
// the parts being written when it ended become durable.
const settle = 3 * time.Second

// RunScenario starts a cluster, records a stream per camera, runs the
// script, exports every stream from the first node and checks it against
// its camera's send log, with the windows no node was alive as excused.
func RunScenario(ctx context.Context, sc Scenario, o RunOptions) (*Result, error) {
	cfg := Config{Bin: o.Bin, Dir: o.Dir, Nodes: sc.Nodes, Cameras: sc.Cameras, Zones: sc.Zones, Subnet: o.Subnet, Netns: sc.Netns, Logf: o.Logf}
	if o.Nodes > 0 {
		cfg.Nodes = o.Nodes
	}
	if o.Cameras > 0 {
		cfg.Cameras = o.Cameras
	}
	if cfg.Nodes > 1 {
		return runCluster(ctx, sc, cfg, o)
	}
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res := &Result{Scenario: sc.Name, Seed: o.Seed, Started: time.Now()}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	cfg = c.Config()
	for i := 0; i < cfg.Cameras; i++ {
		if err := c.AddStream(ctx, c.Nodes[0], streamID(i), c.CameraURL(i)); err != nil {
			return nil, err
		}
	}
	from := time.Now()
	run := &Run{Cluster: c, Seed: o.Seed, Rand: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
	if err := run.Sleep(ctx, Warmup); err != nil {
		return nil, err
	}
	if err := sc.Script(ctx, run); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	to := time.Now()
	if err := run.Sleep(ctx, settle); err != nil {
		return nil, err
	}

	procs := make([]*Process, len(c.Nodes))
	for i, n := range c.Nodes {
		procs[i] = n.Process
	}
	res.Down = NoneAlive(from, to, procs...)
	// Recorders start at from (the streams were added then) and after
	// every Down window (the checker adds those): until their first
	// keyframe, missing frames are "starting". A node that starts while
	// another records needs no allowance.
	checkStarts := []time.Time{from}
	// A killed node loses the part it was writing (segment's crash
	// promise), a frozen one what it had not read; with one node nobody
	// else has those frames.
	var inFlight []check.Interval
	if len(c.Nodes) == 1 {
		for _, k := range c.Nodes[0].Kills() {
			inFlight = append(inFlight, check.Interval{Start: k.Add(-CrashTail), End: k})
		}
		for _, s := range c.Nodes[0].Stops() {
			inFlight = append(inFlight, check.Interval{Start: s.Add(-FreezeTail), End: s})
		}
	}
	res.InFlight = inFlight
	res.Pass = true
	for i := 0; i < cfg.Cameras; i++ {
		mp4, err := c.Export(ctx, c.Nodes[0], streamID(i), from, to)
		if err != nil {
			return nil, err
		}
		frames, err := check.ExtractFrames(mp4)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", streamID(i), err)
		}
		log, err := camsim.ReadSendLogFile(camsim.SendLogPath(c.SendLogDir(), i))
		if err != nil {
			return nil, err
		}
		co := check.Options{
			Stream: streamID(i), Camera: i, From: from, To: to.Add(-100 * time.Millisecond),
			Down: res.Down, Starts: checkStarts, InFlight: inFlight,
		}
		rep, err := check.Check(frames, log, co)
		res.Inputs = append(res.Inputs, CheckInput{frames, log, co})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", streamID(i), err)
		}
		res.Reports = append(res.Reports, rep)
		res.Pass = res.Pass && rep.Pass
	}
	res.Schedule = run.schedule
	res.Took = time.Since(res.Started)
	return res, nil
}

func streamID(i int) string { return fmt.Sprintf("cam%d", i) }
