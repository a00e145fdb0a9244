package placement

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

// figures are the movement figures of one configuration, summed over
// several single-node changes.
type figures struct {
	moved, opt          [5]int // per kind of change (see changeKinds)
	failedOver, toCopy  int
	maxCopies, maxHomes float64       // worst max/fair over every placement
	replace             time.Duration // median re-place after a failure
	changes             int
}

// changeKinds names the single-node changes measure makes, in order:
// a node failed (state Failed: known and down), added, drained,
// re-weighted, and removed (a failed node forgotten).
var changeKinds = [5]string{"fail", "add", "drain", "reweight", "remove"}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// measure fails, adds, drains and re-weights k nodes one at a time (each
// change undone before the next) and sums the movement against the
// optimum.
func measure(tb testing.TB, ns []Node, ss []Stream, cfg Config, k int) figures {
	pl, err := NewPlacer(ns, ss, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	base := pl.Placement()
	var f figures
	bal := base.Balance()
	f.maxCopies, f.maxHomes = bal.MaxOverFairCopies, bal.MaxOverFairHomes
	var times []time.Duration
	step := len(ns) / k
	record := func(kind int, after *Placement) {
		m := Compare(base, after)
		f.moved[kind] += m.CopiesMoved
		f.opt[kind] += m.OptimalMoves
		if kind == 0 {
			f.failedOver += m.HomesFailedOver
			f.toCopy += m.FailoverToCopy
		}
		b := after.Balance()
		f.maxCopies, f.maxHomes = max(f.maxCopies, b.MaxOverFairCopies), max(f.maxHomes, b.MaxOverFairHomes)
	}
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < k; i++ {
		victim := ns[i*step+step/2]
		// Failure of one node.
		failed := victim
		failed.State = Failed
		t0 := time.Now()
		must(pl.UpsertNode(failed))
		after := pl.Placement()
		times = append(times, time.Since(t0))
		record(0, after)
		// Removal: the failed node forgotten.
		must(pl.RemoveNode(victim.ID))
		record(4, pl.Placement())
		must(pl.UpsertNode(victim))
		// Addition of a new node in the victim's host.
		nn := Node{ID: fmt.Sprintf("new-%03d", i), Domain: victim.Domain, Weight: victim.Weight}
		must(pl.UpsertNode(nn))
		record(1, pl.Placement())
		must(pl.RemoveNode(nn.ID))
		// Drain of the victim.
		dr := victim
		dr.State = Draining
		must(pl.UpsertNode(dr))
		record(2, pl.Placement())
		// Weight change: double the victim's weight.
		rw := victim
		rw.Weight *= 2
		must(pl.UpsertNode(rw))
		record(3, pl.Placement())
		must(pl.UpsertNode(victim))
		f.changes++
	}
	slices.Sort(times)
	f.replace = times[len(times)/2]
	return f
}

type benchCase struct {
	name     string
	r        int
	weighted bool
}

var benchCases = []benchCase{
	{"R3", 3, false}, {"R2", 2, false}, {"R3-weighted", 3, true}, {"R2-weighted", 2, true},
}

// reportDispersion reports, per tier, the streams whose copies share a
// domain and those of them that could have been spread.
func reportDispersion(b *testing.B, p *Placement) {
	tiers, v := p.Dispersion()
	for _, td := range tiers {
		b.ReportMetric(float64(td.Shared), td.Tier+"_shared")
		b.ReportMetric(float64(td.Avoidable), td.Tier+"_avoidable")
	}
	b.ReportMetric(float64(v), "level_violations")
}

// BenchmarkPlace100k1k times a full placement of 100,000 streams on 1,000
// nodes (4 zones × 10 racks × 25 hosts), wall and CPU time (all cores),
// and reports its balance, dispersion and the Placer's memory.
func BenchmarkPlace100k1k(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			ns := topology(4, 10, 25, bc.weighted, 1)
			ss := streamSet(100000, bc.r, bc.weighted, 1)
			var p *Placement
			var err error
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if p, err = Place(ns, ss, Config{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu_ms/op")
			bal := p.Balance()
			b.ReportMetric(bal.MaxOverFairCopies, "max/fair_copies")
			b.ReportMetric(bal.MaxOverFairHomes, "max/fair_homes")
			reportDispersion(b, p)
			b.ReportMetric(float64(placerBytes(b, ns, ss))/(1<<20), "placer_MiB")
		})
	}
}

// placerBytes is the live heap a Placer for ns and ss holds.
func placerBytes(tb testing.TB, ns []Node, ss []Stream) uint64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	pl, err := NewPlacer(ns, ss, Config{})
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(pl)
	return m1.HeapAlloc - m0.HeapAlloc
}

// BenchmarkReplaceAfterFailure times re-placing after one node failure
// (the node marked Failed, as a cluster does) with a Placer that placed the
// previous membership, wall and CPU time.
func BenchmarkReplaceAfterFailure(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			ns := topology(4, 10, 25, bc.weighted, 1)
			ss := streamSet(100000, bc.r, bc.weighted, 1)
			pl, err := NewPlacer(ns, ss, Config{})
			if err != nil {
				b.Fatal(err)
			}
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				victim := ns[(i*7919)%len(ns)]
				failed := victim
				failed.State = Failed
				c0 := cpuTime()
				if err := pl.UpsertNode(failed); err != nil {
					b.Fatal(err)
				}
				pl.Placement()
				cpu += cpuTime() - c0
				b.StopTimer()
				if err := pl.UpsertNode(victim); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu_ms/op")
		})
	}
}

// BenchmarkMovement reports the movement of single-node failures,
// additions, drains and weight changes (20 of each) against the optimum,
// the worst max/fair load over them, how often a failed home's stream went
// to a node already recording it, and the movement with the cap off.
func BenchmarkMovement(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			ns := topology(4, 10, 25, bc.weighted, 1)
			ss := streamSet(100000, bc.r, bc.weighted, 1)
			for i := 0; i < b.N; i++ {
				f := measure(b, ns, ss, Config{}, 20)
				u := measure(b, ns, ss, Config{NoLoadCap: true}, 4)
				for k, name := range changeKinds {
					b.ReportMetric(ratio(f.moved[k], f.opt[k]), "move_ratio_"+name)
				}
				b.ReportMetric(f.maxCopies, "worst_max/fair_copies")
				b.ReportMetric(f.maxHomes, "worst_max/fair_homes")
				b.ReportMetric(100*ratio(f.toCopy, f.failedOver), "new_home_held_copy_%")
				b.ReportMetric(float64(f.replace.Microseconds())/1000, "replace_median_ms")
				var um, uo int
				for k := range changeKinds {
					um, uo = um+u.moved[k], uo+u.opt[k]
				}
				b.ReportMetric(ratio(um, uo), "nocap_move_ratio")
			}
		})
	}
}

// BenchmarkMovementIDSets repeats the capped movement measurement with the
// same topology and streams under other names (every node and stream ID
// prefixed), which re-draws every hash: how much of a movement figure
// belongs to the method and how much to one draw of the IDs.
func BenchmarkMovementIDSets(b *testing.B) {
	for _, bc := range benchCases {
		for _, tag := range []string{"a", "b", "c", "d"} {
			b.Run(bc.name+"/ids="+tag, func(b *testing.B) {
				ns := topology(4, 10, 25, bc.weighted, 1)
				ss := streamSet(100000, bc.r, bc.weighted, 1)
				for i := range ns {
					ns[i].ID = tag + "-" + ns[i].ID
				}
				for i := range ss {
					ss[i].ID = tag + "-" + ss[i].ID
				}
				for i := 0; i < b.N; i++ {
					f := measure(b, ns, ss, Config{}, 20)
					for k, name := range changeKinds {
						b.ReportMetric(ratio(f.moved[k], f.opt[k]), "move_ratio_"+name)
					}
					b.ReportMetric(100*ratio(f.toCopy, f.failedOver), "new_home_held_copy_%")
				}
			})
		}
	}
}
