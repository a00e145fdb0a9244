package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestStatusGossiped(t *testing.T) {
	nodes := startCluster(t, 3, false, nil)
	st := Status{Digest: 42, Missing: []string{"cam-b", "cam-a"}, Home: 3, Replica: 5, CPUPercent: 12.5, DiskUsed: 1 << 30, DiskFree: 7 << 30, Time: time.Now().UTC().Truncate(time.Millisecond)}
	start := time.Now()
	nodes[0].c.SetStatus(st)
	for _, n := range nodes[1:] {
		waitFor(t, 5*time.Second, "status seen", func() bool {
			got, ok := n.c.Statuses()["n1"]
			return ok && got.Digest == 42
		})
		got := n.c.Statuses()["n1"]
		if !slices.Equal(got.Missing, []string{"cam-a", "cam-b"}) || got.Home != 3 || got.Replica != 5 || got.CPUPercent != 12.5 ||
			got.DiskUsed != 1<<30 || got.DiskFree != 7<<30 || !got.Time.Equal(st.Time) || got.Truncated {
			t.Errorf("%s sees %+v, sent %+v", n.c.Meta().ID, got, st)
		}
	}
	t.Logf("status visible on both peers after %s", time.Since(start))

	// A change replaces it everywhere; an unchanged one is not resent.
	st.Missing = nil
	nodes[0].c.SetStatus(st)
	for _, n := range nodes[1:] {
		waitFor(t, 5*time.Second, "status change seen", func() bool {
			got := n.c.Statuses()["n1"]
			return len(got.Missing) == 0
		})
	}
	seq := nodes[0].c.Statuses()["n1"].Seq
	nodes[0].c.SetStatus(st)
	if got := nodes[0].c.Statuses()["n1"].Seq; got != seq {
		t.Errorf("an unchanged status got a new seq")
	}

	// A dead node's status is forgotten.
	_ = nodes[2].c.Shutdown()
	nodes[2].c.SetStatus(Status{Digest: 1})
	waitFor(t, 15*time.Second, "n3 gone", func() bool { return !isAlive(nodes[0].c, "n3") })
	if _, ok := nodes[0].c.Statuses()["n3"]; ok {
		t.Errorf("status of a dead node still listed")
	}
}

func TestStatusRoundTripAndSize(t *testing.T) {
	st := Status{Seq: 1 << 40, Digest: 1<<64 - 1, Missing: []string{"a", "b"}, Home: 1<<32 - 1, CPUPercent: 100, DiskFree: 1 << 50, Time: time.Unix(1e9, 5).UTC()}
	node, got, err := DecodeStatus(EncodeStatus("n1", st))
	if err != nil || node != "n1" || got.Seq != st.Seq || got.Digest != st.Digest || !slices.Equal(got.Missing, st.Missing) ||
		got.Home != st.Home || got.DiskFree != st.DiskFree || !got.Time.Equal(st.Time) {
		t.Fatalf("round trip: %q %+v %v", node, got, err)
	}
	// What is wrong grows the message, up to a bound; the rest is flagged.
	var many []string
	for i := range 10000 {
		many = append(many, fmt.Sprintf("camera-%05d", i))
	}
	b := EncodeStatus("n1", Status{Missing: many})
	if len(b) > MaxStatusSize {
		t.Fatalf("status of 10000 missing streams is %d bytes, bound %d", len(b), MaxStatusSize)
	}
	_, got, err = DecodeStatus(b)
	if err != nil || !got.Truncated || len(got.Missing) < 50 || !slices.Equal(got.Missing, many[:len(got.Missing)]) {
		t.Fatalf("truncated status: %d listed, truncated %v, %v", len(got.Missing), got.Truncated, err)
	}
	// Streams recorded fine cost nothing: the size does not depend on them.
	if a, b := len(EncodeStatus("n1", Status{Home: 5})), len(EncodeStatus("n1", Status{Home: 5000, Replica: 9000})); b-a > 4 {
		t.Errorf("status of 14000 healthy streams is %d bytes, of 5 %d", b, a)
	}
	for _, bad := range [][]byte{nil, {msgStatus}, {msgStatus, 9}, b[:len(b)-1], append(b, 0)} {
		if _, _, err := DecodeStatus(bad); err == nil {
			t.Errorf("DecodeStatus(%x...) accepted", bad[:min(len(bad), 8)])
		}
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey, []byte("fedcba9876543210fedcba9876543210")
	nodes := startCluster(t, 2, false, nil)
	steps := [][][]byte{{oldKey, newKey}, {newKey, oldKey}, {newKey}}
	for i, keys := range steps {
		for _, n := range nodes {
			if err := n.c.SetKeys(keys); err != nil {
				t.Fatalf("step %d: %v", i+1, err)
			}
		}
		id := fmt.Sprintf("after-step-%d", i+1)
		if _, err := nodes[0].cat.Create(testStream(id)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, id+" replicated", func() bool { return visible(nodes[1].cat, id) })
		if aliveCount(nodes[0].c) != 2 || aliveCount(nodes[1].c) != 2 {
			t.Fatalf("step %d: a node dropped out during rotation", i+1)
		}
	}
	// Only the new key gets in now.
	old := startNode(t, "n8", opts{join: []string{nodes[0].c.GossipAddr()}, keys: [][]byte{oldKey}})
	fresh := startNode(t, "n9", opts{join: []string{nodes[0].c.GossipAddr()}, keys: [][]byte{newKey}})
	waitFor(t, 10*time.Second, "node with the new key joins", func() bool { return isAlive(nodes[0].c, "n9") && aliveCount(fresh.c) == 3 })
	if slices.ContainsFunc(nodes[0].c.Members(), func(m Member) bool { return m.ID == "n8" }) || aliveCount(old.c) != 1 {
		t.Errorf("a node with the retired key joined")
	}
	if err := nodes[0].c.SetKeys(nil); err == nil {
		t.Errorf("SetKeys(nil) accepted")
	}
	if err := nodes[0].c.SetKeys([][]byte{[]byte("short")}); err == nil {
		t.Errorf("a 5-byte key accepted")
	}
}
