package engine

import (
	"strconv"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/internal/testkit"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/segment"
)

// TestBufferBudget is done-when 6 of the replica buffer: a replica whose
// buffer budget (1 MiB, about 8 s of this camera) is far smaller than its
// window (6 h) evicts early, says so once (an event, the metrics), holds
// no more than the budget and a trim interval's growth, and its live
// recording goes on with no frame dropped and no hole; the home's archive
// keeps everything.
func TestBufferBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("a 2-node cluster recording for about 20 s")
	}
	old := bufferInterval
	bufferInterval = 500 * time.Millisecond
	t.Cleanup(func() { bufferInterval = old })
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25, Bitrate: 1_000_000})
	nodes, _ := runCluster(t, 2, func(_ int, cfg *Config) { cfg.BufferBudgetMiB = 1 })
	subs := []*Subscription{nodes[0].bus.Subscribe(4096), nodes[1].bus.Subscribe(4096)}
	for _, s := range subs {
		defer s.Close()
	}
	if _, err := nodes[0].catalog.Create(catalog.Stream{ID: "cam0", URL: cams.URL(0), Enabled: true, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	roles := func() (home, rep *Node) {
		for _, n := range nodes {
			switch n.Roles()["cam0"] {
			case "home":
				home = n
			case "replica":
				rep = n
			}
		}
		return home, rep
	}
	var home, rep *Node
	deadline := time.Now().Add(40 * time.Second)
	var started time.Time
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no early eviction within 40 s: replica %v, buffer %+v", rep != nil, func() any {
				if rep != nil {
					return rep.buffer.Last()
				}
				return nil
			}())
		}
		time.Sleep(200 * time.Millisecond)
		if home, rep = roles(); home == nil || rep == nil {
			continue
		}
		if started.IsZero() {
			started = time.Now()
		}
		if _, _, early := rep.buffer.Totals(); early > 0 {
			break
		}
	}
	evictedAt := time.Now()
	time.Sleep(6 * time.Second) // recording goes on while the budget bites
	budget := int64(1 << 20)
	last := rep.buffer.Last()
	// One trim interval of growth at 1 Mbit/s plus a segment: ~190 KiB.
	if last.Held > budget+256<<10 || !last.OverBudget && last.Held > budget {
		t.Errorf("replica holds %d bytes under a %d budget: %+v", last.Held, budget, last)
	}
	if last.Reach <= 0 || last.Reach > 30*time.Second {
		t.Errorf("reach %v, want the few seconds the budget holds", last.Reach)
	}
	var events int
	for len(subs[1].C) > 0 || len(subs[0].C) > 0 {
		var e Event
		select {
		case e = <-subs[0].C:
		case e = <-subs[1].C:
		}
		if e.Kind == understudyv1.EventKind_EVENT_KIND_BUFFER_EVICTED_EARLY {
			events++
			if e.Node != rep.cfg.ID || e.Details["budget_bytes"] != strconv.FormatInt(budget, 10) {
				t.Errorf("event %+v, want the replica %s with its budget", e, rep.cfg.ID)
			}
		}
	}
	if events != 1 {
		t.Errorf("%d early-eviction events in ~7 s, want 1 (at most one a minute)", events)
	}
	for _, n := range nodes {
		st, _, _ := n.sessionTotals()
		if st.Dropped != 0 || st.WriteErrors != 0 {
			t.Errorf("%s: %d frames dropped, %d write errors while the buffer evicted", n.cfg.ID, st.Dropped, st.WriteErrors)
		}
	}
	// The replica's live buffer has no hole since the eviction began, and
	// the home's archive has none since the start.
	now := time.Now()
	if gaps, _ := rep.store.Gaps("cam0", evictedAt.Add(-time.Second), now.Add(-2*time.Second)); len(gaps) != 0 {
		t.Errorf("replica buffer gaps while evicting: %v", gaps)
	}
	segs, _ := home.store.Segments("cam0", started.Add(2*time.Second), now.Add(-2*time.Second))
	var cov []segment.Interval
	for _, si := range segs {
		if si.Class == segment.ClassArchive {
			cov = append(cov, si.Interval())
		}
	}
	if holes := segment.Subtract(segment.Interval{Start: started.Add(2 * time.Second), End: now.Add(-2 * time.Second)}, segment.Merge(cov)); len(holes) != 0 {
		t.Errorf("home archive holes: %v", holes)
	}
	t.Logf("replica %s: evicted early %s after recording began; holds %d KiB (budget 1024 KiB), reaches back %s",
		rep.cfg.ID, evictedAt.Sub(started).Round(100*time.Millisecond), last.Held>>10, last.Reach.Round(100*time.Millisecond))
}
