package cluster

import (
	"testing"
	"time"
)

// TestFaultTransportCutExcept: while cut off except some hosts, traffic
// with peers on those hosts (any port: a peer's streams come from
// ephemeral ones) passes and all other is dropped; Heal ends it, and a
// later plain Cut drops the allowed hosts too.
func TestFaultTransportCutExcept(t *testing.T) {
	tr, err := NewFaultTransport("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	if tr.blocked("127.0.0.5:7946") {
		t.Error("blocked before any cut")
	}
	tr.CutExcept("127.0.0.5")
	for addr, want := range map[string]bool{"127.0.0.5:7946": false, "127.0.0.5:40123": false, "127.0.0.6:7946": true, "bad": true} {
		if got := tr.blocked(addr); got != want {
			t.Errorf("cut except 127.0.0.5: blocked(%q) = %v, want %v", addr, got, want)
		}
	}
	if _, err := tr.DialTimeout("127.0.0.6:7946", 0); err == nil {
		t.Error("dial to a cut-off host succeeded")
	}
	tr.Heal()
	if tr.blocked("127.0.0.6:7946") {
		t.Error("blocked after the heal")
	}
	tr.Cut()
	if !tr.blocked("127.0.0.5:7946") {
		t.Error("a plain cut keeps the hosts of the last CutExcept")
	}
}

func TestParseImpairment(t *testing.T) {
	im, err := ParseImpairment("delay=200ms out=1 in=0.25")
	if err != nil || im != (Impairment{OutLoss: 1, InLoss: 0.25, Delay: 200 * time.Millisecond}) {
		t.Fatalf("ParseImpairment = %+v, %v", im, err)
	}
	if im, err := ParseImpairment(" \n"); err != nil || im != (Impairment{}) {
		t.Fatalf("empty: %+v, %v", im, err)
	}
	for _, bad := range []string{"out=2", "in=-0.1", "out=x", "delay=-1s", "delay=2m", "loss=0.5", "out"} {
		if _, err := ParseImpairment(bad); err == nil {
			t.Errorf("ParseImpairment(%q) accepted", bad)
		}
	}
}

// TestOneWayLossIsDeathThenHeals: a node whose every outgoing packet and
// dial is lost still hears its peers, but they declare it dead; when its
// traffic passes again it is alive on both sides, and the catalog writes
// made meanwhile on either side reach the other (broadcasts go to live
// peers only: the join on its revival carries n1's write to n3).
func TestOneWayLossIsDeathThenHeals(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, true, nil)
	a, c := nodes[0], nodes[2]
	c.ft.Impair(Impairment{OutLoss: 1})
	for _, n := range nodes[:2] {
		waitFor(t, 15*time.Second, "n3 seen dead by its peers", func() bool { return !isAlive(n.c, "n3") })
	}
	if _, err := a.cat.Create(testStream("from-n1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cat.Create(testStream("from-n3")); err != nil {
		t.Fatal(err)
	}
	// Nothing of n3's gets out.
	time.Sleep(2 * time.Second)
	if visible(a.cat, "from-n3") {
		t.Fatal("a write of n3 got out while all its traffic out is lost")
	}
	c.ft.Impair(Impairment{})
	for _, n := range nodes {
		waitFor(t, 30*time.Second, "every node alive after the loss ends", func() bool { return aliveCount(n.c) == 3 })
	}
	waitFor(t, 30*time.Second, "n3's write reaches n1", func() bool { return visible(a.cat, "from-n3") })
	waitFor(t, 30*time.Second, "n1's write reaches n3", func() bool { return visible(c.cat, "from-n1") })
}

// TestDelayedGossipNoFailure: 100 ms of delay on every packet and dial of
// one node, well under the probe timeout's headroom with its indirect
// probes, declares nobody dead, and writes still travel.
func TestDelayedGossipNoFailure(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, true, nil)
	nodes[2].ft.Impair(Impairment{Delay: 100 * time.Millisecond})
	if _, err := nodes[2].cat.Create(testStream("slow")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		waitFor(t, 10*time.Second, "the delayed node's write seen", func() bool { return visible(n.cat, "slow") })
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if got := aliveCount(n.c); got != 3 {
				t.Fatalf("%s sees %d of 3 alive under 100 ms of delay", n.c.cfg.Meta.ID, got)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
