package placement

import (
	"bufio"
	"io"
	"slices"
	"strings"
)

// Placement is the result of Place: for each stream, its copies, the home
// first and the replicas after it in preference order. When the home fails,
// the next copy (already recording) becomes home. A Placement is immutable.
type Placement struct {
	cfg      Config
	nodes    []Node
	streams  []Stream
	tierKeys []string
	level    int
	dom      []int32
	off      []int32 // copies of stream i: copies[off[i]:off[i+1]]
	copies   []int32 // node indices

	scopeOf    []int32 // per stream: index in scopeInfo, -1 for none
	scopeInfo  []*scopeInfo
	activeDoms []int // per tier: domains with an active node
}

// Config returns the configuration the placement was made with, defaults
// applied.
func (p *Placement) Config() Config { return p.cfg }

// Nodes returns the nodes, sorted by ID. Do not modify.
func (p *Placement) Nodes() []Node { return p.nodes }

// Streams returns the streams, sorted by ID. Do not modify.
func (p *Placement) Streams() []Stream { return p.streams }

// Tiers returns the tier keys of the domains, outermost first.
func (p *Placement) Tiers() []string { return p.tierKeys }

// Copies returns the node indices (into Nodes) of stream i (an index into
// Streams), the home first. Do not modify.
func (p *Placement) Copies(i int) []int32 {
	return p.copies[p.off[i]:p.off[i+1]]
}

// Lookup returns the node IDs of a stream's copies, the home first, or nil
// for an unknown stream.
func (p *Placement) Lookup(streamID string) []string {
	i, ok := slices.BinarySearchFunc(p.streams, streamID, func(s Stream, id string) int { return strings.Compare(s.ID, id) })
	if !ok {
		return nil
	}
	c := p.Copies(i)
	ids := make([]string, len(c))
	for j, n := range c {
		ids[j] = p.nodes[n].ID
	}
	return ids
}

// WriteTo writes the canonical text of the placement, one line per stream
// in ID order: the stream ID then its node IDs, home first, space-separated.
// Equal placements give equal bytes.
func (p *Placement) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	for i, s := range p.streams {
		k, _ := bw.WriteString(s.ID)
		n += int64(k)
		for _, c := range p.Copies(i) {
			bw.WriteByte(' ')
			k, _ = bw.WriteString(p.nodes[c].ID)
			n += int64(k) + 1
		}
		bw.WriteByte('\n')
		n++
	}
	return n, bw.Flush()
}

// NodeBalance is the load of one node.
type NodeBalance struct {
	ID     string
	Weight int64
	State  State
	// TargetCopies and TargetHomes are the fair shares of load weight:
	// the total times the node's share of the active weight.
	TargetCopies, TargetHomes float64
	// Copies and Homes are the load weight carried; CopyCount and
	// HomeCount the number of streams.
	Copies, Homes        int64
	CopyCount, HomeCount int
	// BalancePct is how far Copies is from TargetCopies, in percent.
	BalancePct float64
}

// Balance is the load of every node.
type Balance struct {
	Nodes []NodeBalance
	// MaxOverFairCopies and MaxOverFairHomes are the largest load over fair
	// share among active nodes (1.0 is perfect balance).
	MaxOverFairCopies, MaxOverFairHomes float64
}

// Balance reports the load of each node against its fair share.
func (p *Placement) Balance() Balance {
	b := Balance{Nodes: make([]NodeBalance, len(p.nodes))}
	var wsum, dc, dh int64
	for i, n := range p.nodes {
		b.Nodes[i] = NodeBalance{ID: n.ID, Weight: n.Weight, State: n.State}
		if n.State == Active {
			wsum += n.Weight
		}
	}
	for i, s := range p.streams {
		for j, c := range p.Copies(i) {
			nb := &b.Nodes[c]
			nb.Copies += s.Weight
			nb.CopyCount++
			dc += s.Weight
			if j == 0 {
				nb.Homes += s.Weight
				nb.HomeCount++
				dh += s.Weight
			}
		}
	}
	for i := range b.Nodes {
		nb := &b.Nodes[i]
		if nb.State != Active || wsum == 0 {
			continue
		}
		share := float64(nb.Weight) / float64(wsum)
		nb.TargetCopies, nb.TargetHomes = float64(dc)*share, float64(dh)*share
		if nb.TargetCopies > 0 {
			r := float64(nb.Copies) / nb.TargetCopies
			nb.BalancePct = (r - 1) * 100
			b.MaxOverFairCopies = max(b.MaxOverFairCopies, r)
		}
		if nb.TargetHomes > 0 {
			b.MaxOverFairHomes = max(b.MaxOverFairHomes, float64(nb.Homes)/nb.TargetHomes)
		}
	}
	return b
}

// TierDispersion tells how well the copies are spread at one tier.
type TierDispersion struct {
	Tier string
	// Domains is the number of domains at this tier with an active node.
	Domains int
	// Shared counts streams with two copies in one domain of this tier.
	Shared int
	// Avoidable counts the Shared streams that could have been spread:
	// fewer distinct domains than min(copies, Domains).
	Avoidable int
}

// Dispersion reports, for each tier, how many streams have copies sharing a
// domain, and the number of failure-domain violations: streams whose copies
// share a domain at the configured level although enough domains exist
// (for a scoped stream: in its scope).
func (p *Placement) Dispersion() (tiers []TierDispersion, violations int) {
	T := len(p.tierKeys)
	seen := make([]int32, 0, MaxReplicas)
	for t := 0; t < T; t++ {
		td := TierDispersion{Tier: p.tierKeys[t]}
		doms := map[int32]bool{}
		for i, n := range p.nodes {
			if n.State == Active {
				doms[p.dom[i*T+t]] = true
			}
		}
		td.Domains = len(doms)
		for i := range p.streams {
			c := p.Copies(i)
			seen = seen[:0]
			for _, n := range c {
				d := p.dom[int(n)*T+t]
				if !slices.Contains(seen, d) {
					seen = append(seen, d)
				}
			}
			if len(seen) < len(c) {
				td.Shared++
				if p.avoidable(i, t, c, td.Domains) {
					td.Avoidable++
				}
			}
		}
		if t == p.level {
			violations = td.Avoidable
		}
		tiers = append(tiers, td)
	}
	return tiers, violations
}

// avoidable tells whether the copies c of stream i could have used more
// distinct domains at tier t, with doms domains there. For a scoped
// stream only its copies inside the scope count, against the scope's
// domains: a copy outside is there because the scope is short of nodes.
func (p *Placement) avoidable(i, t int, c []int32, doms int) bool {
	T := len(p.tierKeys)
	si := p.scopeFor(i)
	if si != nil {
		doms = si.doms[len(si.path)][t]
	}
	var buf [MaxReplicas]int32
	seen, k := buf[:0], 0
	for _, n := range c {
		if si != nil && int(si.lvl[n]) < len(si.path) {
			continue
		}
		k++
		if d := p.dom[int(n)*T+t]; !slices.Contains(seen, d) {
			seen = append(seen, d)
		}
	}
	return len(seen) < min(k, doms)
}

// Movement compares two placements of the same streams, before and after a
// change of nodes.
type Movement struct {
	// CopiesMoved counts copies placed on a node that did not hold them.
	CopiesMoved int
	// OptimalMoves is the least any placement could move: for each node
	// added, removed, re-weighted or changed state, the change of its copy
	// count (the copies of a removed node, the copies of a new one).
	OptimalMoves int
	// HomesMoved counts streams whose home changed.
	HomesMoved int
	// NewHomeWithoutCopy counts streams whose new home held no copy before.
	NewHomeWithoutCopy int
	// HomesFailedOver counts streams whose home was removed or stopped
	// being active; FailoverToCopy those of them whose new home already
	// held a copy.
	HomesFailedOver, FailoverToCopy int
	// UnderReplicated counts streams left with fewer than R copies.
	UnderReplicated int
}

// MoveRatio is CopiesMoved over OptimalMoves (1 when both are 0).
func (m Movement) MoveRatio() float64 {
	if m.OptimalMoves == 0 {
		if m.CopiesMoved == 0 {
			return 1
		}
		return float64(m.CopiesMoved)
	}
	return float64(m.CopiesMoved) / float64(m.OptimalMoves)
}

// Compare reports the movement from before to after over the streams both
// place.
func Compare(before, after *Placement) Movement {
	var m Movement
	// Map node indices of before to after by ID (-1: gone).
	toAfter := make([]int32, len(before.nodes))
	bc := make([]int, len(before.nodes))
	ac := make([]int, len(after.nodes))
	for i, j := 0, 0; i < len(before.nodes); i++ {
		for j < len(after.nodes) && after.nodes[j].ID < before.nodes[i].ID {
			j++
		}
		toAfter[i] = -1
		if j < len(after.nodes) && after.nodes[j].ID == before.nodes[i].ID {
			toAfter[i] = int32(j)
		}
	}
	held := make([]int32, 0, MaxReplicas)
	for i, j := 0, 0; i < len(before.streams); i++ {
		for j < len(after.streams) && after.streams[j].ID < before.streams[i].ID {
			j++
		}
		if j == len(after.streams) || after.streams[j].ID != before.streams[i].ID {
			continue
		}
		bcop, acop := before.Copies(i), after.Copies(j)
		held = held[:0]
		for _, n := range bcop {
			bc[n]++
			held = append(held, toAfter[n])
		}
		for _, n := range acop {
			ac[n]++
			if !slices.Contains(held, n) {
				m.CopiesMoved++
			}
		}
		if len(acop) < after.streams[j].Replicas {
			m.UnderReplicated++
		}
		if len(bcop) == 0 || len(acop) == 0 {
			continue
		}
		oldHome, newHome := held[0], acop[0]
		if oldHome != newHome {
			m.HomesMoved++
			if !slices.Contains(held, newHome) {
				m.NewHomeWithoutCopy++
			}
			if oldHome < 0 || after.nodes[oldHome].State != Active {
				m.HomesFailedOver++
				if slices.Contains(held, newHome) {
					m.FailoverToCopy++
				}
			}
		}
	}
	seenAfter := make([]bool, len(after.nodes))
	for i, j := range toAfter {
		if j < 0 {
			m.OptimalMoves += bc[i]
			continue
		}
		seenAfter[j] = true
		b, a := before.nodes[i], after.nodes[j]
		if b.Weight != a.Weight || b.State != a.State {
			m.OptimalMoves += abs(ac[j] - bc[i])
		}
	}
	for j, seen := range seenAfter {
		if !seen {
			m.OptimalMoves += ac[j]
		}
	}
	return m
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
