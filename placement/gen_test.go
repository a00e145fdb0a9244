package placement

import (
	"fmt"
	"math/rand/v2"
)

// topology makes zones × racks × hosts nodes; with weighted, node weights
// are drawn from {1, 2, 4} by a seeded generator.
func topology(zones, racks, hosts int, weighted bool, seed uint64) []Node {
	rng := rand.New(rand.NewPCG(seed, 1))
	var ns []Node
	for z := 0; z < zones; z++ {
		for r := 0; r < racks; r++ {
			for h := 0; h < hosts; h++ {
				w := int64(1)
				if weighted {
					w = []int64{1, 2, 4}[rng.IntN(3)]
				}
				ns = append(ns, Node{
					ID: fmt.Sprintf("node-%04d", len(ns)),
					Domain: Domain{{"zone", fmt.Sprintf("z%d", z)}, {"rack", fmt.Sprintf("r%d", z*racks+r)},
						{"host", fmt.Sprintf("h%d", len(ns))}},
					Weight: w,
				})
			}
		}
	}
	return ns
}

// streamSet makes n streams of r replicas; with weighted, stream weights are
// drawn from {1, 4, 8}.
func streamSet(n, r int, weighted bool, seed uint64) []Stream {
	rng := rand.New(rand.NewPCG(seed, 2))
	ss := make([]Stream, n)
	for i := range ss {
		w := int64(1)
		if weighted {
			w = []int64{1, 4, 8}[rng.IntN(3)]
		}
		ss[i] = Stream{ID: fmt.Sprintf("cam-%06d", i), Weight: w, Replicas: r}
	}
	return ss
}

// unevenTopology makes 1-4 zones of 1-4 racks of 1-5 hosts each (so zones
// and racks differ in size), node weights from {1, 2, 4} when weighted,
// and a tenth of the nodes draining or saturated.
func unevenTopology(rng *rand.Rand, weighted bool) []Node {
	var ns []Node
	zones := 1 + rng.IntN(4)
	rack := 0
	for z := 0; z < zones; z++ {
		racks := 1 + rng.IntN(4)
		for r := 0; r < racks; r++ {
			hosts := 1 + rng.IntN(5)
			for h := 0; h < hosts; h++ {
				w := int64(1)
				if weighted {
					w = []int64{1, 2, 4}[rng.IntN(3)]
				}
				n := Node{
					ID: fmt.Sprintf("node-%04d", len(ns)),
					Domain: Domain{{"zone", fmt.Sprintf("z%d", z)}, {"rack", fmt.Sprintf("r%d", rack)},
						{"host", fmt.Sprintf("h%d", len(ns))}},
					Weight: w,
				}
				switch rng.IntN(10) {
				case 0:
					n.State = Draining
				case 1:
					n.State = Saturated
				}
				ns = append(ns, n)
			}
			rack++
		}
	}
	return ns
}
