package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/understudy-nvr/understudy/chaos/harness"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// FailoverConfig is the failover run: Nodes real `understudy serve`
// processes on 127.0.Subnet.2.. (each its own data directory and failure
// domain), gossip-joined, one camsim process with Cameras cameras, each a
// stream of R=Replicas copies; Trials times the home of the most streams
// is killed with SIGKILL, then restarted.
type FailoverConfig struct {
	Bin     string
	Dir     string // must not exist or be empty
	Subnet  int
	Nodes   int
	Cameras int
	Bitrate int
	// Replicas is R (default 2).
	Replicas int
	Trials   int
	// Poll is how often the survivors are asked (default 100 ms).
	Poll     time.Duration
	Progress func(format string, args ...any)
}

// FailoverTrial is one kill.
type FailoverTrial struct {
	Victim string `json:"victim"`
	// Homed is how many streams the victim was the home of.
	Homed int `json:"homed_streams"`
	// DownMS: kill → every survivor reports the victim down (ListNodes);
	// RecordingMS: kill → every stream placed on R live nodes, none the
	// victim, each with its own recording past the kill reaching within
	// 3 s of the poll (GetPlacement, GetTimeline with the node filter).
	DownMS      float64 `json:"down_ms"`
	RecordingMS float64 `json:"recording_ms"`
}

// FailoverResult is the failover run.
type FailoverResult struct {
	Nodes    int `json:"nodes"`
	Replicas int `json:"replicas"`
	Cameras  int `json:"cameras"`
	Bitrate  int `json:"camera_bitrate"`
	// SegmentSeconds is the nodes' segment duration.
	SegmentSeconds float64 `json:"segment_seconds"`
	PollMS         float64 `json:"poll_ms"`
	// Down and Recording summarize the trials' DownMS and RecordingMS.
	Down      Dist            `json:"declared_down"`
	Recording Dist            `json:"recording_again"`
	Trials    []FailoverTrial `json:"trials"`
	// VideoLost is not measured: the frame check of the exports
	// (chaos/check, as the chaos suite runs it) is left out of the bench.
	VideoLost string  `json:"video_lost"`
	TookS     float64 `json:"took_s"`
}

// failoverSegment is the nodes' segment duration, as the chaos suite's
// cluster runs use.
const failoverSegment = 4 * time.Second

// liveEdge is how far behind the poll a recorder's own coverage may end
// and still count as recording now (as chaos/harness's LiveRecorders).
const liveEdge = 3 * time.Second

// Failover runs the failover trials.
func Failover(ctx context.Context, cfg FailoverConfig) (*FailoverResult, error) {
	logf := cfg.Progress
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 2
	}
	if cfg.Poll == 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.Nodes <= cfg.Replicas {
		return nil, fmt.Errorf("bench: failover: %d nodes for R=%d: want more nodes than copies", cfg.Nodes, cfg.Replicas)
	}
	t0 := time.Now()
	c, err := harness.New(harness.Config{Bin: cfg.Bin, Dir: cfg.Dir, Nodes: cfg.Nodes, Subnet: cfg.Subnet, Cameras: cfg.Cameras,
		Bitrate: cfg.Bitrate, SegmentDuration: failoverSegment, Replicas: cfg.Replicas})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	logf("failover: starting %d nodes and %d cameras on 127.0.%d.x", cfg.Nodes, cfg.Cameras, cfg.Subnet)
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if err := c.WaitMembers(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	var streams []string
	for i := 0; i < cfg.Cameras; i++ {
		id := fmt.Sprintf("cam-%d", i)
		streams = append(streams, id)
		if err := c.AddStream(ctx, c.Nodes[0], id, c.CameraURL(i)); err != nil {
			return nil, err
		}
	}
	res := &FailoverResult{Nodes: cfg.Nodes, Replicas: cfg.Replicas, Cameras: cfg.Cameras, Bitrate: c.Config().Bitrate,
		SegmentSeconds: failoverSegment.Seconds(), PollMS: ms(cfg.Poll),
		VideoLost: "not measured: the bench leaves out the frame check of the exports (make chaos runs it)"}
	var downs, recs []time.Duration
	for trial := 1; trial <= cfg.Trials; trial++ {
		if err := c.WaitMembers(ctx, 60*time.Second); err != nil {
			return nil, err
		}
		place, err := c.WaitReplicated(ctx, streams, cfg.Replicas, 120*time.Second)
		if err != nil {
			return nil, err
		}
		homes := map[string]int{}
		for _, id := range streams {
			homes[place[id][0]]++
		}
		var victim *harness.Node
		for _, n := range c.Nodes {
			if victim == nil || homes[n.ID] > homes[victim.ID] {
				victim = n
			}
		}
		var survivors []*harness.Node
		for _, n := range c.Nodes {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		killAt := time.Now()
		victim.Kill()
		var downAt, recAt time.Time
		deadline := killAt.Add(120 * time.Second)
		for downAt.IsZero() || recAt.IsZero() {
			now := time.Now()
			if now.After(deadline) {
				return nil, fmt.Errorf("bench: failover trial %d: %s killed %v ago: declared down %v, recording again %v",
					trial, victim.ID, now.Sub(killAt).Round(time.Second), !downAt.IsZero(), !recAt.IsZero())
			}
			if downAt.IsZero() && allDown(ctx, c, survivors, victim.ID) {
				downAt = now
			}
			if recAt.IsZero() && recordingAgain(ctx, c, survivors, victim.ID, streams, cfg.Replicas, killAt) {
				recAt = now
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Until(now.Add(cfg.Poll))):
			}
		}
		tr := FailoverTrial{Victim: victim.ID, Homed: homes[victim.ID], DownMS: ms(downAt.Sub(killAt)), RecordingMS: ms(recAt.Sub(killAt))}
		res.Trials = append(res.Trials, tr)
		downs, recs = append(downs, downAt.Sub(killAt)), append(recs, recAt.Sub(killAt))
		logf("failover: trial %d/%d: kill -9 of %s (home of %d streams): declared down after %.1f s, %d recording copies of every stream after %.1f s",
			trial, cfg.Trials, victim.ID, tr.Homed, tr.DownMS/1000, cfg.Replicas, tr.RecordingMS/1000)
		if err := victim.Start(ctx); err != nil {
			return nil, err
		}
	}
	res.Down, res.Recording = distOf(downs), distOf(recs)
	res.TookS = time.Since(t0).Seconds()
	return res, nil
}

// allDown reports whether every survivor reports id down.
func allDown(ctx context.Context, c *harness.Cluster, survivors []*harness.Node, id string) bool {
	for _, n := range survivors {
		st, err := c.NodeStates(ctx, n)
		if err != nil || st[id] != understudyv1.NodeState_NODE_STATE_DOWN {
			return false
		}
	}
	return true
}

// recordingAgain reports whether every survivor places every stream on r
// nodes, the same ones, none of them the victim, and each of those
// records it: its own coverage ends past the kill and within liveEdge of
// now.
func recordingAgain(ctx context.Context, c *harness.Cluster, survivors []*harness.Node, victim string, streams []string, r int, killAt time.Time) bool {
	var place map[string][]string
	for _, n := range survivors {
		p, err := c.Placement(ctx, n)
		if err != nil {
			return false
		}
		for _, id := range streams {
			if len(p[id]) != r || slices.Contains(p[id], victim) || (place != nil && !slices.Equal(p[id], place[id])) {
				return false
			}
		}
		if place == nil {
			place = p
		}
	}
	now := time.Now()
	since := now.Add(-liveEdge)
	if killAt.After(since) {
		since = killAt
	}
	for _, id := range streams {
		for _, nd := range place[id] {
			n := c.Node(nd)
			if n == nil {
				return false
			}
			cv, err := c.Coverage(ctx, n, id, 0, now.Add(-30*time.Second), now)
			if err != nil || len(cv) == 0 || !cv[len(cv)-1].End.After(since) {
				return false
			}
		}
	}
	return true
}
