package cluster

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestScaleDetectionAndConvergence measures, on 3, 10 and 30 in-process
// nodes, how long the others take to declare a killed node dead, and on 3
// and 10 nodes the write → visible-everywhere latency over 20 writes. It
// runs in `make chaos` (UNDERSTUDY_SCALE=1): 30 nodes on 2 cores take a
// minute. The short suite measures 3 nodes in TestKilledNodeSeenDead.
func TestScaleDetectionAndConvergence(t *testing.T) {
	if os.Getenv("UNDERSTUDY_SCALE") == "" {
		t.Skip("set UNDERSTUDY_SCALE=1 (make chaos)")
	}
	for _, size := range []int{3, 10, 30} {
		t.Run(fmt.Sprintf("nodes=%d", size), func(t *testing.T) {
			nodes := startCluster(t, size, false, nil)
			if size <= 10 {
				var lat []time.Duration
				for i := range 20 {
					w := nodes[i%size]
					id := fmt.Sprintf("scale-%02d", i)
					start := time.Now()
					if _, err := w.cat.Create(testStream(id)); err != nil {
						t.Fatal(err)
					}
					for _, n := range nodes {
						waitFor(t, 10*time.Second, id+" visible", func() bool { return visible(n.cat, id) })
					}
					lat = append(lat, time.Since(start))
				}
				slices.Sort(lat)
				t.Logf("%d nodes: write → visible on all over 20 writes: median %s, p99 %s", size,
					lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
				if lat[len(lat)-1] > 2*time.Second {
					t.Errorf("p99 %s, want ≤ 2s", lat[len(lat)-1])
				}
			}
			victim := nodes[len(nodes)-1]
			start := time.Now()
			_ = victim.c.Shutdown()
			var mu sync.Mutex
			var seen []time.Duration
			var wg sync.WaitGroup
			for _, n := range nodes[:len(nodes)-1] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Since(start) < 60*time.Second {
						if !isAlive(n.c, victim.c.Meta().ID) {
							mu.Lock()
							seen = append(seen, time.Since(start))
							mu.Unlock()
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
				}()
			}
			wg.Wait()
			if len(seen) != len(nodes)-1 {
				t.Fatalf("%d of %d nodes declared the killed node dead within 60 s", len(seen), len(nodes)-1)
			}
			slices.Sort(seen)
			t.Logf("%d nodes: kill → dead on the first peer %s, median %s, on all %s", size,
				seen[0].Round(time.Millisecond), seen[len(seen)/2].Round(time.Millisecond), seen[len(seen)-1].Round(time.Millisecond))
		})
	}
}
