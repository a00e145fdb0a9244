package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/chaos/check"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// What a cluster run checks, besides the frames of every export:
//
//   - every stream ends with R live recorders (LiveRecorders: nodes that
//     are up and whose own timeline reaches the live edge), as placed;
//   - after backfill every current home's own archive (GetTimeline with
//     the home as node filter and class ARCHIVE) is whole over the
//     episode;
//   - the federated timeline's SYSTEM and SOURCE gaps agree with the
//     frames lost in the exports (gapsAgree);
//   - fsck is clean on every node, once every node is stopped, and every
//     current home's own copy, exported offline, holds every frame;
//   - where the scenario says so (NoFailover), no survivor declared the
//     faulted node down and placement did not move.

// Timeouts of a cluster run, generous: 2 cores shared with other work.
const (
	joinTimeout       = 60 * time.Second
	replicatedTimeout = 90 * time.Second
	wholeTimeout      = 120 * time.Second
	sampleEvery       = time.Second
)

// wholeEdge is how close to the episode's end the home archive must be
// whole: backfill leaves the last 10 s out (the live edge, and peers'
// segments not closed yet), and the harness waits that long after the
// episode anyway; the window checked is the whole episode.
const clusterSegment = 4 * time.Second

// seam is the longest hole between two archive segments that holds no
// frame: shorter than one frame interval at 25 fps. (Backfill itself
// leaves holes under 200 ms alone; one of 40..200 ms fails the check.)
const seam = 40 * time.Millisecond

func runCluster(ctx context.Context, sc Scenario, cfg Config, o RunOptions) (*Result, error) {
	cfg.SegmentDuration = clusterSegment
	if cfg.Replicas == 0 {
		cfg.Replicas = sc.Replicas
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 2
	}
	if o.Replicas > 0 {
		cfg.Replicas = o.Replicas
	}
	if cfg.Replicas > cfg.Nodes {
		return nil, fmt.Errorf("harness: R=%d copies on %d nodes", cfg.Replicas, cfg.Nodes)
	}
	cfg.NodeEnv = append(cfg.NodeEnv, o.NodeEnv...)
	if sc.Faults != "" {
		cfg.NodeEnv = append(cfg.NodeEnv, "UNDERSTUDY_CHAOS_FAULTS="+sc.Faults)
	}
	extra := cfg.NodeArgs
	cfg.NodeArgs = func(c *Cluster, i int) []string {
		args := append([]string(nil), o.NodeArgs...)
		if extra != nil {
			args = append(args, extra(c, i)...)
		}
		return args
	}
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res := &Result{Scenario: sc.Name, Seed: o.Seed, Started: time.Now(), Nodes: cfg.Nodes, Replicas: cfg.Replicas}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	cfg = c.Config()
	if err := c.WaitMembers(ctx, joinTimeout); err != nil {
		return nil, err
	}
	var streams []string
	for i := 0; i < cfg.Cameras; i++ {
		streams = append(streams, streamID(i))
		if err := c.AddStream(ctx, c.Nodes[0], streamID(i), c.CameraURL(i)); err != nil {
			return nil, err
		}
	}
	place, err := c.WaitReplicated(ctx, streams, cfg.Replicas, replicatedTimeout)
	if err != nil {
		return nil, err
	}
	cfg.Logf("placement: %v", place)
	from := time.Now()
	run := &Run{Cluster: c, Seed: o.Seed, Rand: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		Streams: streams, Placed: place, Replicas: cfg.Replicas}

	// The under-replication sampler: every second, how many nodes record
	// each stream now.
	sctx, stopSampler := context.WithCancel(ctx)
	var wg sync.WaitGroup
	under := map[string]time.Duration{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		since := map[string]time.Time{}
		for {
			select {
			case <-sctx.Done():
				return
			case <-time.After(sampleEvery):
			}
			live := c.LiveRecorders(sctx, streams)
			if sctx.Err() != nil {
				return
			}
			now := time.Now()
			for _, id := range streams {
				if len(live[id]) < cfg.Replicas {
					if since[id].IsZero() {
						since[id] = now
					}
					under[id] = max(under[id], now.Sub(since[id]))
				} else {
					since[id] = time.Time{}
				}
			}
		}
	}()

	if err := run.Sleep(ctx, Warmup); err != nil {
		stopSampler()
		return nil, err
	}
	if err := sc.Script(ctx, run); err != nil {
		stopSampler()
		wg.Wait()
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	to := time.Now()
	res.Pass = true
	fail := func(f string, a ...any) {
		res.Pass = false
		res.Failures = append(res.Failures, fmt.Sprintf(f, a...))
	}
	res.Failures = append(res.Failures, run.failures...)
	if len(run.failures) > 0 {
		res.Pass = false
	}

	// Every stream ends with R live recorders, as placed.
	final, err := c.WaitReplicated(ctx, streams, cfg.Replicas, replicatedTimeout)
	if err != nil {
		fail("end: %v", err)
	}
	stopSampler()
	wg.Wait()
	for _, d := range under {
		res.MaxUnderReplicated = max(res.MaxUnderReplicated, d)
	}

	// After backfill every current home's own archive is whole over the
	// episode.
	var lastHoles string
	err = waitFor(ctx, cmpOr(o.WholeTimeout, wholeTimeout), "every home's own archive whole over the episode", func() (bool, string) {
		var bad []string
		for i, id := range streams {
			if len(final[id]) == 0 {
				bad = append(bad, id+": no placement")
				continue
			}
			home := c.Node(final[id][0])
			cv, err := c.Coverage(ctx, home, id, understudyv1.SegmentClass_SEGMENT_CLASS_ARCHIVE, from, to)
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			for _, h := range Holes(cv, from, to) {
				if h.End.Sub(h.Start) < seam || run.cameraAway(i, h) {
					continue
				}
				bad = append(bad, fmt.Sprintf("%s: home %s archive hole %v", id, home.ID, h))
			}
		}
		lastHoles = strings.Join(bad, "; ")
		return len(bad) == 0, lastHoles
	})
	if err != nil {
		fail("backfill: %s", lastHoles)
		res.TimeToWhole = -time.Second // never: -1 in the report
	} else {
		res.TimeToWhole = time.Since(to)
	}

	procs := make([]*Process, len(c.Nodes))
	for i, n := range c.Nodes {
		procs[i] = n.Process
	}
	res.Down = NoneAlive(from, to, procs...)
	// A kill while no other node was alive loses the part in flight, a
	// freeze what the node had not read (FreezeTail).
	for _, n := range c.Nodes {
		alone := func(t time.Time) bool {
			return t.After(from) && t.Before(to) && len(NoneAlive(t, t.Add(time.Millisecond), othersOf(procs, n.Process)...)) > 0
		}
		for _, k := range n.Kills() {
			if alone(k) {
				res.InFlight = append(res.InFlight, check.Interval{Start: k.Add(-CrashTail), End: k})
			}
		}
		for _, s := range n.Stops() {
			if alone(s) {
				res.InFlight = append(res.InFlight, check.Interval{Start: s.Add(-FreezeTail), End: s})
			}
		}
	}

	// Frames: every stream exported through every node (a federated
	// export: any node cuts the clip from every node's recordings). The
	// send log lags what was sent by up to a second (its open range) and
	// the parts being written at the end become durable: wait settle
	// after the episode, as the single-node run does. (Without it, a run
	// whose archives were whole at once read the send log 0.5 s after the
	// episode and called the last 8 frames "not in the send log".)
	if err := run.Sleep(ctx, time.Until(to.Add(settle))); err != nil {
		return nil, err
	}
	for i, id := range streams {
		log, err := camsim.ReadSendLogFile(camsim.SendLogPath(c.SendLogDir(), i))
		if err != nil {
			return nil, err
		}
		for k, n := range c.Nodes {
			mp4, err := c.Export(ctx, n, id, from, to)
			if err != nil {
				fail("export %s through %s: %v", id, n.ID, err)
				continue
			}
			frames, err := check.ExtractFrames(mp4)
			if err != nil {
				fail("export %s through %s: %v", id, n.ID, err)
				continue
			}
			co := check.Options{Stream: id + "@" + n.ID, Camera: i, From: from, To: to.Add(-100 * time.Millisecond),
				Down: res.Down, InFlight: res.InFlight, Starts: run.cameraStarts[i]}
			rep, err := check.Check(frames, log, co)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", id, err)
			}
			res.Inputs = append(res.Inputs, CheckInput{frames, log, co})
			res.Reports = append(res.Reports, rep)
			if k == 0 {
				res.FramesSent += rep.Sent
			}
			res.Pass = res.Pass && rep.Pass
		}
	}

	gapsAgree(ctx, c, streams, from, to, res, fail)

	// Bytes backfilled (counted since each node's last start).
	for _, n := range c.Nodes {
		b, err := metric(ctx, n, "understudy_backfill_bytes_total")
		if err != nil {
			cfg.Logf("%s: metrics: %v", n.ID, err)
		}
		res.BackfillBytes += int64(b)
	}

	// fsck, every node stopped.
	for _, n := range c.Nodes {
		if n.Running() {
			if err := n.Term(30 * time.Second); err != nil {
				fail("%s: %v", n.ID, err)
			}
		}
		out, ok := c.Fsck(ctx, n)
		if !ok {
			fail("fsck %s: %s", n.ID, out)
		}
	}

	// Every current home's own copy, decoded: `understudy export` of its
	// data directory (the node stopped) holds every frame of the episode
	// a recorder was alive for. The timeline check above trusts the
	// index; this one reads the frames.
	for i, id := range streams {
		if len(final[id]) == 0 {
			continue
		}
		home := c.Node(final[id][0])
		log, err := camsim.ReadSendLogFile(camsim.SendLogPath(c.SendLogDir(), i))
		if err != nil {
			return nil, err
		}
		mp4, err := c.ExportOffline(ctx, home, id, from, to)
		if err != nil {
			fail("own copy of %s on %s: %v", id, home.ID, err)
			continue
		}
		frames, err := check.ExtractFrames(mp4)
		if err != nil {
			fail("own copy of %s on %s: %v", id, home.ID, err)
			continue
		}
		co := check.Options{Stream: id + "@" + home.ID + "/own", Camera: i, From: from, To: to.Add(-100 * time.Millisecond),
			Down: res.Down, InFlight: res.InFlight, Starts: run.cameraStarts[i]}
		rep, err := check.Check(frames, log, co)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		res.Own = append(res.Own, rep)
		res.OwnInputs = append(res.OwnInputs, CheckInput{frames, log, co})
		if !rep.Pass {
			fail("own copy of %s on its home %s: %d frames lost, %d twice, %v", id, home.ID, rep.Lost, rep.Duplicates, rep.Problems)
		}
	}
	res.Schedule = run.schedule
	res.Took = time.Since(res.Started)
	return res, nil
}

func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

func othersOf(ps []*Process, p *Process) []*Process {
	var out []*Process
	for _, q := range ps {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

// metric reads an unlabelled sample (or the sum of a family's samples)
// from the node's /metrics.
func metric(ctx context.Context, n *Node, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", n.URL()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+ReadToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) || (len(l) > len(name) && l[len(name)] != ' ' && l[len(name)] != '{') {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// gapsAgree checks the federated timeline's gaps against the frame
// checker, stream by stream, outside the windows no node was alive: a
// SYSTEM gap (sent, stored nowhere) must come with frames lost in the
// exports, frames lost must come with a SYSTEM gap (a timeline that
// shows none hides the loss from the operator and from backfill), and a
// SOURCE gap (the camera sent nothing) must lose no frame the camera
// sent.
func gapsAgree(ctx context.Context, c *Cluster, streams []string, from, to time.Time, res *Result, fail func(string, ...any)) {
	n := c.AnyUp()
	if n == nil {
		fail("timeline gaps: no node up to ask")
		return
	}
	for _, id := range streams {
		resp, err := n.Recording().GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{
			StreamId: id, Start: timestamppb.New(from), End: timestamppb.New(to)}))
		if err != nil {
			fail("timeline gaps: GetTimeline %s on %s: %v", id, n.ID, err)
			continue
		}
		var system, source []Span
		for _, g := range resp.Msg.Gaps {
			sp := Span{g.Start.AsTime(), g.End.AsTime()}
			if sp.End.Sub(sp.Start) < seam || overlapsAny(sp, res.Down) {
				continue
			}
			if g.Kind == understudyv1.GapKind_GAP_KIND_SOURCE {
				source = append(source, sp)
			} else {
				system = append(system, sp)
			}
		}
		lost := 0
		for _, rep := range res.Reports {
			if strings.HasPrefix(rep.Stream, id+"@") {
				lost = max(lost, rep.Lost)
			}
		}
		switch {
		case len(system) > 0 && lost == 0:
			fail("timeline gaps: %s: SYSTEM gaps %v on %s, yet the exports lost no frame", id, system, n.ID)
		case lost > 0 && len(system) == 0:
			fail("timeline gaps: %s: the exports lost %d frames, yet the timeline on %s shows no SYSTEM gap", id, lost, n.ID)
		}
		if len(source) > 0 && lost > 0 {
			fail("timeline gaps: %s: SOURCE gaps %v on %s while the exports lost %d frames the camera sent", id, source, n.ID, lost)
		}
	}
}

func overlapsAny(s Span, ws []check.Interval) bool {
	for _, w := range ws {
		if s.Start.Before(w.End) && w.Start.Before(s.End) {
			return true
		}
	}
	return false
}
