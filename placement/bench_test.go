package placement

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// idSets runs BenchmarkMovementIDSets, which takes some 3 minutes on 2
// CPUs and is left out of make bench.
var idSets = flag.Bool("idsets", false, "run BenchmarkMovementIDSets")

// figures are the movement figures of one configuration, summed over
// several single-node changes.
type figures struct {
	moved, opt          [5]int // per kind of change (see changeKinds)
	failedOver, toCopy  int
	maxCopies, maxHomes float64       // worst max/fair over every placement
	replace, replaceCPU time.Duration // median re-place after a failure, wall and CPU
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
	var times, cpus []time.Duration
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
		t0, c0 := time.Now(), cpuTime()
		must(pl.UpsertNode(failed))
		after := pl.Placement()
		times, cpus = append(times, time.Since(t0)), append(cpus, cpuTime()-c0)
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
	slices.Sort(cpus)
	f.replace, f.replaceCPU = times[len(times)/2], cpus[len(cpus)/2]
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

// caseFigures is everything the table shows of one configuration.
type caseFigures struct {
	figures
	nocap               float64 // movement ratio with the cap off, all kinds
	tiers               []TierDispersion
	violations          int
	placeWall, placeCPU time.Duration // median full placement
	placerMiB           float64
	// atCap counts the active nodes whose copy load is at their copy cap
	// (no stream of weight 1 fits) and overCap those whose load with the
	// cap off exceeds it: the nodes a membership change moves extra
	// copies through (see doc.go).
	atCap, overCap int
}

// capCounts counts the active nodes at their copy cap in p and those whose
// cap-free load (nocap) exceeds that cap.
func capCounts(tb testing.TB, ns []Node, ss []Stream, p, nocap *Placement) (atCap, overCap int) {
	pl, err := NewPlacer(ns, ss, Config{})
	if err != nil {
		tb.Fatal(err)
	}
	w := pl.newWalker()
	b, u := p.Balance(), nocap.Balance()
	for i, n := range b.Nodes {
		if n.State != Active {
			continue
		}
		if n.Copies >= w.capC[i] {
			atCap++
		}
		if u.Nodes[i].Copies > w.capC[i] {
			overCap++
		}
	}
	return atCap, overCap
}

// row is one line of the table: a figure, its target (nil: none, shown
// for information) and its value per configuration.
type row struct {
	name, target string
	ok           func(float64) bool
	format       string
	value        func(*caseFigures) float64
}

func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x+1e-9 } }
func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x-1e-9 } }

func tableRows(tierNames []string) []row {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	rows := []row{
		{"max/fair copies, worst placement", "≤ 1.10", atMost(1.10), "%.3f", func(c *caseFigures) float64 { return c.maxCopies }},
		{"max/fair homes, worst placement", "≤ 1.10", atMost(1.10), "%.3f", func(c *caseFigures) float64 { return c.maxHomes }},
	}
	for k, name := range changeKinds {
		r := row{"moved/optimal, " + name, "≤ 1.15", atMost(1.15), "%.3f", func(c *caseFigures) float64 { return ratio(c.moved[k], c.opt[k]) }}
		if name == "remove" {
			// A failed node forgotten: measured from the placement
			// before the failure; the issue sets no target for it.
			r.name, r.target, r.ok = "moved/optimal, remove (forget)", "-", nil
		}
		rows = append(rows, r)
	}
	rows = append(rows,
		row{"moved/optimal, cap off (all kinds)", "-", nil, "%.3f", func(c *caseFigures) float64 { return c.nocap }},
		row{"nodes at their copy cap", "-", nil, "%.0f", func(c *caseFigures) float64 { return float64(c.atCap) }},
		row{"nodes over it with the cap off", "-", nil, "%.0f", func(c *caseFigures) float64 { return float64(c.overCap) }},
		row{"failed homes to a holder %", "≥ 99", atLeast(99), "%.1f", func(c *caseFigures) float64 { return 100 * ratio(c.toCopy, c.failedOver) }},
	)
	for i, t := range tierNames {
		rows = append(rows,
			row{t + ": streams sharing a domain", "-", nil, "%.0f", func(c *caseFigures) float64 { return float64(c.tiers[i].Shared) }},
			row{t + ": avoidable sharing", "0", atMost(0), "%.0f", func(c *caseFigures) float64 { return float64(c.tiers[i].Avoidable) }})
	}
	return append(rows,
		row{"level violations", "0", atMost(0), "%.0f", func(c *caseFigures) float64 { return float64(c.violations) }},
		row{"full placement, wall ms", "≤ 1000", atMost(1000), "%.0f", func(c *caseFigures) float64 { return ms(c.placeWall) }},
		row{"full placement, CPU ms", "≤ 1000", atMost(1000), "%.0f", func(c *caseFigures) float64 { return ms(c.placeCPU) }},
		row{"re-place after a failure, wall ms", "≤ 100", atMost(100), "%.1f", func(c *caseFigures) float64 { return ms(c.replace) }},
		row{"re-place after a failure, CPU ms", "≤ 100", atMost(100), "%.1f", func(c *caseFigures) float64 { return ms(c.replaceCPU) }},
		row{"Placer memory, MiB", "-", nil, "%.1f", func(c *caseFigures) float64 { return c.placerMiB }},
	)
}

// writeTable prints the figures of every configuration, one column each,
// every figure with a target marked ok or MISS, and a last line counting
// the misses.
func writeTable(w io.Writer, title string, names []string, cs []*caseFigures) {
	var tierNames []string
	for _, td := range cs[0].tiers {
		tierNames = append(tierNames, td.Tier)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, title)
	fmt.Fprint(tw, "figure\ttarget\t")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t", n)
	}
	fmt.Fprintln(tw)
	met, missed := 0, []string(nil)
	for _, r := range tableRows(tierNames) {
		fmt.Fprintf(tw, "%s\t%s\t", r.name, r.target)
		for i, c := range cs {
			v := r.value(c)
			mark := ""
			if r.ok != nil {
				if r.ok(v) {
					mark, met = " ok", met+1
				} else {
					mark, missed = " MISS", append(missed, names[i]+" "+r.name)
				}
			}
			fmt.Fprintf(tw, "%s%s\t", fmt.Sprintf(r.format, v), mark)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(w, "targets met: %d of %d", met, met+len(missed))
	if len(missed) > 0 {
		fmt.Fprintf(w, "; missed: %s", strings.Join(missed, ", "))
	}
	fmt.Fprintln(w)
}

// tableChanges is how many changes of each kind the table averages over.
const tableChanges = 20

// BenchmarkPlacement prints the one table of placement figures on 100,000
// streams × 1,000 nodes (4 zones × 10 racks × 25 hosts) for R=2 and R=3,
// weighted and not: balance, movement per kind of single-node change
// (tableChanges of each, moved and optimal summed over them), failed
// homes promoted to a holder, the nodes at their copy cap and those over
// it with the cap off (where the excess movement is made), dispersion per
// tier, full placement and re-placement after a failure (wall and CPU),
// and the Placer's memory, each figure against its target. About 70 s on 2 cores.
func BenchmarkPlacement(b *testing.B) {
	cases := []benchCase{{"R2", 2, false}, {"R2-weighted", 2, true}, {"R3", 3, false}, {"R3-weighted", 3, true}}
	for i := 0; i < b.N; i++ {
		var cs []*caseFigures
		var names []string
		for _, bc := range cases {
			ns := topology(4, 10, 25, bc.weighted, 1)
			ss := streamSet(100000, bc.r, bc.weighted, 1)
			c := &caseFigures{}
			var walls, cpus []time.Duration
			var p *Placement
			for range 3 {
				runtime.GC()
				t0, c0 := time.Now(), cpuTime()
				var err error
				if p, err = Place(ns, ss, Config{}); err != nil {
					b.Fatal(err)
				}
				walls, cpus = append(walls, time.Since(t0)), append(cpus, cpuTime()-c0)
			}
			slices.Sort(walls)
			slices.Sort(cpus)
			c.placeWall, c.placeCPU = walls[1], cpus[1]
			c.tiers, c.violations = p.Dispersion()
			nocap, err := Place(ns, ss, Config{NoLoadCap: true})
			if err != nil {
				b.Fatal(err)
			}
			c.atCap, c.overCap = capCounts(b, ns, ss, p, nocap)
			c.placerMiB = float64(placerBytes(b, ns, ss)) / (1 << 20)
			c.figures = measure(b, ns, ss, Config{}, tableChanges)
			u := measure(b, ns, ss, Config{NoLoadCap: true}, 4)
			var um, uo int
			for k := range changeKinds {
				um, uo = um+u.moved[k], uo+u.opt[k]
			}
			c.nocap = ratio(um, uo)
			cs, names = append(cs, c), append(names, bc.name)
		}
		writeTable(os.Stdout, fmt.Sprintf("placement, 100,000 streams × 1,000 nodes (4 zones × 10 racks × 25 hosts), %d changes of each kind (cap off: 4), %d CPUs",
			tableChanges, runtime.GOMAXPROCS(0)), names, cs)
	}
}

// BenchmarkMovementIDSets repeats the capped movement measurement with the
// same topology and streams under other names (every node and stream ID
// prefixed), which re-draws every hash: how much of a movement figure
// belongs to the method and how much to one draw of the IDs.
func BenchmarkMovementIDSets(b *testing.B) {
	if !*idSets {
		b.Skip("-idsets runs it")
	}
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
