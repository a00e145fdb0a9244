package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/internal/testkit"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// TestPartitionKeepsRecording is done-when 4 of the cluster: a node cut
// off from the others' gossip (a fault-injecting transport) keeps
// recording every stream it now places on itself, the others re-place its
// copies among themselves, and after the healing the three agree on the
// original placement again within 30 s.
func TestPartitionKeepsRecording(t *testing.T) {
	if testing.Short() {
		t.Skip("a partition and its healing: about 30 s")
	}
	const streams = 3
	cams := testkit.StartCameras(t, camsim.Config{Cameras: streams, GOP: 25, Bitrate: 300_000})
	nodes, fts := runCluster(t, 3, func(_ int, cfg *Config) { cfg.SegmentDuration, cfg.RejoinHold = 2*time.Second, 2*time.Second })
	for i := range streams {
		if _, err := nodes[0].catalog.Create(catalog.Stream{ID: fmt.Sprintf("cam%d", i), URL: cams.URL(i), Enabled: true, Replicas: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// A camera nobody can reach: the leader's audit reports it recorded
	// nowhere, once, after the grace period.
	subs := make([]*Subscription, len(nodes))
	for i, n := range nodes {
		subs[i] = n.bus.Subscribe(4096)
		defer subs[i].Close()
	}
	if _, err := nodes[1].catalog.Create(catalog.Stream{ID: "dead", URL: "rtsp://127.0.0.1:1/x", Enabled: true, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	createdDead := time.Now()
	wait := func(timeout time.Duration, what string, cond func() bool) time.Duration {
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
	agree := func(ns []*Node, check func(map[string][]string) bool) bool {
		p0 := ns[0].Placement()
		for _, n := range ns[1:] {
			if !maps.EqualFunc(p0, n.Placement(), slices.Equal[[]string]) {
				return false
			}
		}
		delete(p0, "dead")
		return len(p0) == streams && check(p0)
	}
	// recording: every stream n places on itself has media from since.
	recording := func(n *Node, since time.Time) bool {
		for id, ns := range n.Placement() {
			if !slices.Contains(ns, n.cfg.ID) || id == "dead" {
				continue
			}
			cov, err := n.store.Coverage(id, since, time.Now())
			if err != nil || len(cov) == 0 {
				return false
			}
		}
		return true
	}
	var before map[string][]string
	wait(30*time.Second, "3 nodes agreeing on 2 copies of every stream, all recording", func() bool {
		ok := agree(nodes, func(p map[string][]string) bool {
			for _, ns := range p {
				if len(ns) != 2 {
					return false
				}
			}
			return true
		})
		for _, n := range nodes {
			ok = ok && recording(n, time.Now().Add(-3*time.Second))
		}
		before = nodes[0].Placement()
		delete(before, "dead")
		return ok
	})

	var leader *Node
	wait(40*time.Second, "the leader's audit reporting the unreachable camera", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.audit.leader.Load() {
				if leader != nil {
					t.Fatalf("two leaders: %s and %s", leader.cfg.ID, n.cfg.ID)
				}
				leader = n
			}
		}
		return leader != nil && leader.audit.nowhere.Load() == 1 && leader.audit.under.Load() == 0
	})
	for i, sub := range subs {
		var got []string
		for len(sub.C) > 0 {
			if e := <-sub.C; e.Kind == understudyv1.EventKind_EVENT_KIND_REPLICATION_CHANGED {
				got = append(got, e.Stream+": "+e.Details["state"])
			}
		}
		if want := []string{"dead: recorded nowhere"}; nodes[i] == leader && !slices.Equal(got, want) || nodes[i] != leader && len(got) > 0 {
			t.Errorf("REPLICATION_CHANGED events on %s (leader %s): %v", nodes[i].cfg.ID, leader.cfg.ID, got)
		}
	}
	t.Logf("audit: leader %s reported the unreachable camera recorded nowhere %s after it was added (grace %s)",
		leader.cfg.ID, time.Since(createdDead).Round(100*time.Millisecond), auditGrace)

	cutAt := time.Now()
	fts[2].Cut()
	// n1 lists n3 as suspect before it declares it down.
	nc := understudyv1connect.NewClusterServiceClient(client(testRead), "http://"+nodes[0].Addr())
	var n3State understudyv1.NodeState
	wait(15*time.Second, "n1 listing n3 as suspect or down", func() bool {
		resp, err := nc.ListNodes(context.Background(), connect.NewRequest(&understudyv1.ListNodesRequest{}))
		if err != nil {
			return false
		}
		for _, nd := range resp.Msg.Nodes {
			if nd.Id == "n3" {
				n3State = nd.State
			}
		}
		return n3State == understudyv1.NodeState_NODE_STATE_SUSPECT || n3State == understudyv1.NodeState_NODE_STATE_DOWN
	})
	if n3State != understudyv1.NodeState_NODE_STATE_SUSPECT {
		t.Errorf("n1 listed n3 as %v before suspect", n3State)
	}
	alone := wait(20*time.Second, "n3 places every stream on itself and records them all", func() bool {
		p := nodes[2].Placement()
		for i := range streams {
			if ns := p[fmt.Sprintf("cam%d", i)]; len(ns) != 1 || ns[0] != "n3" {
				return false
			}
		}
		return recording(nodes[2], cutAt.Add(time.Second))
	})
	wait(20*time.Second, "n1 and n2 place every stream on the two of them", func() bool {
		return agree(nodes[:2], func(p map[string][]string) bool {
			for _, ns := range p {
				if len(ns) != 2 || slices.Contains(ns, "n3") {
					return false
				}
			}
			return true
		}) && recording(nodes[0], cutAt.Add(time.Second)) && recording(nodes[1], cutAt.Add(time.Second))
	})
	// n3 goes on recording through the partition.
	time.Sleep(3 * time.Second)
	for i := range streams {
		id := fmt.Sprintf("cam%d", i)
		cov, err := nodes[2].store.Coverage(id, cutAt, time.Now())
		if err != nil || len(cov) == 0 || time.Since(cov[len(cov)-1].End) > 4*time.Second {
			t.Errorf("n3 cut off: %s coverage %v (%v), want it recording now", id, cov, err)
		}
	}

	fts[2].Heal()
	healed := wait(30*time.Second, "the original placement on all 3 nodes after the healing", func() bool {
		return agree(nodes, func(p map[string][]string) bool { return maps.EqualFunc(p, before, slices.Equal[[]string]) })
	})
	t.Logf("n3 cut off: alone it placed and recorded all %d streams %s after the cut; healed, the 3 nodes agreed on the original placement %s after (rejoin hold 2 s)",
		streams, alone.Round(100*time.Millisecond), healed.Round(100*time.Millisecond))
}
