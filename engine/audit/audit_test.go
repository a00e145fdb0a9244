package audit

import (
	"fmt"
	"testing"
	"time"
)

func TestLeaderIsOneNode(t *testing.T) {
	ids := []string{"n1", "n2", "n3", "n4", "n5"}
	l := Leader(ids)
	if l == "" || Leader([]string{"n5", "n4", "n3", "n2", "n1"}) != l {
		t.Fatalf("leader %q depends on the order", l)
	}
	// The leader's death moves the job; another node's does not.
	var rest []string
	for _, id := range ids {
		if id != l {
			rest = append(rest, id)
		}
	}
	if nl := Leader(rest); nl == l || nl == "" {
		t.Errorf("leader %s dead: new leader %q", l, nl)
	}
	for _, id := range rest {
		var others []string
		for _, x := range ids {
			if x != id {
				others = append(others, x)
			}
		}
		if Leader(others) != l {
			t.Errorf("%s died: leader moved from %s", id, l)
		}
	}
	if Leader(nil) != "" {
		t.Error("no members, a leader")
	}
}

// TestAuditGraceAndStates: a stream short of recorders is reported after
// the grace period only, once per state, and its recovery once; a short
// failover is not reported at all.
func TestAuditGraceAndStates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := New(10 * time.Second)
	recording := map[string]bool{"n1/s": true, "n2/s": true}
	in := Input{
		Streams:   []Stream{{ID: "s", Replicas: 2}},
		Placement: map[string][]string{"s": {"n1", "n2"}},
		Alive:     []string{"n1", "n2", "n3"},
		Records:   func(n, s string) bool { return recording[n+"/"+s] },
	}
	step := func(d time.Duration) []Change { return a.Step(t0.Add(d), in) }
	if ch := step(0); len(ch) != 0 {
		t.Fatalf("replicated: %v", ch)
	}
	// n2 stops for 5 s (a failover): nothing reported.
	recording["n2/s"] = false
	step(time.Second)
	step(5 * time.Second)
	recording["n2/s"] = true
	if ch := step(6 * time.Second); len(ch) != 0 {
		t.Fatalf("a 5 s dip reported: %v", ch)
	}
	// n2 stops for good: reported once after 10 s.
	recording["n2/s"] = false
	if ch := step(7 * time.Second); len(ch) != 0 {
		t.Fatalf("reported at once: %v", ch)
	}
	ch := step(17 * time.Second)
	if len(ch) != 1 || ch[0].State != UnderReplicated || fmt.Sprint(ch[0].Recorders) != "[n1]" || ch[0].Want != 2 {
		t.Fatalf("after the grace: %v", ch)
	}
	if ch := step(18 * time.Second); len(ch) != 0 {
		t.Fatalf("reported twice: %v", ch)
	}
	if _, under, _ := a.Counts(); under != 1 {
		t.Errorf("counts: %d under-replicated", under)
	}
	// n1 stops too: recorded nowhere, a new state (already past the grace).
	recording["n1/s"] = false
	if ch := step(19 * time.Second); len(ch) != 1 || ch[0].State != Nowhere {
		t.Fatalf("nowhere: %v", ch)
	}
	// Back: one recovery.
	recording["n1/s"], recording["n2/s"] = true, true
	if ch := step(20 * time.Second); len(ch) != 1 || !ch[0].Replicated {
		t.Fatalf("recovery: %v", ch)
	}
	// R larger than the cluster: min(R, live) recorders is enough.
	in.Streams[0].Replicas = 5
	if ch := step(40 * time.Second); len(ch) != 0 {
		t.Fatalf("R=5 on 3 nodes, placed on 2: %v", ch)
	}
	if ch := step(51 * time.Second); len(ch) != 1 || ch[0].Want != 3 {
		t.Fatalf("R=5 on 3 live nodes wants 3: %v", ch)
	}
}
