package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/placement"
)

// ControlConfig is the control-plane run: placement of many streams on
// many nodes (the placement package called directly), and the catalog's
// convergence and the failure detection of in-process gossip nodes.
type ControlConfig struct {
	// Placement: Streams on Nodes (4 zones × 10 racks × Nodes/40 hosts),
	// each stream R=Replicas; Runs full placements and Runs failures.
	Streams, Nodes, Replicas, Runs int
	// Gossip: GossipNodes in-process nodes (engine/cluster, memberlist
	// with its LAN defaults and an AES key, as a deployment runs it) on
	// BindIP; Writes catalog writes, each timed until every node sees it.
	GossipNodes, Writes int
	BindIP              string
	// Dir holds the nodes' catalog databases.
	Dir      string
	Progress func(format string, args ...any)
}

// PlacementScale is the time to place Streams on Nodes.
type PlacementScale struct {
	Streams  int `json:"streams"`
	Nodes    int `json:"nodes"`
	Replicas int `json:"replicas"`
	Runs     int `json:"runs"`
	// Full is a placement from scratch (placement.Place), FailWall and
	// FailCPU the re-placement after one node failed (Placer.UpsertNode
	// with the node failed, then Placement): medians over Runs, in ms.
	FullWallMS float64 `json:"full_wall_ms"`
	FullCPUMS  float64 `json:"full_cpu_ms"`
	FailWallMS float64 `json:"after_failure_wall_ms"`
	FailCPUMS  float64 `json:"after_failure_cpu_ms"`
}

// GossipScale is what Nodes in-process gossip nodes measured.
type GossipScale struct {
	Nodes int `json:"nodes"`
	// Convergence: a catalog write (a stream created on one node, the
	// writers taken in turn) until every node holds it.
	Convergence Dist `json:"convergence"`
	// Detection: from the shutdown of one node (no leave message: a
	// crash, as far as its peers can tell) until each survivor holds it
	// dead, over the survivors; DetectionAllMS is the last of them.
	Detection      Dist    `json:"detection"`
	DetectionAllMS float64 `json:"detection_all_ms"`
}

// ControlResult is the control-plane run.
type ControlResult struct {
	Placement *PlacementScale `json:"placement"`
	Gossip    *GossipScale    `json:"gossip"`
	TookS     float64         `json:"took_s"`
}

// Control runs the control-plane measurements.
func Control(ctx context.Context, cfg ControlConfig) (*ControlResult, error) {
	logf := cfg.Progress
	if logf == nil {
		logf = func(string, ...any) {}
	}
	t0 := time.Now()
	res := &ControlResult{}
	logf("control: placing %d streams (R=%d) on %d nodes, %d times, and after a failure, %d times", cfg.Streams, cfg.Replicas, cfg.Nodes, cfg.Runs, cfg.Runs)
	p, err := placementScale(cfg)
	if err != nil {
		return nil, err
	}
	res.Placement = p
	logf("control: full placement %.0f ms wall, %.0f ms CPU; after a failure %.1f ms wall, %.1f ms CPU",
		p.FullWallMS, p.FullCPUMS, p.FailWallMS, p.FailCPUMS)
	logf("control: %d in-process gossip nodes: %d catalog writes, then one node killed", cfg.GossipNodes, cfg.Writes)
	g, err := gossipScale(ctx, cfg, logf)
	if err != nil {
		return nil, err
	}
	res.Gossip = g
	logf("control: write → visible on all: median %.0f ms, p99 %.0f ms; kill → dead on all survivors %.0f ms (median survivor %.0f ms)",
		g.Convergence.Median, g.Convergence.P99, g.DetectionAllMS, g.Detection.Median)
	res.TookS = time.Since(t0).Seconds()
	return res, nil
}

// topology is nodes in 4 zones × 10 racks × hosts (the last rack may be
// short), as placement's own benchmark lays out 1,000 nodes.
func topology(nodes int) []placement.Node {
	hosts := max(1, (nodes+39)/40)
	ns := make([]placement.Node, 0, nodes)
	for i := 0; i < nodes; i++ {
		rack := i / hosts
		ns = append(ns, placement.Node{
			ID: fmt.Sprintf("node-%04d", i),
			Domain: placement.Domain{{Key: "zone", Value: fmt.Sprintf("z%d", rack%4)}, {Key: "rack", Value: fmt.Sprintf("r%d", rack)},
				{Key: "host", Value: fmt.Sprintf("h%d", i)}},
			Weight: 1,
		})
	}
	return ns
}

func placementScale(cfg ControlConfig) (*PlacementScale, error) {
	ns := topology(cfg.Nodes)
	ss := make([]placement.Stream, cfg.Streams)
	for i := range ss {
		ss[i] = placement.Stream{ID: fmt.Sprintf("cam-%06d", i), Weight: 1, Replicas: cfg.Replicas}
	}
	runs := max(cfg.Runs, 1)
	var walls, cpus []time.Duration
	for range runs {
		runtime.GC()
		t0, c0 := time.Now(), cpuTime()
		if _, err := placement.Place(ns, ss, placement.Config{}); err != nil {
			return nil, fmt.Errorf("bench: place: %w", err)
		}
		walls, cpus = append(walls, time.Since(t0)), append(cpus, cpuTime()-c0)
	}
	out := &PlacementScale{Streams: cfg.Streams, Nodes: cfg.Nodes, Replicas: cfg.Replicas, Runs: runs,
		FullWallMS: distOf(walls).Median, FullCPUMS: distOf(cpus).Median}
	pl, err := placement.NewPlacer(ns, ss, placement.Config{})
	if err != nil {
		return nil, fmt.Errorf("bench: placer: %w", err)
	}
	pl.Placement()
	walls, cpus = walls[:0], cpus[:0]
	for i := range runs {
		victim := ns[(i*len(ns))/runs+len(ns)/(2*runs)]
		failed := victim
		failed.State = placement.Failed
		runtime.GC()
		t0, c0 := time.Now(), cpuTime()
		if err := pl.UpsertNode(failed); err != nil {
			return nil, err
		}
		pl.Placement()
		walls, cpus = append(walls, time.Since(t0)), append(cpus, cpuTime()-c0)
		if err := pl.UpsertNode(victim); err != nil {
			return nil, err
		}
		pl.Placement()
	}
	out.FailWallMS, out.FailCPUMS = distOf(walls).Median, distOf(cpus).Median
	return out, nil
}

type gossipNode struct {
	id  string
	db  *pebble.DB
	cat *catalog.Catalog
	c   *cluster.Cluster
}

func (g *gossipNode) close() {
	if g.c != nil {
		_ = g.c.Shutdown()
		g.c = nil
	}
	if g.db != nil {
		_ = g.db.Close()
		g.db = nil
	}
}

func memberAlive(c *cluster.Cluster, id string) (alive, known bool) {
	for _, m := range c.Members() {
		if m.ID == id {
			return m.Alive, true
		}
	}
	return false, false
}

// poll calls cond every interval until it holds, ctx ends or timeout
// passes.
func poll(ctx context.Context, interval, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s: not within %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	return nil
}

func gossipScale(ctx context.Context, cfg ControlConfig, logf func(string, ...any)) (*GossipScale, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := make([]*gossipNode, 0, cfg.GossipNodes)
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()
	for i := 0; i < cfg.GossipNodes; i++ {
		n := &gossipNode{id: fmt.Sprintf("g%03d", i+1)}
		nodes = append(nodes, n)
		dir := filepath.Join(cfg.Dir, n.id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var err error
		if n.db, err = catalog.OpenDB(dir, nil, quiet); err != nil {
			return nil, err
		}
		if n.cat, err = catalog.Open(catalog.Config{DB: n.db, NodeID: n.id, Logger: quiet}); err != nil {
			return nil, err
		}
		var join []string
		if i > 0 {
			join = []string{nodes[0].c.GossipAddr()}
		}
		n.c, err = cluster.Start(cluster.Config{
			Meta:     cluster.Meta{ID: n.id, Domain: "zone=z1/host=" + n.id, APIAddress: "127.0.0.1:8080", Version: "bench", Weight: 1},
			BindAddr: cfg.BindIP, Join: join, Keys: [][]byte{key}, Catalog: n.cat, Logger: quiet,
		})
		if err != nil {
			return nil, fmt.Errorf("bench: gossip node %s: %w", n.id, err)
		}
	}
	err := poll(ctx, 50*time.Millisecond, 120*time.Second, fmt.Sprintf("all %d gossip nodes see each other", len(nodes)), func() bool {
		for _, n := range nodes {
			k := 0
			for _, m := range n.c.Members() {
				if m.Alive {
					k++
				}
			}
			if k != len(nodes) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	logf("control: %d gossip nodes joined", len(nodes))
	out := &GossipScale{Nodes: len(nodes)}
	var lat []time.Duration
	for i := 0; i < cfg.Writes; i++ {
		w := nodes[i%len(nodes)]
		id := fmt.Sprintf("conv-%03d", i)
		start := time.Now()
		if _, err := w.cat.Create(catalog.Stream{ID: id, URL: "rtsp://192.0.2.10:554/stream1", Replicas: 2, Enabled: true}); err != nil {
			return nil, fmt.Errorf("bench: catalog write: %w", err)
		}
		err := poll(ctx, 2*time.Millisecond, 30*time.Second, id+" visible on every node", func() bool {
			for _, n := range nodes {
				if _, err := n.cat.Get(id); err != nil {
					return false
				}
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	out.Convergence = distOf(lat)

	victim := nodes[len(nodes)-1]
	vid := victim.id
	start := time.Now()
	victim.close()
	var mu sync.Mutex
	var seen []time.Duration
	var wg sync.WaitGroup
	for _, n := range nodes[:len(nodes)-1] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 120*time.Second && ctx.Err() == nil {
				if alive, _ := memberAlive(n.c, vid); !alive {
					mu.Lock()
					seen = append(seen, time.Since(start))
					mu.Unlock()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(seen) != len(nodes)-1 {
		return nil, fmt.Errorf("bench: %d of %d survivors declared the killed gossip node dead within 120 s", len(seen), len(nodes)-1)
	}
	out.Detection = distOf(seen)
	out.DetectionAllMS = out.Detection.Max
	return out, nil
}
