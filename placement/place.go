package placement

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// candidates is how many of its most-preferred nodes are kept per stream.
// A stream whose copies cannot be chosen among them falls back to its full
// preference order, so the result never depends on this number.
const candidates = 16

// refillBelow is the candidate-list length under which an incremental
// change recomputes the list of a stream.
const refillBelow = 8

// Place returns the placement of streams on nodes: for each stream an
// ordered list of min(R, active nodes) distinct nodes, the home first.
// It is a pure function of its arguments: the order of nodes and streams
// does not matter, and the output is byte-identical on every architecture.
func Place(nodes []Node, streams []Stream, cfg Config) (*Placement, error) {
	p, err := NewPlacer(nodes, streams, cfg)
	if err != nil {
		return nil, err
	}
	return p.Placement(), nil
}

// Placer memoizes the expensive part of Place (each stream's most-preferred
// nodes) so that a membership change is re-placed in milliseconds. The
// result of Placer.Placement is always identical to Place on the current
// nodes and streams: the Placer is a cache, not a state. A Placer is not
// safe for concurrent use.
type Placer struct {
	cfg      Config
	tierKeys []string
	level    int // index in tierKeys; len(tierKeys) means node-distinct only

	nodes []Node // sorted by ID
	nh    []uint64
	inv   []uint64
	dom   []int32 // len(nodes)*len(tierKeys): domain number per tier

	streams []Stream // sorted by ID
	sh      []uint64
	order   []int32 // processing order of streams: heavy first, then by hash

	groups []weightGroup // nodes by weight, ascending

	cand  []int32 // len(streams)*candidates: node indices, best first
	candN []uint8

	scopes  []Domain // distinct stream scopes
	scopeOf []int32  // per stream: index in scopes, -1 for none
}

// NewPlacer validates the input and computes every stream's preferred nodes.
func NewPlacer(nodes []Node, streams []Stream, cfg Config) (*Placer, error) {
	cfg.EnsureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Placer{cfg: cfg}
	if err := p.setNodes(slices.Clone(nodes)); err != nil {
		return nil, err
	}
	if len(streams) > MaxStreams {
		return nil, fmt.Errorf("%w: %d streams, at most %d", ErrBadConfig, len(streams), MaxStreams)
	}
	ss := slices.Clone(streams)
	slices.SortFunc(ss, func(a, b Stream) int { return strings.Compare(a.ID, b.ID) })
	for i := range ss {
		if err := ValidateStream(ss[i]); err != nil {
			return nil, err
		}
		if i > 0 && ss[i].ID == ss[i-1].ID {
			return nil, fmt.Errorf("stream %q: %w", ss[i].ID, ErrDuplicateID)
		}
	}
	p.streams = ss
	if err := p.setScopes(); err != nil {
		return nil, err
	}
	p.sh = make([]uint64, len(ss))
	p.order = make([]int32, len(ss))
	for i := range ss {
		p.sh[i] = hashString(ss[i].ID)
		p.order[i] = int32(i)
	}
	slices.SortFunc(p.order, func(a, b int32) int {
		if c := cmp.Compare(ss[a].Weight, ss[b].Weight); c != 0 {
			return c
		}
		if c := cmp.Compare(p.sh[a], p.sh[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	p.cand = make([]int32, len(ss)*candidates)
	p.candN = make([]uint8, len(ss))
	p.fillAll()
	return p, nil
}

// setNodes validates and installs a node set (taking ownership of ns).
func (p *Placer) setNodes(ns []Node) error {
	if len(ns) > MaxNodes {
		return fmt.Errorf("%w: %d nodes, at most %d", ErrBadConfig, len(ns), MaxNodes)
	}
	slices.SortFunc(ns, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	var keys []string
	for i := range ns {
		if err := ValidateNode(ns[i]); err != nil {
			return err
		}
		if i > 0 && ns[i].ID == ns[i-1].ID {
			return fmt.Errorf("node %q: %w", ns[i].ID, ErrDuplicateID)
		}
		if i == 0 {
			for _, t := range ns[i].Domain {
				keys = append(keys, t.Key)
			}
			continue
		}
		if len(ns[i].Domain) != len(keys) {
			return fmt.Errorf("node %q: %w: %q has tiers unlike node %q (%s)", ns[i].ID, ErrBadDomain,
				ns[i].Domain.String(), ns[0].ID, strings.Join(keys, "/"))
		}
		for j, t := range ns[i].Domain {
			if t.Key != keys[j] {
				return fmt.Errorf("node %q: %w: %q has tiers unlike node %q (%s)", ns[i].ID, ErrBadDomain,
					ns[i].Domain.String(), ns[0].ID, strings.Join(keys, "/"))
			}
		}
	}
	level := len(keys)
	if p.cfg.Level != "node" {
		level = slices.Index(keys, p.cfg.Level)
		if level < 0 && len(ns) > 0 {
			return fmt.Errorf("%w: level %q is not a tier of the domains (%s)", ErrBadConfig, p.cfg.Level, strings.Join(keys, "/"))
		}
	}
	T := len(keys)
	dom := make([]int32, len(ns)*T)
	for t := 0; t < T; t++ {
		ids := make(map[string]int32)
		var key strings.Builder
		for i := range ns {
			key.Reset()
			for _, tr := range ns[i].Domain[:t+1] {
				key.WriteString(tr.Key)
				key.WriteByte('=')
				key.WriteString(tr.Value)
				key.WriteByte('/')
			}
			k := key.String()
			id, ok := ids[k]
			if !ok {
				id = int32(len(ids))
				ids[k] = id
			}
			dom[i*T+t] = id
		}
	}
	p.nodes, p.tierKeys, p.level, p.dom = ns, keys, level, dom
	p.nh = make([]uint64, len(ns))
	p.inv = make([]uint64, len(ns))
	for i := range ns {
		p.nh[i] = hashString(ns[i].ID)
		p.inv[i] = reciprocal(ns[i].Weight)
	}
	byWeight := map[int64]int{}
	p.groups = p.groups[:0:0]
	for i := range ns {
		g, ok := byWeight[ns[i].Weight]
		if !ok {
			g = len(p.groups)
			byWeight[ns[i].Weight] = g
			p.groups = append(p.groups, weightGroup{inv: p.inv[i]})
		}
		p.groups[g].nodes = append(p.groups[g].nodes, int32(i))
		p.groups[g].nh = append(p.groups[g].nh, p.nh[i])
	}
	for g := range p.groups {
		if n := uint64(len(p.groups[g].nh)); n >= 8*candidates {
			p.groups[g].thr = math.MaxUint64 - math.MaxUint64/n*(2*candidates)
		}
	}
	return nil
}

// rank is a node's place in a stream's preference order: the weighted
// score, then the pair hash (a larger hash is a smaller score before
// rounding), then the node index. Within one weight the order is that of the
// hash alone, which lets fill rank most nodes without computing a score.
type rank struct {
	score, hash uint64
	node        int32
}

func (a rank) less(b rank) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	if a.hash != b.hash {
		return a.hash > b.hash
	}
	return a.node < b.node
}

func (p *Placer) rank(s int, n int32) rank {
	h := pairHash(p.sh[s], p.nh[n])
	return rank{score(h, p.inv[n]), h, n}
}

// fillAll computes every candidate list, on all CPUs.
func (p *Placer) fillAll() {
	workers := runtime.GOMAXPROCS(0)
	if len(p.streams) < 1024 {
		workers = 1
	}
	var wg sync.WaitGroup
	chunk := (len(p.streams) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(p.streams))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := lo; s < hi; s++ {
				p.fill(s)
			}
		}()
	}
	wg.Wait()
}

// weightGroup is the nodes of one weight.
type weightGroup struct {
	inv   uint64
	nodes []int32
	nh    []uint64
	// thr is a hash threshold about 2·candidates of the group's nodes
	// pass for a given stream (0: the group is too small to bother).
	thr uint64
}

// maxGroups is the number of distinct weights up to which fill ranks each
// weight group by hash alone.
const maxGroups = 8

// fill computes the candidate list of stream s: its best nodes, best first.
func (p *Placer) fill(s int) {
	var top [candidates]rank
	n := 0
	insert := func(r rank) {
		if n == candidates && !r.less(top[n-1]) {
			return
		}
		j := n
		if n < candidates {
			n++
		} else {
			j = candidates - 1
		}
		for j > 0 && r.less(top[j-1]) {
			top[j] = top[j-1]
			j--
		}
		top[j] = r
	}
	sh := p.sh[s]
	if len(p.groups) > maxGroups {
		for i := range p.nodes {
			h := pairHash(sh, p.nh[i])
			insert(rank{score(h, p.inv[i]), h, int32(i)})
		}
	} else {
		// Per group, the best nodes by hash (descending, then index). A
		// threshold that about 2·candidates hashes pass gathers them with
		// one multiply-hash and one comparison per node; when fewer than
		// candidates pass, the group is scanned again exactly.
		var gh [candidates]uint64
		var gi [candidates]int32
		var bh [4 * candidates]uint64
		var bi [4 * candidates]int32
		for gIdx := range p.groups {
			g := &p.groups[gIdx]
			m := -1 // hashes gathered over the threshold; -1: scan every node
			if g.thr != 0 {
				m = 0
				for i, nh := range g.nh {
					if h := pairHash(sh, nh); h > g.thr {
						if m == len(bh) {
							m = -1
							break
						}
						bh[m], bi[m] = h, int32(i)
						m++
					}
				}
				if m < candidates {
					m = -1
				}
			}
			top := func(h uint64, i int32, k int, thr *uint64) int {
				if h <= *thr { // thr is 0 until the list is full; h is never 0
					return k
				}
				j := k
				if k < candidates {
					k++
				} else {
					j = candidates - 1
				}
				for j > 0 && h > gh[j-1] {
					gh[j], gi[j] = gh[j-1], gi[j-1]
					j--
				}
				gh[j], gi[j] = h, g.nodes[i]
				if k == candidates {
					*thr = gh[k-1]
				}
				return k
			}
			k := 0
			var thr uint64
			if m >= 0 {
				for j := 0; j < m; j++ {
					k = top(bh[j], bi[j], k, &thr)
				}
			} else {
				for i, nh := range g.nh {
					k = top(pairHash(sh, nh), int32(i), k, &thr)
				}
			}
			for j := 0; j < k; j++ {
				insert(rank{score(gh[j], g.inv), gh[j], gi[j]})
			}
		}
	}
	list := p.cand[s*candidates : (s+1)*candidates]
	for i := 0; i < n; i++ {
		list[i] = top[i].node
	}
	p.candN[s] = uint8(n)
}

// fullOrder writes the whole preference order of stream s into buf.
func (p *Placer) fullOrder(s int, buf []int32, rk []rank) []int32 {
	buf = buf[:0]
	for i := range p.nodes {
		buf = append(buf, int32(i))
		rk[i] = p.rank(s, int32(i))
	}
	slices.SortFunc(buf, func(a, b int32) int {
		if rk[a].less(rk[b]) {
			return -1
		}
		if rk[b].less(rk[a]) {
			return 1
		}
		return 0
	})
	return buf
}

// Nodes returns the current nodes, sorted by ID. Do not modify.
func (p *Placer) Nodes() []Node { return p.nodes }

// RemoveNode removes a node (it failed or left).
func (p *Placer) RemoveNode(id string) error {
	r, ok := slices.BinarySearchFunc(p.nodes, id, func(n Node, id string) int { return strings.Compare(n.ID, id) })
	if !ok {
		return fmt.Errorf("node %q: %w", id, ErrUnknownNode)
	}
	ns := slices.Delete(slices.Clone(p.nodes), r, r+1)
	if err := p.setNodes(ns); err != nil {
		return err
	}
	rr := int32(r)
	for s := range p.streams {
		list := p.cand[s*candidates : s*candidates+int(p.candN[s])]
		k := 0
		for _, n := range list {
			if n == rr {
				continue
			}
			if n > rr {
				n--
			}
			list[k] = n
			k++
		}
		p.candN[s] = uint8(k)
		if k < refillBelow && k < len(p.nodes) {
			p.fill(s)
		}
	}
	return nil
}

// UpsertNode adds a node or changes one (weight, state, domain).
func (p *Placer) UpsertNode(n Node) error {
	if err := ValidateNode(n); err != nil {
		return err
	}
	ns := slices.Clone(p.nodes)
	r, exists := slices.BinarySearchFunc(ns, n.ID, func(x Node, id string) int { return strings.Compare(x.ID, id) })
	if exists {
		old := ns[r]
		ns[r] = n
		if err := p.setNodes(ns); err != nil {
			return err
		}
		if old.Weight != n.Weight {
			p.rescore(int32(r), true)
		}
		return nil
	}
	ns = slices.Insert(ns, r, n)
	if err := p.setNodes(ns); err != nil {
		return err
	}
	a := int32(r)
	for s := range p.streams {
		list := p.cand[s*candidates : s*candidates+int(p.candN[s])]
		for i, x := range list {
			if x >= a {
				list[i] = x + 1
			}
		}
	}
	p.rescore(a, false)
	return nil
}

// rescore re-ranks node a (new, or with a new weight) in every candidate
// list, keeping each list an exact prefix of its stream's preference order.
func (p *Placer) rescore(a int32, present bool) {
	others := len(p.nodes) - 1 // nodes other than a
	for s := range p.streams {
		base := s * candidates
		k := int(p.candN[s])
		list := p.cand[base : base+k]
		if present {
			if i := slices.Index(list, a); i >= 0 {
				copy(list[i:], list[i+1:])
				k--
				list = list[:k]
			}
		}
		// Without a, the list is an exact prefix of the others' order; it is
		// complete when it holds all of them.
		x := p.rank(s, a)
		pos := k
		for pos > 0 && !p.rank(s, list[pos-1]).less(x) {
			pos--
		}
		if pos < k || k == others {
			if k == candidates {
				k-- // drop the last to make room
			}
			full := p.cand[base : base+k+1]
			copy(full[pos+1:], full[pos:k])
			full[pos] = a
			k++
		}
		p.candN[s] = uint8(k)
		if k < refillBelow && k < len(p.nodes) {
			p.fill(s)
		}
	}
}

// pass is one rung of the ladder a copy walks down when it cannot be
// placed: which cap it respects and from which tier its domains must be as
// unique as possible.
type pass struct {
	caps []int64 // copy caps to respect; nil: none, take the lightest node
	from int     // outermost tier that counts (0: all; len(tiers): nodes only)
}

// walker is the sequential phase: it gives each stream, in processing
// order, its copies under the caps.
type walker struct {
	p                  *Placer
	copyLoad, homeLoad []int64
	capC, capH, capO   []int64 // copy, home and overload caps
	eligible           int
	// activeDoms[t] is the number of domains at tier t with an active node.
	activeDoms []int
	// sc is the scope of the stream being placed (nil: none) and L the
	// number of its leading tiers a copy must share: len(sc.path) until
	// the scope has no active node left, then less, nearest first.
	sc          *scopeInfo
	L           int
	passes      []pass
	chosen, pos []int32
	home        int
	buf         []int32
	rk          []rank
}

// Placement runs the sequential phase and returns the placement. With
// failed nodes it places as if they were active, then replaces only their
// copies (replaceFailed).
func (p *Placer) Placement() *Placement {
	failed := false
	for i := range p.nodes {
		if p.nodes[i].State == Failed {
			failed = true
			break
		}
	}
	if !failed {
		return p.place()
	}
	sh := *p
	sh.nodes = slices.Clone(p.nodes)
	for i := range sh.nodes {
		if sh.nodes[i].State == Failed {
			sh.nodes[i].State = Active
		}
	}
	return p.replaceFailed(sh.place())
}

// newWalker sets up the sequential phase on the current nodes: caps,
// loads, the ladder of passes.
func (p *Placer) newWalker() *walker {
	N, T := len(p.nodes), len(p.tierKeys)
	w := &walker{
		p:        p,
		copyLoad: make([]int64, N),
		homeLoad: make([]int64, N),
		capC:     make([]int64, N),
		capH:     make([]int64, N),
		capO:     make([]int64, N),
		chosen:   make([]int32, 0, MaxReplicas),
		pos:      make([]int32, 0, MaxReplicas),
	}
	var wsum uint64
	for i := range p.nodes {
		if p.nodes[i].State == Active {
			w.eligible++
			wsum += uint64(p.nodes[i].Weight)
		}
	}
	var dc, dh uint64
	for _, s := range p.streams {
		dc += uint64(s.Weight) * uint64(min(s.Replicas, w.eligible))
		dh += uint64(s.Weight)
	}
	ppm := p.cfg.epsilonPPM()
	for i := range p.nodes {
		if p.nodes[i].State != Active {
			continue
		}
		if p.cfg.NoLoadCap {
			w.capC[i], w.capH[i], w.capO[i] = math.MaxInt64, math.MaxInt64, math.MaxInt64
			continue
		}
		w.capC[i] = loadCap(dc, uint64(p.nodes[i].Weight), wsum, ppm, p.nh[i])
		w.capH[i] = loadCap(dh, uint64(p.nodes[i].Weight), wsum, ppm, p.nh[i]>>16)
		w.capO[i] = loadCap(dc, uint64(p.nodes[i].Weight), wsum, ppm+p.cfg.overloadPPM(), p.nh[i])
	}
	w.activeDoms = make([]int, T)
	for t := 0; t < T; t++ {
		seen := map[int32]bool{}
		for i := range p.nodes {
			if p.nodes[i].State == Active {
				seen[p.dom[i*T+t]] = true
			}
		}
		w.activeDoms[t] = len(seen)
	}
	// The ladder: unique at every tier under the cap; then under the
	// overload cap; then unique only from the level down (tiers above it
	// give way to the load cap); then, every such node being full, the
	// lightest node that keeps the level.
	w.passes = []pass{{w.capC, 0}}
	if p.cfg.Overload > 0 {
		w.passes = append(w.passes, pass{w.capO, 0})
	}
	if p.level > 0 {
		w.passes = append(w.passes, pass{w.capO, p.level})
	}
	w.passes = append(w.passes, pass{nil, p.level})

	return w
}

// start sets up a sequential phase: the walker, the placement to fill
// with each stream's copy count in its offsets (stream ID order), and the
// scope of each stream.
func (p *Placer) start() (*walker, *Placement, func(int) *scopeInfo) {
	w := p.newWalker()
	scopes := p.scopeInfos()
	scopeOf := func(i int) *scopeInfo {
		if j := p.scopeOf[i]; j >= 0 {
			return scopes[j]
		}
		return nil
	}
	out := &Placement{
		cfg: p.cfg, nodes: p.nodes, streams: p.streams,
		tierKeys: p.tierKeys, level: p.level, dom: p.dom,
		off:     make([]int32, len(p.streams)+1),
		scopeOf: p.scopeOf, scopeInfo: scopes, activeDoms: w.activeDoms,
	}
	for i := range p.streams {
		out.off[i+1] = out.off[i] + int32(wantCopies(&p.streams[i], w.eligible, scopeOf(i)))
	}
	return w, out, scopeOf
}

// homeFirst moves each stream's home (its index homeAt in its copies) to
// the front, the other copies after it in their order.
func homeFirst(off, copies []int32, homeAt []uint8) {
	for i := range homeAt {
		c := copies[off[i]:off[i+1]]
		if h := homeAt[i]; h > 0 {
			home := c[h]
			copy(c[1:h+1], c[:h])
			c[0] = home
		}
	}
}

// place is the sequential phase on the current nodes.
func (p *Placer) place() *Placement {
	w, out, scopeOf := p.start()
	N := len(p.nodes)
	homeAt := make([]uint8, len(p.streams))
	copies := make([]int32, out.off[len(p.streams)])
	for _, s := range p.order {
		si := int(s)
		st := &p.streams[si]
		want := int(out.off[si+1] - out.off[si])
		if want == 0 {
			continue
		}
		w.sc = scopeOf(si)
		list := p.cand[si*candidates : si*candidates+int(p.candN[si])]
		if !w.choose(st, want, list, len(list) == N) {
			if w.buf == nil {
				w.buf = make([]int32, 0, N)
				w.rk = make([]rank, N)
			}
			w.choose(st, want, p.fullOrder(si, w.buf, w.rk), true)
		}
		copy(copies[out.off[si]:out.off[si+1]], w.chosen)
		homeAt[si] = uint8(w.home)
	}
	w.repairHomes(out.off, copies, homeAt, nil)
	// Home first, the other copies after it in preference order.
	homeFirst(out.off, copies, homeAt)
	out.copies = copies
	return out
}

// repairHomes brings every home load under its cap by moving homes between
// the copies of a stream (which moves no copy): a stream homed on an
// overloaded node A moves its home to another of its copies B with room,
// or, when B is full too, first moves the home of a stream on B to a third
// node with room. Streams are taken from the end of the processing order.
func (w *walker) repairHomes(off, copies []int32, homeAt []uint8, frozen []bool) {
	p := w.p
	over := false
	for i := range p.nodes {
		if w.homeLoad[i] > w.capH[i] {
			over = true
			break
		}
	}
	if !over {
		return
	}
	// Streams per home node, in processing order.
	start := make([]int32, len(p.nodes)+1)
	homeOf := func(s int32) int32 { return copies[off[s]+int32(homeAt[s])] }
	for _, s := range p.order {
		if off[s+1] > off[s] {
			start[homeOf(s)+1]++
		}
	}
	for i := range p.nodes {
		start[i+1] += start[i]
	}
	homed := make([]int32, start[len(p.nodes)])
	fill := slices.Clone(start[:len(p.nodes)])
	for _, s := range p.order {
		if off[s+1] > off[s] {
			h := homeOf(s)
			homed[fill[h]] = s
			fill[h]++
		}
	}
	fits := func(n int32, sw int64) bool { return w.homeLoad[n]+sw <= w.capH[n] }
	move := func(s int32, j int) {
		sw := p.streams[s].Weight
		w.homeLoad[homeOf(s)] -= sw
		homeAt[s] = uint8(j)
		w.homeLoad[homeOf(s)] += sw
	}
	// oneStep moves the home of s (on a) to another copy with room.
	oneStep := func(s, a int32) bool {
		if frozen != nil && frozen[s] {
			return false
		}
		sw := p.streams[s].Weight
		for j, b := range copies[off[s]:off[s+1]] {
			if b != a && fits(b, sw) {
				move(s, j)
				return true
			}
		}
		return false
	}
	for depth := 1; depth <= 2; depth++ {
		for a := range p.nodes {
			a := int32(a)
			for k := start[a+1] - 1; k >= start[a] && w.homeLoad[a] > w.capH[a]; k-- {
				s := homed[k]
				if homeOf(s) != a {
					continue
				}
				if oneStep(s, a) || depth == 1 || (frozen != nil && frozen[s]) {
					continue
				}
				// Make room on another copy b of s by moving a home off b.
				sw := p.streams[s].Weight
				for j, b := range copies[off[s]:off[s+1]] {
					if b == a {
						continue
					}
					for m := start[b+1] - 1; m >= start[b] && !fits(b, sw); m-- {
						t := homed[m]
						if homeOf(t) == b {
							oneStep(t, b)
						}
					}
					if fits(b, sw) {
						move(s, j)
						break
					}
				}
			}
		}
	}
}

// loadCap is the load bound of a node of weight w: (1+ε)·fair with
// fair = d·w/wsum, less a per-node dither in [0, 1) taken from the node's
// hash, rounded down, and never below ⌈fair⌉; so never above ⌊(1+ε)·fair⌋.
//
// Why the dither: nodes of equal weight would otherwise share one cap, and
// a membership change that carries the common fair share across an integer
// would change every cap at once, each change letting a displaced stream
// back in or pushing one out (measured: 1.5× the optimal movement instead of
// 1.1×). With it, a shift δ of the fair shares changes a fraction δ of the
// caps. (A coarser grid of cap steps was measured too, and moved more.)
// Integer 128-bit arithmetic only.
func loadCap(d, w, wsum, ppm, nodeHash uint64) int64 {
	const M = 1_000_000
	// (1+ε)·fair in Q16.
	hi, lo := bits.Mul64(d, w*(M+ppm)<<16)
	c16, _ := bits.Div64(hi, lo, wsum*M)
	hi, lo = bits.Mul64(d, w)
	f, r := bits.Div64(hi, lo, wsum)
	if r != 0 {
		f++
	}
	var c uint64
	if dither := nodeHash & 0xffff; c16 >= dither {
		c = (c16 - dither) >> 16
	}
	return int64(max(c, f))
}

// choose picks the copies of one stream from its preference order ord into
// w.chosen (in preference order; the home is w.chosen[w.home]) and charges
// the loads. The home is the first copy under its home cap (the replicas
// after it are already recording when it fails). With a truncated ord it
// returns false, charging nothing, when the first pass cannot complete.
func (w *walker) choose(st *Stream, want int, ord []int32, complete bool) bool {
	w.chosen, w.pos = w.chosen[:0], w.pos[:0]
	sw := st.Weight
	if !w.add(st, want, ord, complete) {
		return false
	}
	// Copies in preference order, then the first that can be home in front.
	for i := 1; i < len(w.chosen); i++ {
		for j := i; j > 0 && w.pos[j] < w.pos[j-1]; j-- {
			w.pos[j], w.pos[j-1] = w.pos[j-1], w.pos[j]
			w.chosen[j], w.chosen[j-1] = w.chosen[j-1], w.chosen[j]
		}
	}
	w.charge(sw, w.homeAmong(sw, len(w.chosen)))
	return true
}

// homeAmong is the index of the home among the first k chosen copies:
// the first under its home cap, else the least loaded against its cap.
func (w *walker) homeAmong(sw int64, k int) int {
	for i, c := range w.chosen[:k] {
		if w.homeLoad[c]+sw <= w.capH[c] {
			return i
		}
	}
	h := 0
	for i, c := range w.chosen[:k] {
		if lighter(w.homeLoad[c]+sw, w.capH[c], w.homeLoad[w.chosen[h]]+sw, w.capH[w.chosen[h]]) {
			h = i
		}
	}
	return h
}

// charge adds the stream's weight to the copy loads of the chosen and to
// the home load of chosen[h]; w.home is h.
func (w *walker) charge(sw int64, h int) {
	for i, c := range w.chosen {
		w.copyLoad[c] += sw
		if i == h {
			w.homeLoad[c] += sw
		}
	}
	w.home = h
}

// add appends copies to w.chosen from ord until it holds want (see pick);
// with a truncated ord it returns false when the first pass cannot
// complete, and w.chosen is then partly extended.
func (w *walker) add(st *Stream, want int, ord []int32, complete bool) bool {
	sw := st.Weight
	if w.sc != nil {
		w.L = len(w.sc.path)
	}
	for len(w.chosen) < want {
		if sc := w.sc; sc != nil {
			// Step out of the scope, nearest first, once it has no
			// active node left.
			for w.L > 0 && sc.active[w.L] <= w.within(w.L) {
				w.L--
			}
		}
		placed := false
		for _, ps := range w.passes {
			if ps.caps == nil && !complete {
				return false
			}
			if placed = w.pick(ord, ps, sw); placed {
				break
			}
			if !complete {
				// The first rung failed on a truncated order: the
				// answer may lie beyond it.
				return false
			}
		}
		if !placed {
			break // cannot happen: the last rung takes any node keeping the level
		}
	}
	return true
}

// replaceFailed turns the placement sp, made as if the failed nodes were
// active, into the placement of the current nodes: each stream keeps its
// surviving copies in sp's order, home first (so a failed home's stream
// is homed on the first of its replicas, already recording it), and takes
// replacements for its failed copies by the usual rule under the caps of
// the active nodes. Homes over their caps then move only between the
// copies of the streams the failure did not touch (all of them recording),
// never a failed-over home to a replacement.
func (p *Placer) replaceFailed(sp *Placement) *Placement {
	w, out, scopeOf := p.start()
	N := len(p.nodes)
	// First the surviving copies, charged in full, so that the
	// replacements see every node's real load; a stream keeps its home
	// when it survived.
	copies := make([]int32, out.off[len(p.streams)])
	kept := make([]uint8, len(p.streams))
	homeKept := make([]bool, len(p.streams))
	frozen := make([]bool, len(p.streams)) // homed on a holder after its home failed
	for si := range p.streams {
		c := copies[out.off[si]:out.off[si+1]]
		k := 0
		for j, n := range sp.Copies(si) {
			if p.nodes[n].State == Failed || k == len(c) {
				continue
			}
			c[k] = n
			w.copyLoad[n] += p.streams[si].Weight
			if j == 0 {
				homeKept[si] = true
				w.homeLoad[n] += p.streams[si].Weight
			}
			k++
		}
		kept[si] = uint8(k)
	}
	for _, s := range p.order {
		si := int(s)
		st := &p.streams[si]
		c := copies[out.off[si]:out.off[si+1]]
		k := int(kept[si])
		if len(c) == 0 || (k == len(c) && homeKept[si]) {
			continue
		}
		w.sc = scopeOf(si)
		w.chosen, w.pos = append(w.chosen[:0], c[:k]...), w.pos[:0]
		for range k {
			w.pos = append(w.pos, -1)
		}
		if k < len(c) {
			list := p.cand[si*candidates : si*candidates+int(p.candN[si])]
			if !w.add(st, len(c), list, len(list) == N) {
				if w.buf == nil {
					w.buf = make([]int32, 0, N)
					w.rk = make([]rank, N)
				}
				w.chosen, w.pos = w.chosen[:k], w.pos[:k]
				w.add(st, len(c), p.fullOrder(si, w.buf, w.rk), true)
			}
			for _, n := range w.chosen[k:] {
				w.copyLoad[n] += st.Weight
			}
		}
		h := 0
		if !homeKept[si] {
			// The home failed: the first surviving copy under its home
			// cap (a node recording the stream already), if any survived.
			among := k
			if k == 0 {
				among = len(w.chosen)
			}
			h = w.homeAmong(st.Weight, among)
			w.homeLoad[w.chosen[h]] += st.Weight
			frozen[si] = true
		}
		c[0] = w.chosen[h]
		j := 1
		for i, n := range w.chosen {
			if i != h {
				c[j] = n
				j++
			}
		}
	}
	// Homes over their caps move between the copies of untouched streams
	// (all of them recording): never a failed-over home to a replacement.
	homeAt := make([]uint8, len(p.streams))
	w.repairHomes(out.off, copies, homeAt, frozen)
	homeFirst(out.off, copies, homeAt)
	out.copies = copies
	return out
}

// pick adds to w.chosen the first node of ord that rung ps accepts: active,
// not chosen, under the rung's cap, and in a domain no chosen copy uses at
// the outermost tier (from ps.from on) where the chosen copies do not yet
// use every domain with an active node. Taking the copies one at a time by
// that rule makes the number of distinct domains at every tier t equal to
// min(copies, domains at t): as unique as possible at each tier, outermost
// first. A rung without a cap takes the lightest such node relative to
// its copy cap instead of the first.
func (w *walker) pick(ord []int32, ps pass, sw int64) bool {
	p := w.p
	T := len(p.tierKeys)
	doms := w.activeDoms
	if w.sc != nil {
		doms = w.sc.doms[w.L]
	}
	t0 := T
	for t := ps.from; t < T; t++ {
		if w.distinct(t) < doms[t] {
			t0 = t
			break
		}
	}
	best, bi := int32(-1), 0
	for i, n := range ord {
		if p.nodes[n].State != Active || w.taken(n, t0) || (w.sc != nil && int(w.sc.lvl[n]) < w.L) {
			continue
		}
		if ps.caps == nil {
			if best < 0 || w.lighter(n, best, sw) {
				best, bi = n, i
			}
			continue
		}
		if w.copyLoad[n]+sw > ps.caps[n] {
			continue
		}
		best, bi = n, i
		break
	}
	if best < 0 {
		return false
	}
	w.chosen = append(w.chosen, best)
	w.pos = append(w.pos, int32(bi))
	return true
}

// within is the number of chosen copies sharing at least L leading tiers
// with the scope.
func (w *walker) within(L int) int {
	k := 0
	for _, c := range w.chosen {
		if int(w.sc.lvl[c]) >= L {
			k++
		}
	}
	return k
}

// distinct is the number of distinct domains at tier t among the chosen.
func (w *walker) distinct(t int) int {
	T := len(w.p.tierKeys)
	k := 0
	for i, c := range w.chosen {
		d := w.p.dom[int(c)*T+t]
		dup := false
		for _, e := range w.chosen[:i] {
			if w.p.dom[int(e)*T+t] == d {
				dup = true
				break
			}
		}
		if !dup {
			k++
		}
	}
	return k
}

// taken tells whether node n is chosen already or shares its domain at
// tier (len(tiers): none) with a chosen node.
func (w *walker) taken(n int32, tier int) bool {
	T := len(w.p.tierKeys)
	for _, c := range w.chosen {
		if c == n || (tier < T && w.p.dom[int(c)*T+tier] == w.p.dom[int(n)*T+tier]) {
			return true
		}
	}
	return false
}

// lighter tells whether node a, given a copy of weight sw, is less loaded
// relative to its copy cap than node b.
func (w *walker) lighter(a, b int32, sw int64) bool {
	return lighter(w.copyLoad[a]+sw, w.capC[a], w.copyLoad[b]+sw, w.capC[b])
}

// lighter compares la/ca < lb/cb exactly (caps are positive).
func lighter(la, ca, lb, cb int64) bool {
	h1, l1 := bits.Mul64(uint64(la), uint64(cb))
	h2, l2 := bits.Mul64(uint64(lb), uint64(ca))
	return h1 < h2 || (h1 == h2 && l1 < l2)
}
