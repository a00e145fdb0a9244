package engine

import (
	"context"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/engine/catalog"
)

// TestBackfillWaitsForADownHolder: a hole in a home's archive that only a
// node now down holds (it is restarting, frozen or cut off) is not
// declared final: the list of what the holders have is incomplete while a
// holder of the range is away, so backfill keeps the hole pending and
// fills it when the node is back. Once the node is forgotten (gone for
// good), its share is no longer waited for.
func TestBackfillWaitsForADownHolder(t *testing.T) {
	nodes, _ := runCluster(t, 1, nil)
	n := nodes[0]
	if _, err := n.catalog.Create(catalog.Stream{ID: "cam", URL: "rtsp://127.0.0.1:1/x", Enabled: true, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	// n9 was a member (it registered), recorded cam, and is down now.
	if _, err := n.catalog.RegisterNode(catalog.NodeRecord{ID: "n9", Domain: "rack=r9", Weight: 1, State: "active"}); err != nil {
		t.Fatal(err)
	}
	held := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	if _, err := n.catalog.SetHolding(catalog.Holding{Stream: "cam", Node: "n9", Since: held, Until: held.Add(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, complete := n.backfillRemote(ctx, "cam", held.Add(time.Minute), held.Add(2*time.Minute)); complete {
		t.Errorf("n9, down, held the range: the holders' list is complete, so the hole could be declared final")
	}
	if _, complete := n.backfillRemote(ctx, "cam", held.Add(6*time.Minute), held.Add(7*time.Minute)); !complete {
		t.Errorf("nobody down held the range after n9's holding ended: the list is incomplete")
	}
	if err := n.ForgetNode("n9"); err != nil {
		t.Fatal(err)
	}
	if _, complete := n.backfillRemote(ctx, "cam", held.Add(time.Minute), held.Add(2*time.Minute)); !complete {
		t.Errorf("n9 is forgotten: its share is still waited for")
	}
}
