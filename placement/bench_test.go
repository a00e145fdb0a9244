package placement

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// figures are the movement figures of one configuration, summed over
// several single-node changes.
type figures struct {
	removeMoved, removeOpt     int
	addMoved, addOpt           int
	reweightMoved, reweightOpt int
	failedOver, toCopy         int
	replace                    time.Duration // median re-place after a failure
	changes                    int
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// measure removes, adds and re-weights k nodes one at a time (each change
// undone before the next) and sums the movement against the optimum.
func measure(tb testing.TB, ns []Node, ss []Stream, cfg Config, k int) figures {
	pl, err := NewPlacer(ns, ss, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	base := pl.Placement()
	var f figures
	var times []time.Duration
	step := len(ns) / k
	for i := 0; i < k; i++ {
		victim := ns[i*step+step/2]
		// Removal (failure) of one node.
		t0 := time.Now()
		if err := pl.RemoveNode(victim.ID); err != nil {
			tb.Fatal(err)
		}
		after := pl.Placement()
		times = append(times, time.Since(t0))
		m := Compare(base, after)
		f.removeMoved += m.CopiesMoved
		f.removeOpt += m.OptimalMoves
		f.failedOver += m.HomesFailedOver
		f.toCopy += m.FailoverToCopy
		if err := pl.UpsertNode(victim); err != nil {
			tb.Fatal(err)
		}
		// Addition of a new node in the victim's host.
		nn := Node{ID: fmt.Sprintf("new-%03d", i), Domain: victim.Domain, Weight: victim.Weight}
		if err := pl.UpsertNode(nn); err != nil {
			tb.Fatal(err)
		}
		m = Compare(base, pl.Placement())
		f.addMoved += m.CopiesMoved
		f.addOpt += m.OptimalMoves
		if err := pl.RemoveNode(nn.ID); err != nil {
			tb.Fatal(err)
		}
		// Weight change: double the victim's weight.
		rw := victim
		rw.Weight *= 2
		if err := pl.UpsertNode(rw); err != nil {
			tb.Fatal(err)
		}
		m = Compare(base, pl.Placement())
		f.reweightMoved += m.CopiesMoved
		f.reweightOpt += m.OptimalMoves
		if err := pl.UpsertNode(victim); err != nil {
			tb.Fatal(err)
		}
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

// BenchmarkPlace100k1k times a full placement of 100,000 streams on 1,000
// nodes (4 zones × 10 racks × 25 hosts) and reports its balance.
func BenchmarkPlace100k1k(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			ns := topology(4, 10, 25, bc.weighted, 1)
			ss := streamSet(100000, bc.r, bc.weighted, 1)
			var p *Placement
			var err error
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if p, err = Place(ns, ss, Config{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			bal := p.Balance()
			_, v := p.Dispersion()
			b.ReportMetric(bal.MaxOverFairCopies, "max/fair_copies")
			b.ReportMetric(bal.MaxOverFairHomes, "max/fair_homes")
			b.ReportMetric(float64(v), "domain_violations")
		})
	}
}

// BenchmarkReplaceAfterFailure times re-placing after one node failure with
// a Placer that placed the previous membership.
func BenchmarkReplaceAfterFailure(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			ns := topology(4, 10, 25, bc.weighted, 1)
			ss := streamSet(100000, bc.r, bc.weighted, 1)
			pl, err := NewPlacer(ns, ss, Config{})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				victim := ns[(i*7919)%len(ns)]
				if err := pl.RemoveNode(victim.ID); err != nil {
					b.Fatal(err)
				}
				pl.Placement()
				b.StopTimer()
				if err := pl.UpsertNode(victim); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkMovement reports the movement of single-node removals, additions
// and weight changes against the optimum, with the load cap on and off, and
// how often a failed home's stream went to a node already recording it.
func BenchmarkMovement(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			ns := topology(4, 10, 25, bc.weighted, 1)
			ss := streamSet(100000, bc.r, bc.weighted, 1)
			for i := 0; i < b.N; i++ {
				f := measure(b, ns, ss, Config{}, 20)
				u := measure(b, ns, ss, Config{NoLoadCap: true}, 4)
				b.ReportMetric(ratio(f.removeMoved, f.removeOpt), "move_ratio_remove")
				b.ReportMetric(ratio(f.addMoved, f.addOpt), "move_ratio_add")
				b.ReportMetric(ratio(f.reweightMoved, f.reweightOpt), "move_ratio_reweight")
				b.ReportMetric(100*ratio(f.toCopy, f.failedOver), "new_home_held_copy_%")
				b.ReportMetric(float64(f.replace.Microseconds())/1000, "replace_median_ms")
				b.ReportMetric(ratio(u.removeMoved+u.addMoved+u.reweightMoved, u.removeOpt+u.addOpt+u.reweightOpt), "nocap_move_ratio")
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
					b.ReportMetric(ratio(f.removeMoved, f.removeOpt), "move_ratio_remove")
					b.ReportMetric(ratio(f.addMoved, f.addOpt), "move_ratio_add")
					b.ReportMetric(ratio(f.reweightMoved, f.reweightOpt), "move_ratio_reweight")
					b.ReportMetric(100*ratio(f.toCopy, f.failedOver), "new_home_held_copy_%")
				}
			})
		}
	}
}
