package engine

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/engine/cluster"
)

// runCluster starts count in-process nodes n1..nN in racks r1..rN, each
// gossiping over a FaultTransport (to cut it off) and joining n1, with
// the test tokens, cleartext gossip and a 1 s segment and rejoin hold;
// tweak, if set, adjusts node i's config before it starts.
func runCluster(t testing.TB, count int, tweak func(i int, cfg *Config)) ([]*Node, []*cluster.FaultTransport) {
	t.Helper()
	var nodes []*Node
	var fts []*cluster.FaultTransport
	for i := range count {
		ft, err := cluster.NewFaultTransport("127.0.0.1", 0)
		if err != nil {
			t.Fatal(err)
		}
		fts = append(fts, ft)
		cfg := Config{ID: fmt.Sprintf("n%d", i+1), Domain: fmt.Sprintf("rack=r%d", i+1), DataDir: t.TempDir(),
			Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead, SegmentDuration: time.Second,
			GossipListen: "127.0.0.1:" + strconv.Itoa(ft.GetAutoBindPort()), GossipTransport: ft,
			InsecureGossip: true, RejoinHold: time.Second}
		if i > 0 {
			cfg.Join = nodes[0].cfg.GossipListen
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		nodes = append(nodes, runNode(t, cfg))
	}
	return nodes, fts
}
