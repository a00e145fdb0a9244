package placement

import (
	"fmt"
	"slices"
	"strings"
)

// scopeInfo is what the walk needs of one stream scope on the current
// nodes.
type scopeInfo struct {
	path Domain
	// lvl[n] is the number of leading tiers node n shares with the path:
	// len(path) for the nodes in scope.
	lvl []int8
	// active[L] is the number of active nodes with lvl ≥ L, and
	// doms[L][t] the number of domains at tier t among them.
	active []int
	doms   [][]int
}

// setScopes validates the stream scopes against the tier keys and
// indexes them.
func (p *Placer) setScopes() error {
	p.scopes, p.scopeOf = nil, make([]int32, len(p.streams))
	idx := map[string]int32{}
	for i, s := range p.streams {
		p.scopeOf[i] = -1
		if s.Scope == "" {
			continue
		}
		j, ok := idx[s.Scope]
		if !ok {
			d, err := ParseDomain(s.Scope)
			if err != nil {
				return fmt.Errorf("stream %q: %w: %v", s.ID, ErrBadScope, err)
			}
			if len(p.nodes) > 0 {
				if err := p.checkScope(d); err != nil {
					return fmt.Errorf("stream %q: %w", s.ID, err)
				}
			}
			j = int32(len(p.scopes))
			idx[s.Scope] = j
			p.scopes = append(p.scopes, d)
		}
		p.scopeOf[i] = j
	}
	return nil
}

func (p *Placer) checkScope(d Domain) error {
	if len(d) > len(p.tierKeys) {
		return fmt.Errorf("%w: %q is longer than the domains (%s)", ErrBadScope, d.String(), strings.Join(p.tierKeys, "/"))
	}
	for i, t := range d {
		if t.Key != p.tierKeys[i] {
			return fmt.Errorf("%w: %q is not a prefix of the tiers %s", ErrBadScope, d.String(), strings.Join(p.tierKeys, "/"))
		}
	}
	return nil
}

// scopeInfos computes the scopes on the current nodes. A scope whose keys
// no longer fit the tiers (after the membership changed them) matches no
// node.
func (p *Placer) scopeInfos() []*scopeInfo {
	T := len(p.tierKeys)
	out := make([]*scopeInfo, len(p.scopes))
	for j, d := range p.scopes {
		si := &scopeInfo{path: d, lvl: make([]int8, len(p.nodes)), active: make([]int, len(d)+1), doms: make([][]int, len(d)+1)}
		fits := p.checkScope(d) == nil
		for i := range p.nodes {
			l := 0
			if fits {
				for l < len(d) && p.nodes[i].Domain[l] == d[l] {
					l++
				}
			}
			si.lvl[i] = int8(l)
		}
		for L := 0; L <= len(d); L++ {
			si.doms[L] = make([]int, T)
			for t := 0; t < T; t++ {
				seen := map[int32]bool{}
				for i := range p.nodes {
					if p.nodes[i].State == Active && int(si.lvl[i]) >= L {
						seen[p.dom[i*T+t]] = true
					}
				}
				si.doms[L][t] = len(seen)
			}
			for i := range p.nodes {
				if p.nodes[i].State == Active && int(si.lvl[i]) >= L {
					si.active[L]++
				}
			}
		}
		if !fits {
			si.active[len(d)] = 0
		}
		out[j] = si
	}
	return out
}

// wantCopies is the number of copies stream s gets: min(R, active nodes),
// or for a strict scope min(R, its active nodes).
func wantCopies(s *Stream, eligible int, si *scopeInfo) int {
	if si != nil && s.Strict {
		return min(s.Replicas, si.active[len(si.path)])
	}
	return min(s.Replicas, eligible)
}

// ScopeStats is how the streams of one scope were placed.
type ScopeStats struct {
	Scope string
	// Streams is the number of streams with this scope; Strict those of
	// them that never leave it.
	Streams, Strict int
	// Nodes is the number of active nodes in the scope.
	Nodes int
	// Outside counts the copies placed outside the scope (preferred
	// streams, when it has fewer active nodes than R), OutsideStreams the
	// streams that have one.
	Outside, OutsideStreams int
	// Short counts the strict streams left with fewer than R copies.
	Short int
	// Tiers is the dispersion of the scope's streams, domains counted
	// within the scope.
	Tiers []TierDispersion
}

// Scopes reports, for each stream scope (sorted; "" is the unscoped
// streams), its copies outside the scope, its short strict streams and
// its dispersion.
func (p *Placement) Scopes() []ScopeStats {
	T := len(p.tierKeys)
	byName := map[string]*ScopeStats{}
	var names []string
	seen := make([]int32, 0, MaxReplicas)
	for i, s := range p.streams {
		st, ok := byName[s.Scope]
		if !ok {
			st = &ScopeStats{Scope: s.Scope, Tiers: make([]TierDispersion, T)}
			for t := range st.Tiers {
				st.Tiers[t].Tier = p.tierKeys[t]
			}
			si := p.scopeFor(i)
			if si == nil {
				for n := range p.nodes {
					if p.nodes[n].State == Active {
						st.Nodes++
					}
				}
			} else {
				st.Nodes = si.active[len(si.path)]
			}
			byName[s.Scope] = st
			names = append(names, s.Scope)
		}
		st.Streams++
		if s.Strict {
			st.Strict++
		}
		c := p.Copies(i)
		if si := p.scopeFor(i); si != nil {
			out := 0
			for _, n := range c {
				if int(si.lvl[n]) < len(si.path) {
					out++
				}
			}
			st.Outside += out
			if out > 0 {
				st.OutsideStreams++
			}
			if s.Strict && len(c) < s.Replicas {
				st.Short++
			}
		}
		for t := 0; t < T; t++ {
			seen = seen[:0]
			for _, n := range c {
				if d := p.dom[int(n)*T+t]; !slices.Contains(seen, d) {
					seen = append(seen, d)
				}
			}
			if len(seen) < len(c) {
				st.Tiers[t].Shared++
				if p.avoidable(i, t, c, p.activeDoms[t]) {
					st.Tiers[t].Avoidable++
				}
			}
		}
	}
	slices.Sort(names)
	out := make([]ScopeStats, len(names))
	for i, n := range names {
		st := byName[n]
		for t := range st.Tiers {
			d := p.activeDoms[t]
			if si := p.scopeByName(n); si != nil {
				d = si.doms[len(si.path)][t]
			}
			st.Tiers[t].Domains = d
		}
		out[i] = *st
	}
	return out
}

func (p *Placement) scopeFor(i int) *scopeInfo {
	if j := p.scopeOf[i]; j >= 0 {
		return p.scopeInfo[j]
	}
	return nil
}

func (p *Placement) scopeByName(name string) *scopeInfo {
	for _, si := range p.scopeInfo {
		if si.path.String() == name {
			return si
		}
	}
	return nil
}
