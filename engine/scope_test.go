package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/understudy-nvr/understudy/engine/cluster"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// TestStreamScopeAndWeight: a stream's weight and scope, set through the
// API, travel in the catalog to every node and steer placement there: on
// two nodes in zones a and b, a stream scoped to zone=a, strict, has its
// one copy on the zone-a node; preferred, its home there and its replica
// outside (the home may be either, as the home cap decides); a bad scope
// or weight is refused.
func TestStreamScopeAndWeight(t *testing.T) {
	if testing.Short() {
		t.Skip("a 2-node cluster")
	}
	var nodes []*Node
	for i, zone := range []string{"a", "b"} {
		ft, err := cluster.NewFaultTransport("127.0.0.1", 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{ID: fmt.Sprintf("n%d", i+1), Domain: "zone=" + zone + "/host=h" + strconv.Itoa(i+1), DataDir: t.TempDir(),
			Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead, PlacementLevel: "host",
			GossipListen: "127.0.0.1:" + strconv.Itoa(ft.GetAutoBindPort()), GossipTransport: ft,
			InsecureGossip: true, RejoinHold: time.Second}
		if i > 0 {
			cfg.Join = nodes[0].cfg.GossipListen
		}
		nodes = append(nodes, runNode(t, cfg))
	}
	ctx := context.Background()
	sc := understudyv1connect.NewStreamServiceClient(client(testAdmin), "http://"+nodes[1].Addr())
	create := func(id, scope string, strict bool, weight uint32) error {
		_, err := sc.CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{Stream: &understudyv1.Stream{
			Id: id, Url: "rtsp://127.0.0.1:1/" + id, Replicas: 2, Enabled: true, Scope: scope, StrictScope: strict, Weight: weight}}))
		return err
	}
	for _, c := range []struct {
		id, scope string
		strict    bool
		weight    uint32
	}{{"strict", "zone=a", true, 4}, {"preferred", "zone=a", false, 0}, {"anywhere", "", false, 2}} {
		if err := create(c.id, c.scope, c.strict, c.weight); err != nil {
			t.Fatalf("create %s: %v", c.id, err)
		}
	}
	for _, bad := range []struct {
		scope  string
		strict bool
		weight uint32
	}{{"zone", false, 0}, {"zone=a/zone=b/x=", false, 0}, {"", true, 0}, {"", false, 1<<24 + 1}} {
		if err := create("bad", bad.scope, bad.strict, bad.weight); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("scope %q strict %v weight %d: %v, want INVALID_ARGUMENT", bad.scope, bad.strict, bad.weight, err)
		}
	}
	got, err := sc.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: "strict"}))
	if err != nil || got.Msg.Stream.GetWeight() != 4 || got.Msg.Stream.GetScope() != "zone=a" || !got.Msg.Stream.GetStrictScope() {
		t.Fatalf("GetStream: %v %v", got, err)
	}
	want := map[string][]string{"strict": {"n1"}, "preferred": {"n1", "n2"}} // copies, sorted
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			p := n.Placement()
			for id, ns := range want {
				ok = ok && slices.Equal(slices.Sorted(slices.Values(p[id])), ns)
			}
			ok = ok && len(p["anywhere"]) == 2
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("placements %v / %v, want %v (and anywhere on both)", nodes[0].Placement(), nodes[1].Placement(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The weight reaches placement: the catalog entry on the other node.
	if s, err := nodes[0].catalog.Get("strict"); err != nil || s.LoadWeight() != 4 {
		t.Errorf("n1's catalog: %+v %v, want weight 4", s, err)
	}
	// Unscoped by an update: both nodes record it.
	if _, err := sc.UpdateStream(ctx, connect.NewRequest(&understudyv1.UpdateStreamRequest{
		Stream: &understudyv1.Stream{Id: "strict"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"scope", "strict_scope"}}})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the unscoped stream on both nodes", func() bool {
		return len(nodes[0].Placement()["strict"]) == 2 && len(nodes[1].Placement()["strict"]) == 2
	})
}
