package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/chaos/check"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// clusterNode is one `understudy serve` process of a cluster test.
type clusterNode struct {
	id, api, gossip, dir, logPath string
	args                          []string
	proc                          *serverProc
}

func (c *clusterNode) start(t *testing.T, bin string) {
	t.Helper()
	lf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve"}, c.args...)...)
	cmd.Env = append(os.Environ(), "UNDERSTUDY_ADMIN_TOKEN="+e2eAdmin)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.proc = &serverProc{cmd: cmd, log: lf}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + c.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			c.proc.kill()
			t.Fatalf("%s not ready after 15 s: %v", c.id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *clusterNode) cluster() understudyv1connect.ClusterServiceClient {
	return understudyv1connect.NewClusterServiceClient(h2cClient(e2eAdmin), "http://"+c.api)
}

func (c *clusterNode) recording() understudyv1connect.RecordingServiceClient {
	return understudyv1connect.NewRecordingServiceClient(h2cClient(e2eAdmin), "http://"+c.api)
}

// startTestCluster starts n nodes in distinct racks, each joining the
// others, with one gossip key.
func startTestCluster(t *testing.T, bin string, n int, extra ...string) []*clusterNode {
	t.Helper()
	tmp := t.TempDir()
	key, err := exec.Command(bin, "keygen").Output()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(tmp, "gossip.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*clusterNode, n)
	for i := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		nodes[i] = &clusterNode{id: id, api: freePort(t), gossip: freePort(t), dir: filepath.Join(tmp, id),
			logPath: filepath.Join(tmp, id+".log")}
	}
	for i, c := range nodes {
		var join []string
		for j, o := range nodes {
			if j != i {
				join = append(join, o.gossip)
			}
		}
		c.args = append([]string{"--id", c.id, "--domain", fmt.Sprintf("zone=a/rack=r%d/host=%s", i+1, c.id),
			"--data-dir", c.dir, "--listen", c.api, "--gossip-listen", c.gossip, "--join", strings.Join(join, ","),
			"--gossip-key-file", keyFile, "--read-token", e2eRead, "--segment-duration", "4s", "--log-level", "debug"}, extra...)
	}
	for _, c := range nodes {
		c.start(t, bin)
	}
	t.Cleanup(func() {
		for _, c := range nodes {
			if c.proc != nil {
				c.proc.kill()
			}
			if t.Failed() {
				b, _ := os.ReadFile(c.logPath)
				lines := strings.Split(string(b), "\n")
				var keep []string
				for _, l := range lines {
					if !strings.Contains(l, "level=DEBUG") {
						keep = append(keep, l)
					}
				}
				t.Logf("%s log (%d lines, debug left out):\n%s", c.id, len(lines), strings.Join(keep[max(0, len(keep)-60):], "\n"))
			}
		}
	})
	return nodes
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// placementOf returns what node c computes: stream -> its recorders.
func placementOf(t *testing.T, c *clusterNode) map[string][]string {
	t.Helper()
	resp, err := c.cluster().GetPlacement(context.Background(), connect.NewRequest(&understudyv1.GetPlacementRequest{}))
	if err != nil {
		return nil
	}
	out := map[string][]string{}
	for _, a := range resp.Msg.Assignments {
		out[a.StreamId] = a.NodeIds
	}
	return out
}

func nodeStates(c *clusterNode) map[string]understudyv1.NodeState {
	resp, err := c.cluster().ListNodes(context.Background(), connect.NewRequest(&understudyv1.ListNodesRequest{}))
	if err != nil {
		return nil
	}
	out := map[string]understudyv1.NodeState{}
	for _, n := range resp.Msg.Nodes {
		out[n.Id] = n.State
	}
	return out
}

type span struct{ start, end time.Time }

// coverageOf returns the stretches of stream that node c holds itself, of
// class (UNSPECIFIED: any), within [from, to).
func coverageOf(t *testing.T, c *clusterNode, stream string, class understudyv1.SegmentClass, from, to time.Time) []span {
	t.Helper()
	resp, err := c.recording().GetTimeline(context.Background(), connect.NewRequest(&understudyv1.GetTimelineRequest{
		StreamId: stream, Start: timestamppb.New(from), End: timestamppb.New(to), NodeId: c.id, Class: class}))
	if err != nil {
		t.Fatalf("GetTimeline %s on %s: %v", stream, c.id, err)
	}
	var out []span
	for _, cv := range resp.Msg.Coverage {
		out = append(out, span{cv.Start.AsTime(), cv.End.AsTime()})
	}
	return out
}

// holes returns the parts of [from, to) that no span covers.
func holes(spans []span, from, to time.Time) []span {
	sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	var out []span
	at := from
	for _, s := range spans {
		if s.start.After(at) && s.start.Before(to) {
			out = append(out, span{at, s.start})
		}
		if s.end.After(at) {
			at = s.end
		}
	}
	if at.Before(to) {
		out = append(out, span{at, to})
	}
	return out
}

// TestClusterFailoverNoGap is the cluster's promise on real processes:
// three nodes in three racks record six cameras with R=2; the home of some
// streams is killed with SIGKILL; the union of what the nodes recorded has
// no hole; the survivors declare it down, promote the replicas and start
// new ones; once it is back, placement gives it its streams again.
func TestClusterFailoverNoGap(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end cluster test: 70 s with real processes")
	}
	bin := understudyBinary(t)
	const cams = 12
	sendLogs := t.TempDir()
	sim := startCamsim(t, camsim.Config{Cameras: cams, Width: 320, Height: 240, Bitrate: 300_000, GOP: 25, SendLogDir: sendLogs})
	nodes := startTestCluster(t, bin, 3, "--rejoin-hold", "3s")
	ctx := context.Background()
	waitUntil(t, 15*time.Second, "every node sees 3 active nodes", func() bool {
		for _, c := range nodes {
			st := nodeStates(c)
			if len(st) != 3 {
				return false
			}
			for _, s := range st {
				if s != understudyv1.NodeState_NODE_STATE_ACTIVE {
					return false
				}
			}
		}
		return true
	})

	// Streams are created on n1 and replicate to the others.
	sc := understudyv1connect.NewStreamServiceClient(h2cClient(e2eAdmin), "http://"+nodes[0].api)
	var ids []string
	for i := range cams {
		id := fmt.Sprintf("cam%d", i)
		ids = append(ids, id)
		if _, err := sc.CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{
			Stream: &understudyv1.Stream{Id: id, Url: sim.URL(i), Enabled: true, Replicas: 2}})); err != nil {
			t.Fatal(err)
		}
	}
	var place map[string][]string
	agreeIn := waitUntil(t, 20*time.Second, "every node computes the same placement, 2 copies per stream", func() bool {
		place = placementOf(t, nodes[0])
		for _, c := range nodes[1:] {
			p := placementOf(t, c)
			if len(p) != cams {
				return false
			}
			for id, ns := range place {
				if !slices.Equal(p[id], ns) || len(ns) != 2 {
					return false
				}
			}
		}
		return len(place) == cams
	})
	t.Logf("placement agreed on 3 nodes %s after the streams were created: %v", agreeIn, place)
	// The dry-run of the live cluster's topology and catalog predicts
	// exactly what the nodes compute.
	out, err := exec.Command(bin, "ctl", "--server", nodes[1].api, "--token", e2eAdmin, "--json", "placement", "plan", "--assignments").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ctl placement plan: %v: %s", err, stderr)
	}
	var plan struct{ Assignments map[string][]string }
	if err := json.Unmarshal(out, &plan); err != nil {
		t.Fatalf("ctl placement plan: %v: %s", err, out)
	}
	if !maps.EqualFunc(plan.Assignments, place, slices.Equal[[]string]) {
		t.Errorf("the dry-run of the cluster differs from its placement:\n plan %v\nnodes %v", plan.Assignments, place)
	}

	// The victim: the home of the most streams.
	homes := map[string][]string{}
	for id, ns := range place {
		homes[ns[0]] = append(homes[ns[0]], id)
	}
	victim := nodes[0]
	for _, c := range nodes {
		if len(homes[c.id]) > len(homes[victim.id]) {
			victim = c
		}
	}
	byID := map[string]*clusterNode{}
	for _, c := range nodes {
		byID[c.id] = c
	}
	var survivors []*clusterNode
	for _, c := range nodes {
		if c != victim {
			survivors = append(survivors, c)
		}
	}

	// Every copy records before the fault.
	waitUntil(t, 20*time.Second, "every placed copy recording", func() bool {
		for id, ns := range place {
			for _, nd := range ns {
				if len(coverageOf(t, byID[nd], id, 0, time.Now().Add(-time.Minute), time.Now())) == 0 {
					return false
				}
			}
		}
		return true
	})
	t0 := time.Now()
	// Homes balanced within the placement bound: with 12 streams on 3
	// equal nodes, 4 each, and at most 10 % over.
	for id, hs := range homes {
		if len(hs) > 5 || len(hs) < 3 {
			t.Errorf("%s is home of %d streams, want 4 (±1)", id, len(hs))
		}
	}
	// What the nodes record agrees with the placement every node computes
	// (once the sessions started before every node counted have handed
	// off: make-before-break).
	agree := func() string {
		var bad []string
		for _, c := range nodes {
			resp, err := c.cluster().ListNodes(ctx, connect.NewRequest(&understudyv1.ListNodesRequest{}))
			if err != nil {
				return err.Error()
			}
			for _, nd := range resp.Msg.Nodes {
				wantHome, wantReplica := 0, 0
				for _, ns := range place {
					if ns[0] == nd.Id {
						wantHome++
					} else if slices.Contains(ns, nd.Id) {
						wantReplica++
					}
				}
				if int(nd.HomeStreams) != wantHome || int(nd.ReplicaStreams) != wantReplica {
					bad = append(bad, fmt.Sprintf("ListNodes on %s: %s records %d home and %d replica streams, placement says %d and %d",
						c.id, nd.Id, nd.HomeStreams, nd.ReplicaStreams, wantHome, wantReplica))
				}
			}
		}
		return strings.Join(bad, "; ")
	}
	var last string
	agreedIn := waitUntil(t, 40*time.Second, "ListNodes, GetPlacement and the sessions agree on every node", func() bool {
		last = agree()
		return last == ""
	})
	t.Logf("ListNodes and the sessions agree with the placement on every node %s after every copy recorded", agreedIn)

	// A freeze shorter than the detection time moves nothing.
	if err := victim.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	freezeEnd := time.Now().Add(2 * time.Second)
	for time.Now().Before(freezeEnd.Add(4 * time.Second)) {
		if time.Now().After(freezeEnd) && victim.proc.cmd.ProcessState == nil {
			_ = victim.proc.cmd.Process.Signal(syscall.SIGCONT)
		}
		for _, c := range survivors {
			if st := nodeStates(c)[victim.id]; st == understudyv1.NodeState_NODE_STATE_DOWN {
				t.Fatalf("a 2 s SIGSTOP of %s made %s declare it down", victim.id, c.id)
			}
			if p := placementOf(t, c); len(p) == cams && !maps.EqualFunc(p, place, slices.Equal[[]string]) {
				t.Fatalf("a 2 s SIGSTOP of %s changed the placement on %s", victim.id, c.id)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = victim.proc.cmd.Process.Signal(syscall.SIGCONT)
	t.Logf("%s frozen (SIGSTOP) for 2 s: not declared down, placement unchanged", victim.id)
	time.Sleep(2 * time.Second)

	killAt := time.Now()
	victim.proc.kill()
	victim.proc = nil
	downIn := waitUntil(t, 20*time.Second, victim.id+" declared down by both survivors", func() bool {
		for _, c := range survivors {
			if nodeStates(c)[victim.id] != understudyv1.NodeState_NODE_STATE_DOWN {
				return false
			}
		}
		return true
	})
	// R copies again: each stream placed on the two survivors, which record
	// it (a segment written after the kill; segments are 4 s).
	var after map[string][]string
	copiesIn := waitUntil(t, 30*time.Second, "2 recording copies of every stream on the survivors", func() bool {
		after = placementOf(t, survivors[0])
		for _, id := range ids {
			ns := after[id]
			if len(ns) != 2 || slices.Contains(ns, victim.id) {
				return false
			}
			for _, nd := range ns {
				cv := coverageOf(t, byID[nd], id, 0, killAt, time.Now())
				if len(cv) == 0 || !cv[len(cv)-1].end.After(killAt.Add(2*time.Second)) {
					return false
				}
			}
		}
		return true
	})
	t.Logf("SIGKILL of %s (home of %v): declared down after %s, 2 recording copies of every stream after %s",
		victim.id, homes[victim.id], downIn, copiesIn)
	// The promoted nodes archive from their promotion on.
	for _, id := range homes[victim.id] {
		nh := byID[after[id][0]]
		if len(coverageOf(t, nh, id, understudyv1.SegmentClass_SEGMENT_CLASS_ARCHIVE, killAt, time.Now())) == 0 {
			t.Errorf("%s: new home %s has no archive since the kill", id, nh.id)
		}
	}

	// Back with the same id and data directory: it takes its place again.
	// UNDERSTUDY_E2E_DOWN (make chaos: 60s) keeps it down longer.
	down := 4 * time.Second
	if v := os.Getenv("UNDERSTUDY_E2E_DOWN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("UNDERSTUDY_E2E_DOWN: %v", err)
		}
		down = d
	}
	time.Sleep(time.Until(killAt.Add(down)))
	victim.start(t, bin)
	t.Logf("%s down for %s", victim.id, time.Since(killAt).Round(100*time.Millisecond))
	backIn := waitUntil(t, 30*time.Second, victim.id+" placed again as before", func() bool {
		p := placementOf(t, survivors[0])
		for id, ns := range place {
			if !slices.Equal(p[id], ns) {
				return false
			}
		}
		return true
	})
	t.Logf("%s restarted: the original placement is back after %s", victim.id, backIn)
	restartAt := time.Now().Add(-backIn)
	time.Sleep(8 * time.Second)
	end := time.Now().Add(-3 * time.Second)

	// Backfill: the victim's own archive of the streams it is home for is
	// whole again over the episode, its outage copied from the others.
	var lastGaps string
	whole := func() bool {
		lastGaps = ""
		for _, id := range homes[victim.id] {
			resp, err := victim.recording().GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{StreamId: id,
				Start: timestamppb.New(t0), End: timestamppb.New(end), NodeId: victim.id, Class: understudyv1.SegmentClass_SEGMENT_CLASS_ARCHIVE}))
			if err != nil {
				lastGaps = err.Error()
				return false
			}
			for _, g := range resp.Msg.Gaps {
				lastGaps += fmt.Sprintf("%s: %s..%s; ", id, g.Start.AsTime().Sub(killAt).Round(time.Millisecond), g.End.AsTime().Sub(killAt).Round(time.Millisecond))
			}
		}
		return lastGaps == ""
	}
	for deadline := time.Now().Add(60 * time.Second); !whole(); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s's own archive still has gaps (relative to the kill) 60 s after the check began: %s", victim.id, lastGaps)
		}
	}
	t.Logf("backfill: %s's own archive of %v whole over the episode %s after its restart", victim.id, homes[victim.id], time.Since(restartAt).Round(100*time.Millisecond))
	// Every segment it backfilled plays in ffprobe (checksums: fsck at the
	// end).
	backfilled, _ := filepath.Glob(filepath.Join(victim.dir, "segments", "*", "*", "*-archive-backfill-*.mp4"))
	var bfDur float64
	for _, f := range backfilled {
		d := ffprobe(t, f)
		if d <= 0 {
			t.Errorf("backfilled segment %s plays %.3f s", f, d)
		}
		bfDur += d
	}
	if len(backfilled) == 0 {
		t.Errorf("%s holds no backfilled segment after an outage of %s", victim.id, down)
	}
	t.Logf("%s backfilled %d segments (%.1f s of video), each passing ffprobe", victim.id, len(backfilled), bfDur)

	// No hole: the union of every node's own recordings covers [t0, end).
	for _, id := range ids {
		var all []span
		for _, c := range nodes {
			all = append(all, coverageOf(t, c, id, 0, t0, end)...)
		}
		if h := holes(all, t0, end); len(h) > 0 {
			var desc []string
			for _, s := range h {
				desc = append(desc, fmt.Sprintf("%s..%s (%s)", s.start.Sub(killAt).Round(time.Millisecond), s.end.Sub(killAt).Round(time.Millisecond), s.end.Sub(s.start)))
			}
			t.Errorf("%s: holes in the union of the 3 nodes' recordings (relative to the kill): %s", id, strings.Join(desc, ", "))
		}
	}
	// Any node answers for the cluster: its timeline (no node filter)
	// federates every node's recordings, with no gap of either kind.
	for _, c := range nodes {
		for _, id := range ids {
			tl := timeline(t, c.recording(), id, t0, end)
			for _, g := range tl.Gaps {
				t.Errorf("timeline of %s through %s: %s gap %s..%s after the kill", id, c.id, g.Kind,
					g.Start.AsTime().Sub(killAt).Round(time.Millisecond), g.End.AsTime().Sub(killAt).Round(time.Millisecond))
			}
			if len(tl.Coverage) == 0 || tl.Coverage[0].Start.AsTime().After(t0) || tl.Coverage[len(tl.Coverage)-1].End.AsTime().Before(end) {
				t.Errorf("timeline of %s through %s does not cover the episode: %v", id, c.id, tl.Coverage)
			}
		}
	}
	// An export through any node plays the whole episode: every frame the
	// camera sent, once, in order, with monotonic timestamps, whichever
	// node recorded it (the clip passes from one node's segments to
	// another's at a keyframe both hold), for the right duration.
	for _, c := range nodes {
		var present, sent, lost, dups int
		for i, id := range ids {
			rep := checkEpisodeExport(t, c, id, i, sendLogs, t0, end)
			present, sent, lost, dups = present+rep.Present, sent+rep.Sent, lost+rep.Lost, dups+rep.Duplicates
		}
		t.Logf("exports of the %d streams over the %s episode through %s: %d of %d frames sent present, %d lost, %d twice",
			cams, end.Sub(t0).Round(time.Second), c.id, present, sent, lost, dups)
	}
	// ListSegments without a node answers for the cluster: page by page,
	// every node's segments once.
	listAll := func(c *clusterNode, stream, node string, size uint32) []string {
		var out []string
		token := ""
		for {
			resp, err := c.recording().ListSegments(ctx, connect.NewRequest(&understudyv1.ListSegmentsRequest{StreamId: stream,
				Start: timestamppb.New(t0), End: timestamppb.New(end), NodeId: node, PageSize: size, PageToken: token}))
			if err != nil {
				t.Fatalf("ListSegments %s through %s: %v", stream, c.id, err)
			}
			for _, sg := range resp.Msg.Segments {
				out = append(out, sg.NodeId+"@"+sg.Start.AsTime().Format(time.RFC3339Nano)+"/"+sg.Class.String()+"/"+sg.Origin.String())
			}
			if token = resp.Msg.NextPageToken; token == "" {
				return out
			}
		}
	}
	for _, id := range homes[victim.id] {
		var want []string
		for _, c := range nodes {
			want = append(want, listAll(c, id, c.id, 1000)...)
		}
		slices.Sort(want)
		for _, c := range nodes {
			got := listAll(c, id, "", 5)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("ListSegments of %s through %s, in pages of 5: %d segments, want the %d of the 3 nodes:\n got %v\nwant %v", id, c.id, len(got), len(want), got, want)
			}
		}
	}
	// The catalogs are identical.
	var catalogs []string
	for _, c := range nodes {
		sc := understudyv1connect.NewStreamServiceClient(h2cClient(e2eAdmin), "http://"+c.api)
		resp, err := sc.ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		// The catalog's fields; each node's live status of a stream (last
		// frame times) is its own view.
		for _, st := range resp.Msg.Streams {
			st.Status = nil
		}
		catalogs = append(catalogs, fmt.Sprint(resp.Msg.Streams))
	}
	if catalogs[0] != catalogs[1] || catalogs[0] != catalogs[2] {
		t.Errorf("catalogs differ after the restart:\n%s", strings.Join(catalogs, "\n"))
	}
	// Make-before-break ends: nothing records a stream it is not placed for
	// beyond the handoff.
	waitUntil(t, 40*time.Second, "every node records exactly its placed streams", func() bool {
		for _, c := range nodes {
			resp, err := c.cluster().ListNodes(ctx, connect.NewRequest(&understudyv1.ListNodesRequest{}))
			if err != nil {
				return false
			}
			want := 0
			for _, ns := range place {
				if slices.Contains(ns, c.id) {
					want++
				}
			}
			for _, nd := range resp.Msg.Nodes {
				if nd.Id == c.id && int(nd.HomeStreams+nd.ReplicaStreams) != want {
					return false
				}
			}
		}
		return true
	})

	// Node settings travel through any node: draining the victim through
	// a survivor moves every copy off it, on every node, and survives in
	// its data directory; activating it through the other survivor gives
	// the original placement back.
	resp, err := survivors[0].cluster().UpdateNode(ctx, connect.NewRequest(&understudyv1.UpdateNodeRequest{
		NodeId: victim.id, State: understudyv1.NodeState_NODE_STATE_DRAINING}))
	if err != nil {
		t.Fatalf("UpdateNode through %s: %v", survivors[0].id, err)
	}
	if resp.Msg.Node.GetId() != victim.id || resp.Msg.Node.GetState() != understudyv1.NodeState_NODE_STATE_DRAINING {
		t.Errorf("UpdateNode answered %v, want %s draining", resp.Msg.Node, victim.id)
	}
	drainedIn := waitUntil(t, 20*time.Second, "no stream placed on the drained "+victim.id+" on any node", func() bool {
		for _, c := range nodes {
			p := placementOf(t, c)
			if len(p) != cams {
				return false
			}
			for _, ns := range p {
				if len(ns) != 2 || slices.Contains(ns, victim.id) {
					return false
				}
			}
		}
		return true
	})
	if b, err := os.ReadFile(filepath.Join(victim.dir, "node-settings.json")); err != nil || !strings.Contains(string(b), "draining") {
		t.Errorf("the drained node keeps no setting: %v %s", err, b)
	}
	for _, bad := range []*understudyv1.UpdateNodeRequest{
		{NodeId: victim.id, State: understudyv1.NodeState_NODE_STATE_SATURATED},
		{NodeId: "nosuch", State: understudyv1.NodeState_NODE_STATE_ACTIVE},
		{NodeId: victim.id, Capacity: 1 << 21},
		{NodeId: victim.id},
	} {
		if _, err := survivors[1].cluster().UpdateNode(ctx, connect.NewRequest(bad)); err == nil {
			t.Errorf("UpdateNode %v: no error", bad)
		}
	}
	if _, err := survivors[1].cluster().UpdateNode(ctx, connect.NewRequest(&understudyv1.UpdateNodeRequest{
		NodeId: victim.id, State: understudyv1.NodeState_NODE_STATE_ACTIVE})); err != nil {
		t.Fatalf("UpdateNode through %s: %v", survivors[1].id, err)
	}
	activeIn := waitUntil(t, 30*time.Second, victim.id+" placed again as before on every node", func() bool {
		for _, c := range nodes {
			if p := placementOf(t, c); !maps.EqualFunc(p, place, slices.Equal[[]string]) {
				return false
			}
		}
		return true
	})
	t.Logf("%s drained through %s: off every placement after %s; activated through %s: placement back after %s",
		victim.id, survivors[0].id, drainedIn, survivors[1].id, activeIn)

	// fsck on every node, stopped: index and files agree, every checksum
	// holds (backfilled segments included).
	for _, c := range nodes {
		c.proc.cmd.Process.Signal(syscall.SIGTERM)
		c.proc.cmd.Wait()
		c.proc.log.Close()
		c.proc = nil
		out, err := exec.Command(bin, "fsck", "--data-dir", c.dir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "consistent") {
			t.Errorf("fsck of %s: %v\n%s", c.id, err, out)
		}
	}
}

// checkEpisodeExport exports stream (camera cam) over [from, to) through
// node c with GET /v1/export and checks it against what the camera sent:
// no frame lost or twice, in order, monotonic timestamps, decoded by
// ffmpeg without an error, playing for the range (± one GOP).
func checkEpisodeExport(t *testing.T, c *clusterNode, stream string, cam int, sendLogs string, from, to time.Time) *check.Report {
	t.Helper()
	q := url.Values{"stream": {stream}, "start": {from.UTC().Format(time.RFC3339Nano)}, "end": {to.UTC().Format(time.RFC3339Nano)}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.api+"/v1/export?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("export %s through %s: %v", stream, c.id, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export %s through %s: %v %d %s", stream, c.id, err, resp.StatusCode, body[:min(len(body), 200)])
	}
	if p := resp.Header.Get("Understudy-Partial"); p != "" {
		t.Errorf("export %s through %s: nodes did not answer: %s", stream, c.id, p)
	}
	frames, err := check.ExtractFrames(body)
	if err != nil {
		t.Fatalf("export %s through %s: %v", stream, c.id, err)
	}
	log, err := camsim.ReadSendLogFile(camsim.SendLogPath(sendLogs, cam))
	if err != nil {
		t.Fatal(err)
	}
	// The clip starts at the keyframe at or before from: check from the
	// first whole second after it.
	rep, err := check.Check(frames, log, check.Options{Stream: stream, Camera: cam, From: from.Add(time.Second), To: to.Add(-time.Second)})
	if err != nil {
		t.Fatalf("check %s through %s: %v", stream, c.id, err)
	}
	if !rep.Pass || rep.Lost > 0 || rep.Duplicates > 0 || rep.NonMonotonic > 0 || rep.OutOfOrder > 0 {
		t.Errorf("export of %s through %s: %d of %d frames present, %d lost %v, %d duplicates, %d out of order, %d non-monotonic: %v",
			stream, c.id, rep.Present, rep.Sent, rep.Lost, rep.LostRanges, rep.Duplicates, rep.OutOfOrder, rep.NonMonotonic, rep.Problems)
	}
	path := filepath.Join(t.TempDir(), stream+".mp4")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("export of %s through %s: ffmpeg decode: %v %s", stream, c.id, err, out)
	}
	want := to.Sub(from).Seconds()
	if d := ffprobe(t, path); d < want-0.05 || d > want+1.05 {
		t.Errorf("export of %s through %s plays %.2f s, want %.2f s (+ up to one GOP before the start)", stream, c.id, d, want)
	}
	return rep
}
