package placement

import (
	"testing"
	"time"
)

func TestQuickFigures(t *testing.T) {
	for _, weighted := range []bool{false, true} {
		for _, r := range []int{3, 2} {
			ns := topology(4, 10, 25, weighted, 1)
			ss := streamSet(100000, r, weighted, 1)
			for _, nocap := range []bool{false, true} {
				cfg := Config{NoLoadCap: nocap}
				t0 := time.Now()
				pl, err := NewPlacer(ns, ss, cfg)
				if err != nil {
					t.Fatal(err)
				}
				before := pl.Placement()
				el := time.Since(t0)
				b := before.Balance()
				_, v := before.Dispersion()
				t.Logf("w=%v R=%d nocap=%v place=%v maxC=%.3f maxH=%.3f viol=%d", weighted, r, nocap, el, b.MaxOverFairCopies, b.MaxOverFairHomes, v)
				// removal
				t0 = time.Now()
				if err := pl.RemoveNode("node-0123"); err != nil {
					t.Fatal(err)
				}
				after := pl.Placement()
				el = time.Since(t0)
				m := Compare(before, after)
				t.Logf("  remove: %v moved=%d opt=%d ratio=%.3f failover=%d toCopy=%d (%.2f%%) newHomeNoCopy=%d", el, m.CopiesMoved, m.OptimalMoves, m.MoveRatio(), m.HomesFailedOver, m.FailoverToCopy, 100*float64(m.FailoverToCopy)/float64(m.HomesFailedOver), m.NewHomeWithoutCopy)
				n := ns[123]
				t0 = time.Now()
				pl.UpsertNode(n)
				back := pl.Placement()
				el = time.Since(t0)
				m = Compare(after, back)
				t.Logf("  add: %v moved=%d opt=%d ratio=%.3f", el, m.CopiesMoved, m.OptimalMoves, m.MoveRatio())
				n.Weight *= 2
				pl.UpsertNode(n)
				rw := pl.Placement()
				m = Compare(back, rw)
				t.Logf("  reweight: moved=%d opt=%d ratio=%.3f", m.CopiesMoved, m.OptimalMoves, m.MoveRatio())
			}
		}
	}
}
