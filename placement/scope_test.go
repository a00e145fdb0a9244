package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestScopeProperties: on random topologies with random scopes (a zone,
// or a zone and rack), a strict stream has no copy outside its scope and
// min(R, active nodes in it) copies; a preferred stream goes outside only
// when its scope lacks active nodes, and then to the nearest nodes first;
// nothing shares a domain at the level avoidably within the scope.
func TestScopeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 17))
	for it := 0; it < 200; it++ {
		ns := unevenTopology(rng, rng.IntN(2) == 0)
		ss := streamSet(100+rng.IntN(300), 1, rng.IntN(2) == 0, rng.Uint64())
		for i := range ss {
			ss[i].Replicas = 1 + rng.IntN(4)
			n := ns[rng.IntN(len(ns))]
			switch rng.IntN(3) {
			case 0:
				ss[i].Scope = n.Domain[:1].String()
			case 1:
				ss[i].Scope = n.Domain[:2].String()
			}
			ss[i].Strict = rng.IntN(2) == 0
		}
		cfg := Config{Level: []string{"zone", "rack", "host", "node"}[rng.IntN(4)]}
		p, err := Place(ns, ss, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, v := p.Dispersion(); v != 0 {
			for i, s := range p.Streams() {
				var ds []string
				for _, n := range p.Copies(i) {
					ds = append(ds, p.Nodes()[n].Domain.String())
				}
				t.Logf("%s R=%d scope=%q strict=%v: %v", s.ID, s.Replicas, s.Scope, s.Strict, ds)
			}
			for _, n := range p.Nodes() {
				t.Logf("node %s %s %s", n.ID, n.Domain, n.State)
			}
			t.Fatalf("case %d (level %s): %d violations", it, cfg.Level, v)
		}
		active := 0
		for _, n := range p.Nodes() {
			if n.State == Active {
				active++
			}
		}
		for i, s := range p.Streams() {
			c := p.Copies(i)
			if s.Scope == "" {
				continue
			}
			scope, _ := ParseDomain(s.Scope)
			shared := func(n int32) int {
				d := p.Nodes()[n].Domain
				l := 0
				for l < len(scope) && d[l] == scope[l] {
					l++
				}
				return l
			}
			inScope, levels := 0, map[int]int{}
			for _, n := range p.Nodes() {
				if n.State == Active {
					l := 0
					for l < len(scope) && n.Domain[l] == scope[l] {
						l++
					}
					levels[l]++
				}
			}
			inScope = levels[len(scope)]
			in := 0
			worst := len(scope)
			for _, n := range c {
				if shared(n) == len(scope) {
					in++
				}
				worst = min(worst, shared(n))
			}
			if s.Strict {
				if in != len(c) || len(c) != min(s.Replicas, inScope) {
					t.Fatalf("case %d: strict %s (scope %s, %d nodes): %d copies, %d inside", it, s.ID, s.Scope, inScope, len(c), in)
				}
				continue
			}
			if len(c) != min(s.Replicas, active) || in != min(len(c), inScope) {
				t.Fatalf("case %d: preferred %s (scope %s, %d nodes): %d copies, %d inside", it, s.ID, s.Scope, inScope, len(c), in)
			}
			// Nearest first: every node sharing more of the path than
			// the farthest copy holds a copy.
			closer := 0
			for l := worst + 1; l <= len(scope); l++ {
				closer += levels[l]
			}
			far := 0
			for _, n := range c {
				if shared(n) > worst {
					far++
				}
			}
			if far != closer {
				t.Fatalf("case %d: preferred %s went %d tiers out with %d closer nodes, %d of them used", it, s.ID, len(scope)-worst, closer, far)
			}
		}
	}
}

// TestTwoSites: a cluster over two sites, hq (6 nodes in 3 racks) and
// branch (2 nodes). Branch cameras with R=3: preferred ones get both branch
// nodes and one hq node; strict ones two copies, both at the branch. Scopes
// reports the fallback.
func TestTwoSites(t *testing.T) {
	var ns []Node
	for i := 0; i < 6; i++ {
		ns = append(ns, Node{ID: fmt.Sprintf("hq-%d", i), Weight: 1,
			Domain: Domain{{"zone", "hq"}, {"rack", fmt.Sprintf("r%d", i/2)}, {"host", fmt.Sprintf("hq%d", i)}}})
	}
	for i := 0; i < 2; i++ {
		ns = append(ns, Node{ID: fmt.Sprintf("br-%d", i), Weight: 1,
			Domain: Domain{{"zone", "branch"}, {"rack", fmt.Sprintf("b%d", i)}, {"host", fmt.Sprintf("br%d", i)}}})
	}
	var ss []Stream
	for i := 0; i < 40; i++ {
		ss = append(ss, Stream{ID: fmt.Sprintf("hq-cam-%02d", i), Weight: 1, Replicas: 2, Scope: "zone=hq"})
		ss = append(ss, Stream{ID: fmt.Sprintf("br-cam-%02d", i), Weight: 1, Replicas: 3, Scope: "zone=branch", Strict: i%2 == 0})
	}
	p, err := Place(ns, ss, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range p.Streams() {
		var hq, br int
		for _, n := range p.Copies(i) {
			if p.Nodes()[n].Domain[0].Value == "hq" {
				hq++
			} else {
				br++
			}
		}
		switch {
		case s.Scope == "zone=hq" && (hq != 2 || br != 0),
			s.Scope == "zone=branch" && s.Strict && (hq != 0 || br != 2),
			s.Scope == "zone=branch" && !s.Strict && (hq != 1 || br != 2):
			t.Errorf("%s (scope %s, strict %v): %d copies at hq, %d at the branch", s.ID, s.Scope, s.Strict, hq, br)
		}
	}
	sc := p.Scopes()
	if len(sc) != 2 || sc[0].Scope != "zone=branch" || sc[0].Outside != 20 || sc[0].OutsideStreams != 20 || sc[0].Short != 20 ||
		sc[0].Nodes != 2 || sc[1].Outside != 0 || sc[1].Short != 0 || sc[1].Nodes != 6 {
		t.Errorf("scopes: %+v", sc)
	}
	for _, st := range sc {
		for _, td := range st.Tiers {
			if td.Avoidable != 0 {
				t.Errorf("scope %s tier %s: %d avoidable", st.Scope, td.Tier, td.Avoidable)
			}
		}
	}
	// The Placer gives the same after the branch loses a node.
	pl, err := NewPlacer(ns, ss, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.RemoveNode("br-1"); err != nil {
		t.Fatal(err)
	}
	fresh, err := Place(ns[:7], ss, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if string(placementBytes(t, pl.Placement())) != string(placementBytes(t, fresh)) {
		t.Error("incremental placement with scopes differs from a fresh one")
	}
}

func TestBadScope(t *testing.T) {
	ns := topology(1, 2, 2, false, 1)
	for _, sc := range []string{"zone", "rack=r0", "zone=z0/host=h1", "zone=z0/rack=r0/host=h0/x=y", "zone=a=b"} {
		_, err := Place(ns, []Stream{{ID: "a", Weight: 1, Replicas: 1, Scope: sc}}, Config{})
		if !errors.Is(err, ErrBadScope) {
			t.Errorf("scope %q: err = %v, want ErrBadScope", sc, err)
		}
	}
	// A scope no node is in: strict places nothing, preferred places
	// anywhere.
	p, err := Place(ns, []Stream{{ID: "a", Weight: 1, Replicas: 2, Scope: "zone=elsewhere", Strict: true},
		{ID: "b", Weight: 1, Replicas: 2, Scope: "zone=elsewhere"}}, Config{})
	if err != nil || len(p.Copies(0)) != 0 || len(p.Copies(1)) != 2 {
		t.Fatalf("empty scope: %v", err)
	}
}
