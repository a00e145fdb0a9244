package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/internal/testkit"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
	"github.com/understudy-nvr/understudy/segment"
)

// livePeers counts the other live members with an API address: those a
// federated read may ask.
func livePeers(n *Node) int {
	k := 0
	for _, m := range n.cl.Members() {
		if m.ID != n.cfg.ID && m.Alive && m.APIAddress != "" {
			k++
		}
	}
	return k
}

// TestReadsAskOnlyHolders: with 3 nodes and a stream at R=1, a federated
// read asks only the node that recorded the stream over the range read
// (the placement history), not every member. When the home is drained
// and the stream moves, a read of the time before the move asks the old
// home, one of the time after it only the new one, and the timeline
// through the third node shows both nodes' recordings with no SYSTEM gap.
func TestReadsAskOnlyHolders(t *testing.T) {
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25})
	nodes, _ := runCluster(t, 3, nil)
	byID := func(id string) *Node {
		for _, n := range nodes {
			if n.cfg.ID == id {
				return n
			}
		}
		t.Fatalf("no node %q", id)
		return nil
	}
	wait := func(timeout time.Duration, what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
		}
	}
	wait(20*time.Second, "3 members everywhere", func() bool {
		for _, n := range nodes {
			if livePeers(n) != 2 {
				return false
			}
		}
		return true
	})
	t0 := time.Now()
	if _, err := nodes[0].catalog.Create(catalog.Stream{ID: "cam", URL: cams.URL(0), Enabled: true, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	holders := func(n *Node, start, end time.Time) []string {
		ids := n.api.ReadPeers("cam", start, end)
		slices.Sort(ids)
		return ids
	}
	// The stream may start on one node and move while the members settle:
	// wait until one node records it, the others' holdings (if any) are
	// closed, and every node knows the same holdings.
	var home *Node
	wait(30*time.Second, "the stream recorded on its home, the holdings the same everywhere", func() bool {
		p := nodes[0].Placement()["cam"]
		if len(p) != 1 {
			return false
		}
		home = byID(p[0])
		if cov, _ := home.store.Coverage("cam", time.Time{}, time.Time{}); len(cov) == 0 {
			return false
		}
		hs := nodes[0].catalog.Holdings("cam")
		for _, h := range hs {
			if h.Until.IsZero() != (h.Node == home.cfg.ID) {
				return false
			}
		}
		for _, n := range nodes[1:] {
			if !slices.Equal(n.catalog.Holdings("cam"), hs) {
				return false
			}
		}
		return len(hs) > 0
	})
	t1 := time.Now().Add(time.Second) // after every other holding closed
	time.Sleep(2 * time.Second)
	for _, n := range nodes {
		want := []string{home.cfg.ID}
		if n == home {
			want = nil
		}
		if got := holders(n, t1, time.Now()); !slices.Equal(got, want) {
			t.Errorf("%s asks %v for the stream, want %v", n.cfg.ID, got, want)
		}
	}

	// Drain the home: the stream moves.
	cc := understudyv1connect.NewClusterServiceClient(client(testAdmin), "http://"+home.Addr())
	if _, err := cc.UpdateNode(context.Background(), connect.NewRequest(&understudyv1.UpdateNodeRequest{
		NodeId: home.cfg.ID, State: understudyv1.NodeState_NODE_STATE_DRAINING})); err != nil {
		t.Fatal(err)
	}
	var next, third *Node
	var until time.Time
	wait(30*time.Second, "the stream moved, the old home's holding closed everywhere", func() bool {
		p := home.Placement()["cam"]
		if len(p) != 1 || p[0] == home.cfg.ID {
			return false
		}
		next = byID(p[0])
		if home.Roles()["cam"] != "" {
			return false
		}
		for _, n := range nodes {
			for _, h := range n.catalog.Holdings("cam") {
				if h.Node == home.cfg.ID && h.Until.IsZero() {
					return false
				}
				if h.Node == home.cfg.ID {
					until = h.Until
				}
			}
		}
		return true
	})
	for _, n := range nodes {
		if n != home && n != next {
			third = n
		}
	}
	wait(20*time.Second, "the new home recording for 2 s after the old one stopped", func() bool {
		cov, _ := next.store.Coverage("cam", until, time.Time{})
		return len(cov) > 0 && cov[len(cov)-1].End.Sub(until) > 2*time.Second
	})
	if got, want := holders(third, t1, until.Add(-time.Second)), sortedIDs(home, next); !slices.Equal(got, want) {
		t.Errorf("a read of the time before the move asks %v, want %v", got, want)
	}
	if got, want := holders(third, until.Add(time.Second), time.Now()), []string{next.cfg.ID}; !slices.Equal(got, want) {
		t.Errorf("a read of the time after the move asks %v, want %v (not the old home)", got, want)
	}
	rc := understudyv1connect.NewRecordingServiceClient(client(testRead), "http://"+third.Addr())
	tl, err := rc.GetTimeline(context.Background(), connect.NewRequest(&understudyv1.GetTimelineRequest{StreamId: "cam",
		Start: timestamppb.New(t0), End: timestamppb.New(time.Now())}))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range tl.Msg.Coverage {
		for _, id := range c.NodeIds {
			seen[id] = true
		}
	}
	if !seen[home.cfg.ID] || !seen[next.cfg.ID] {
		t.Errorf("the timeline through %s shows recordings of %v, want %s and %s", third.cfg.ID, seen, home.cfg.ID, next.cfg.ID)
	}
	for _, g := range tl.Msg.Gaps {
		if g.Kind == understudyv1.GapKind_GAP_KIND_SYSTEM && g.Start.AsTime().After(t0.Add(5*time.Second)) {
			t.Errorf("a SYSTEM gap across the move: %v – %v", g.Start.AsTime(), g.End.AsTime())
		}
	}
}

func sortedIDs(ns ...*Node) []string {
	var ids []string
	for _, n := range ns {
		ids = append(ids, n.cfg.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestHoldingsFollowTheStore: a node's holding of a stream it stopped
// recording ends when it stopped; a stream it holds segments of but has no
// holding for (recorded before holdings existed) gets one spanning them;
// once it holds nothing of the stream, the holding is dropped.
func TestHoldingsFollowTheStore(t *testing.T) {
	old := holdScanEvery
	holdScanEvery = 200 * time.Millisecond
	t.Cleanup(func() { holdScanEvery = old })
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25})
	n := runNode(t, Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin, SegmentDuration: time.Second})
	if _, err := n.catalog.Create(catalog.Stream{ID: "cam", URL: cams.URL(0), Enabled: true}); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				ext, _, _ := n.store.Extent("cam")
				t.Fatalf("timed out waiting for %s; holdings %v, stored %v, roles %v", what, n.catalog.Holdings("cam"), ext, n.Roles())
			}
		}
	}
	wait("2 s recorded under an open holding", func() bool {
		ext, ok, _ := n.store.Extent("cam")
		hs := n.catalog.Holdings("cam")
		return ok && ext.Duration() > 2*time.Second && len(hs) == 1 && hs[0].Until.IsZero() && !hs[0].Since.After(ext.Start)
	})
	if _, err := n.catalog.Update("cam", func(s *catalog.Stream) error { s.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	wait("the holding closed after the last segment", func() bool {
		ext, _, _ := n.store.Extent("cam")
		hs := n.catalog.Holdings("cam")
		return n.Roles()["cam"] == "" && len(hs) == 1 && !hs[0].Until.IsZero() && !hs[0].Until.Before(ext.End)
	})
	// As if recorded by a version without holdings.
	if err := n.catalog.DropHolding("cam", "n1"); err != nil {
		t.Fatal(err)
	}
	ext, _, _ := n.store.Extent("cam")
	wait("a holding spanning the stored segments", func() bool {
		hs := n.catalog.Holdings("cam")
		return len(hs) == 1 && hs[0].Since.Equal(ext.Start.Truncate(time.Millisecond)) && !hs[0].Until.Before(ext.End.Truncate(time.Millisecond))
	})
	if _, err := n.store.DeleteBefore("cam", segment.ClassArchive, time.Now()); err != nil {
		t.Fatal(err)
	}
	wait("the holding dropped with the last segment", func() bool { return len(n.catalog.Holdings("cam")) == 0 })
}
