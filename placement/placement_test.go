package placement

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFixedPointLog checks the integer log table against float math (the
// table itself never uses float) and pins scores to known values, so a
// change of ranking on any architecture fails here.
func TestFixedPointLog(t *testing.T) {
	for i := 0; i <= logTableSize; i++ {
		want := math.Log2(1+float64(i)/logTableSize) * (1 << 32)
		if d := math.Abs(float64(log2Table[i]) - want); d > 2 {
			t.Fatalf("log2Table[%d] = %d, want %.1f", i, log2Table[i], want)
		}
	}
	for _, h := range []uint64{1, 2, 3, 1 << 32, 1<<63 + 12345, math.MaxUint64, 0x123456789abcdef} {
		want := -math.Log2(float64(h)/math.Exp2(64)) * (1 << 32)
		if d := math.Abs(float64(negLog2(h)) - want); d > want*1e-6+4 {
			t.Errorf("negLog2(%#x) = %d, want %.0f", h, negLog2(h), want)
		}
	}
	// Pinned values: identical on every architecture.
	got := fmt.Sprint(hashString("cam-000001"), pairHash(1, 2), score(0x123456789abcdef, reciprocal(3)), score(math.MaxUint64, reciprocal(1)))
	const want = "7244412861419305784 16706431460607536361 93840378923668821 8388607"
	if got != want {
		t.Errorf("pinned hash/score values = %s, want %s", got, want)
	}
}

// randomCase makes a small random topology and stream set.
func randomCase(rng *rand.Rand) ([]Node, []Stream, Config) {
	zones, racks, hosts := 1+rng.IntN(3), 1+rng.IntN(4), 1+rng.IntN(4)
	ns := topology(zones, racks, hosts, rng.IntN(2) == 0, rng.Uint64())
	for i := range ns {
		switch rng.IntN(10) {
		case 0:
			ns[i].State = Draining
		case 1:
			ns[i].State = Saturated
		}
	}
	ss := streamSet(50+rng.IntN(400), 1, rng.IntN(2) == 0, rng.Uint64())
	for i := range ss {
		ss[i].Replicas = 1 + rng.IntN(4)
	}
	cfg := Config{Level: []string{"zone", "rack", "host", "node"}[rng.IntN(4)], Epsilon: []float64{0, 0.05, 0.25}[rng.IntN(3)]}
	return ns, ss, cfg
}

func placementBytes(t *testing.T, p *Placement) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := p.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// checkCopies checks that every stream has min(R, active) distinct active
// nodes.
func checkCopies(t *testing.T, it int, p *Placement) {
	t.Helper()
	active := 0
	for _, n := range p.Nodes() {
		if n.State == Active {
			active++
		}
	}
	for i, s := range p.Streams() {
		c := p.Copies(i)
		if len(c) != min(s.Replicas, active) {
			t.Fatalf("case %d: stream %s has %d copies, want min(%d, %d)", it, s.ID, len(c), s.Replicas, active)
		}
		for j, n := range c {
			if p.Nodes()[n].State != Active {
				t.Fatalf("case %d: stream %s on %s node %s", it, s.ID, p.Nodes()[n].State, p.Nodes()[n].ID)
			}
			for _, m := range c[:j] {
				if m == n {
					t.Fatalf("case %d: stream %s twice on %s", it, s.ID, p.Nodes()[n].ID)
				}
			}
		}
	}
}

// TestProperties checks on 200 random inputs (uneven zones and racks,
// weights, draining and saturated nodes): every stream gets min(R,
// active) distinct active nodes; copies never share a domain at the level
// while enough domains exist; and with the overload knob open (or the cap
// off) no tier has avoidable sharing.
func TestProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for it := 0; it < 200; it++ {
		ns, ss, cfg := randomCase(rng)
		if it%2 == 1 {
			ns = unevenTopology(rng, rng.IntN(2) == 0)
		}
		for _, c := range []Config{cfg, {Level: cfg.Level, Epsilon: cfg.Epsilon, Overload: 100}, {Level: cfg.Level, NoLoadCap: true}} {
			p, err := Place(ns, ss, c)
			if err != nil {
				t.Fatal(err)
			}
			checkCopies(t, it, p)
			tiers, v := p.Dispersion()
			if v != 0 {
				t.Fatalf("case %d (%+v): %d failure-domain violations", it, c, v)
			}
			if c.Overload == 0 && !c.NoLoadCap {
				continue
			}
			for _, td := range tiers {
				if td.Avoidable != 0 {
					t.Fatalf("case %d (%+v): tier %s: %d streams share a domain avoidably", it, c, td.Tier, td.Avoidable)
				}
			}
		}
	}
}

// TestBalancedNoSharing: on topologies whose zones and racks are alike,
// the default cap never forces copies to share a domain at any tier.
func TestBalancedNoSharing(t *testing.T) {
	for _, c := range []struct {
		zones, racks, hosts, r int
		weighted               bool
	}{{4, 5, 5, 2, false}, {4, 5, 5, 3, true}, {2, 4, 5, 3, false}, {3, 3, 4, 4, true}, {1, 4, 10, 3, false}} {
		ns := topology(c.zones, c.racks, c.hosts, c.weighted, 21)
		p, err := Place(ns, streamSet(20000, c.r, c.weighted, 21), Config{})
		if err != nil {
			t.Fatal(err)
		}
		tiers, v := p.Dispersion()
		for _, td := range tiers {
			if td.Avoidable != 0 || v != 0 {
				t.Errorf("%+v: tier %+v, violations %d", c, td, v)
			}
		}
		if b := p.Balance(); b.MaxOverFairCopies > 1.10 || b.MaxOverFairHomes > 1.10 {
			t.Errorf("%+v: max/fair copies %.3f homes %.3f", c, b.MaxOverFairCopies, b.MaxOverFairHomes)
		}
	}
}

// TestOverloadTrade: with a small zone (R=3 over zones of 50, 50 and 5
// nodes: the third zone cannot take a copy of every stream within its
// cap), the cap makes some streams share a zone; Overload lets the small
// zone's nodes past their cap instead, and a large Overload removes the
// sharing. The level (rack) is never shared.
func TestOverloadTrade(t *testing.T) {
	var ns []Node
	for z, hosts := range []int{50, 50, 5} {
		for h := 0; h < hosts; h++ {
			ns = append(ns, Node{ID: fmt.Sprintf("n%d-%02d", z, h), Weight: 1,
				Domain: Domain{{"zone", fmt.Sprint(z)}, {"rack", fmt.Sprintf("%d-%d", z, h%5)}, {"host", fmt.Sprintf("%d-%d", z, h)}}})
		}
	}
	ss := streamSet(20000, 3, false, 5)
	prev := -1
	for _, ov := range []float64{0, 0.25, 100} {
		p, err := Place(ns, ss, Config{Overload: ov})
		if err != nil {
			t.Fatal(err)
		}
		tiers, v := p.Dispersion()
		if v != 0 {
			t.Fatalf("overload %v: %d violations", ov, v)
		}
		zone := tiers[0].Avoidable
		if prev >= 0 && zone >= prev {
			t.Errorf("overload %v: %d streams share a zone, not fewer than %d", ov, zone, prev)
		}
		if ov == 0 && zone == 0 {
			t.Errorf("overload 0: no zone sharing: the test topology does not exercise the cap")
		}
		if ov == 100 && zone != 0 {
			t.Errorf("overload 100: %d streams share a zone", zone)
		}
		b := p.Balance()
		t.Logf("overload %v: %d of %d streams share a zone, max/fair copies %.3f", ov, zone, len(ss), b.MaxOverFairCopies)
		if lim := 1.10 + ov + 0.001; b.MaxOverFairCopies > lim {
			t.Errorf("overload %v: max/fair copies %.3f over %.3f", ov, b.MaxOverFairCopies, lim)
		}
		prev = zone
	}
}

// TestCapsHold places unit-weight streams, where the caps are always
// feasible, and checks every load against ⌊(1+ε)·fair⌋ (or ⌈fair⌉).
func TestCapsHold(t *testing.T) {
	for _, weighted := range []bool{false, true} {
		ns := topology(2, 5, 4, weighted, 3)
		ss := streamSet(3000, 3, false, 3)
		for _, eps := range []float64{0.02, 0.10, 0.5} {
			p, err := Place(ns, ss, Config{Epsilon: eps})
			if err != nil {
				t.Fatal(err)
			}
			b := p.Balance()
			for _, nb := range b.Nodes {
				capC := max(math.Floor((1+eps)*nb.TargetCopies+1e-9), math.Ceil(nb.TargetCopies-1e-9))
				capH := max(math.Floor((1+eps)*nb.TargetHomes+1e-9), math.Ceil(nb.TargetHomes-1e-9))
				// With ε = 2% the home caps leave room for about one stream
				// per node: a stream whose copies are all home-full then
				// overflows one (reported, never silent).
				if float64(nb.Copies) > capC || (eps >= 0.1 && float64(nb.Homes) > capH) {
					t.Errorf("weighted=%v eps=%v node %s: copies %d (cap %.0f), homes %d (cap %.0f)",
						weighted, eps, nb.ID, nb.Copies, capC, nb.Homes, capH)
				}
			}
			if b.MaxOverFairCopies > 1+eps+0.01 || (eps >= 0.1 && b.MaxOverFairHomes > 1+eps+0.02) {
				t.Errorf("weighted=%v eps=%v: max/fair copies %.3f homes %.3f", weighted, eps, b.MaxOverFairCopies, b.MaxOverFairHomes)
			}
		}
	}
}

// TestShuffledInputSameBytes: the order of the input does not matter.
func TestShuffledInputSameBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for it := 0; it < 30; it++ {
		ns, ss, cfg := randomCase(rng)
		p1, err := Place(ns, ss, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rng.Shuffle(len(ns), func(i, j int) { ns[i], ns[j] = ns[j], ns[i] })
		rng.Shuffle(len(ss), func(i, j int) { ss[i], ss[j] = ss[j], ss[i] })
		p2, err := Place(ns, ss, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(placementBytes(t, p1), placementBytes(t, p2)) {
			t.Fatalf("case %d: shuffled input gives a different placement", it)
		}
	}
}

// TestPlacerMatchesPlace: incremental changes give exactly what a fresh
// Place gives on the new nodes, including when candidate lists run short.
func TestPlacerMatchesPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	ns := topology(2, 4, 5, true, 11)
	ss := streamSet(2000, 3, true, 11)
	pl, err := NewPlacer(ns, ss, Config{})
	if err != nil {
		t.Fatal(err)
	}
	cur := append([]Node(nil), ns...)
	for step := 0; step < 60; step++ {
		switch op := rng.IntN(4); {
		case op == 0 && len(cur) > 4:
			i := rng.IntN(len(cur))
			if err := pl.RemoveNode(cur[i].ID); err != nil {
				t.Fatal(err)
			}
			cur = append(cur[:i], cur[i+1:]...)
		case op == 1:
			n := Node{ID: fmt.Sprintf("added-%d", step), Domain: cur[rng.IntN(len(cur))].Domain, Weight: 1 + rng.Int64N(4)}
			if err := pl.UpsertNode(n); err != nil {
				t.Fatal(err)
			}
			cur = append(cur, n)
		case op == 2:
			i := rng.IntN(len(cur))
			cur[i].Weight = 1 + rng.Int64N(8)
			if err := pl.UpsertNode(cur[i]); err != nil {
				t.Fatal(err)
			}
		default:
			i := rng.IntN(len(cur))
			cur[i].State = State(rng.IntN(4))
			if err := pl.UpsertNode(cur[i]); err != nil {
				t.Fatal(err)
			}
		}
		fresh, err := Place(cur, ss, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(placementBytes(t, pl.Placement()), placementBytes(t, fresh)) {
			t.Fatalf("step %d: incremental placement differs from a fresh one", step)
		}
	}
}

// TestNoCapMovementExactlyOptimal: without the load cap, removing, adding or
// re-weighting a node moves exactly the optimal number of copies.
func TestNoCapMovementExactlyOptimal(t *testing.T) {
	ns := topology(2, 5, 10, true, 5)
	ss := streamSet(20000, 3, true, 5)
	f := measure(t, ns, ss, Config{NoLoadCap: true}, 5)
	for k, name := range changeKinds {
		if f.moved[k] != f.opt[k] || f.opt[k] == 0 {
			t.Errorf("%s: moved %d, optimal %d", name, f.moved[k], f.opt[k])
		}
	}
}

// TestFailoverKeepsCopies: with the cap on, movement stays near optimal and
// a failed home's streams mostly go to a node that already recorded them.
func TestFailoverKeepsCopies(t *testing.T) {
	ns := topology(2, 5, 10, false, 6)
	ss := streamSet(20000, 3, false, 6)
	f := measure(t, ns, ss, Config{}, 5)
	if r := ratio(f.moved[0], f.opt[0]); r > 1.3 {
		t.Errorf("removal moved %.3f× optimal", r)
	}
	if pct := 100 * ratio(f.toCopy, f.failedOver); pct < 90 {
		t.Errorf("only %.1f%% of failed-over streams went to a node with a copy", pct)
	}
}

// TestDomainShortfall: with fewer racks than R, copies spread over hosts
// and the shortfall is reported at the rack tier, not as a violation.
func TestDomainShortfall(t *testing.T) {
	ns := topology(1, 2, 3, false, 1)
	ss := streamSet(300, 3, false, 1)
	p, err := Place(ns, ss, Config{})
	if err != nil {
		t.Fatal(err)
	}
	tiers, v := p.Dispersion()
	if v != 0 {
		t.Fatalf("violations = %d", v)
	}
	for _, td := range tiers {
		switch td.Tier {
		case "rack":
			if td.Shared != 300 || td.Avoidable != 0 {
				t.Errorf("rack tier: %+v, want all 300 shared, none avoidable", td)
			}
		case "host":
			if td.Shared != 0 {
				t.Errorf("host tier: %+v, want none shared", td)
			}
		}
	}
}

// TestInactiveNodesTakeNothing: draining and saturated nodes hold no copies.
func TestInactiveNodesTakeNothing(t *testing.T) {
	ns := topology(1, 4, 4, false, 2)
	ns[0].State, ns[5].State = Draining, Saturated
	p, err := Place(ns, streamSet(2000, 2, false, 2), Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range p.Balance().Nodes {
		if nb.State != Active && nb.CopyCount != 0 {
			t.Errorf("%s node %s holds %d copies", nb.State, nb.ID, nb.CopyCount)
		}
	}
}

func TestBadInput(t *testing.T) {
	good := topology(1, 2, 2, false, 1)
	ss := streamSet(10, 2, false, 1)
	mod := func(f func([]Node)) []Node {
		ns := append([]Node(nil), good...)
		f(ns)
		return ns
	}
	cases := []struct {
		name  string
		nodes []Node
		ss    []Stream
		cfg   Config
		want  error
	}{
		{"duplicate node", mod(func(ns []Node) { ns[1].ID = ns[0].ID }), ss, Config{}, ErrDuplicateID},
		{"zero weight", mod(func(ns []Node) { ns[1].Weight = 0 }), ss, Config{}, ErrBadWeight},
		{"negative weight", mod(func(ns []Node) { ns[1].Weight = -2 }), ss, Config{}, ErrBadWeight},
		{"other tiers", mod(func(ns []Node) { ns[1].Domain = Domain{{"dc", "x"}} }), ss, Config{}, ErrBadDomain},
		{"no domain", mod(func(ns []Node) { ns[1].Domain = nil }), ss, Config{}, ErrBadDomain},
		{"unknown level", good, ss, Config{Level: "room"}, ErrBadConfig},
		{"negative epsilon", good, ss, Config{Epsilon: -1}, ErrBadConfig},
		{"negative overload", good, ss, Config{Overload: -0.5}, ErrBadConfig},
		{"NaN overload", good, ss, Config{Overload: math.NaN()}, ErrBadConfig},
		{"duplicate stream", good, []Stream{{ID: "a", Weight: 1, Replicas: 1}, {ID: "a", Weight: 1, Replicas: 1}}, Config{}, ErrDuplicateID},
		{"zero replicas", good, []Stream{{ID: "a", Weight: 1}}, Config{}, ErrBadReplicas},
		{"stream weight", good, []Stream{{ID: "a", Replicas: 1}}, Config{}, ErrBadWeight},
		{"empty id", good, []Stream{{Weight: 1, Replicas: 1}}, Config{}, ErrBadID},
	}
	for _, c := range cases {
		if _, err := Place(c.nodes, c.ss, c.cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	for _, d := range []string{"", "zone", "zone=", "=a", "zone=a/zone=b", "zone=a=b", "zone=a//rack=b"} {
		if _, err := ParseDomain(d); !errors.Is(err, ErrBadDomain) {
			t.Errorf("ParseDomain(%q) = %v, want ErrBadDomain", d, err)
		}
	}
	if d, err := ParseDomain("zone=a/rack=r1/host=h1"); err != nil || d.String() != "zone=a/rack=r1/host=h1" {
		t.Errorf("ParseDomain round trip: %v %v", d, err)
	}
}

// TestEdgeCases: no active node, no stream, one node.
func TestEdgeCases(t *testing.T) {
	ns := topology(1, 2, 2, false, 1)
	for i := range ns {
		ns[i].State = Draining
	}
	p, err := Place(ns, streamSet(10, 2, false, 1), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Copies(0); len(c) != 0 {
		t.Errorf("copies on draining nodes: %v", c)
	}
	if _, v := p.Dispersion(); v != 0 {
		t.Errorf("violations %d", v)
	}
	if m := Compare(p, p); m.UnderReplicated != 10 || m.CopiesMoved != 0 {
		t.Errorf("compare: %+v", m)
	}
	if _, err := Place(ns, nil, Config{}); err != nil {
		t.Errorf("no streams: %v", err)
	}
	if _, err := Place(nil, streamSet(3, 1, false, 1), Config{}); err != nil {
		t.Errorf("no nodes: %v", err)
	}
	one, err := Place(topology(1, 1, 1, false, 1), streamSet(5, 3, false, 1), Config{})
	if err != nil || len(one.Copies(0)) != 1 || one.Lookup("cam-000000")[0] != "node-0000" {
		t.Errorf("one node: %v %v", err, one.Lookup("cam-000000"))
	}
}

// TestCandidatesArePrefix: every candidate list is exactly the start of the
// stream's full preference order (fill takes shortcuts; this is the check).
func TestCandidatesArePrefix(t *testing.T) {
	for _, weighted := range []bool{false, true} {
		ns := topology(4, 10, 25, weighted, 4) // groups large enough for the threshold path
		ss := streamSet(2000, 2, false, 4)
		p, err := NewPlacer(ns, ss, Config{})
		if err != nil {
			t.Fatal(err)
		}
		buf, rk := make([]int32, 0, len(ns)), make([]rank, len(ns))
		for s := range ss {
			full := p.fullOrder(s, buf, rk)
			got := p.cand[s*candidates : s*candidates+int(p.candN[s])]
			if len(got) != candidates {
				t.Fatalf("stream %d: %d candidates", s, len(got))
			}
			for i := range got {
				if got[i] != full[i] {
					t.Fatalf("weighted=%v stream %d: candidates %v, order starts %v", weighted, s, got, full[:candidates])
				}
			}
		}
	}
}

// TestMovementTargets: single-node failures, additions, drains and
// re-weights (20 of each) on 4 zones × 5 racks × 5 hosts, R=2 and R=3,
// weighted and not: movement near optimal, every placement within the
// caps, and every failed home taken over by a holder (a failed node is
// known: only its copies are replaced).
func TestMovementTargets(t *testing.T) {
	for _, bc := range benchCases {
		ns := topology(4, 5, 5, bc.weighted, 31)
		ss := streamSet(20000, bc.r, bc.weighted, 31)
		f := measure(t, ns, ss, Config{}, 20)
		for k, name := range changeKinds {
			r := ratio(f.moved[k], f.opt[k])
			t.Logf("%s %s: moved %.3f× optimal", bc.name, name, r)
			if r > 1.15 {
				t.Errorf("%s %s: moved %.3f× optimal", bc.name, name, r)
			}
		}
		held := 100 * ratio(f.toCopy, f.failedOver)
		t.Logf("%s: max/fair copies %.3f homes %.3f, failed homes to a holder %.1f%%", bc.name, f.maxCopies, f.maxHomes, held)
		if f.maxCopies > 1.10 || f.maxHomes > 1.10 {
			t.Errorf("%s: max/fair copies %.3f homes %.3f", bc.name, f.maxCopies, f.maxHomes)
		}
		if held < 99 {
			t.Errorf("%s: %.1f%% of failed homes went to a holder", bc.name, held)
		}
	}
}

// TestFailedNode: a node that failed (known and down) loses its copies
// and nothing else moves: every stream keeps its other copies, a stream
// it was home for is homed on a surviving copy, each stream has R copies
// as unique as the others allow, no copy is on the failed node; back
// active, the node gets exactly its old copies and homes.
func TestFailedNode(t *testing.T) {
	for _, bc := range benchCases {
		ns := topology(4, 5, 5, bc.weighted, 41)
		ss := streamSet(10000, bc.r, bc.weighted, 41)
		pl, err := NewPlacer(ns, ss, Config{})
		if err != nil {
			t.Fatal(err)
		}
		base := pl.Placement()
		victim := ns[37]
		failed := victim
		failed.State = Failed
		if err := pl.UpsertNode(failed); err != nil {
			t.Fatal(err)
		}
		after := pl.Placement()
		fresh, err := Place(append(slices.Clone(ns[:37]), append([]Node{failed}, ns[38:]...)...), ss, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(placementBytes(t, after), placementBytes(t, fresh)) {
			t.Fatalf("%s: incremental placement with a failed node differs from a fresh one", bc.name)
		}
		var homesFailed, onHolder, untouched int
		for _, st := range ss {
			b, a := base.Lookup(st.ID), after.Lookup(st.ID)
			if len(a) != st.Replicas || slices.Contains(a, victim.ID) {
				t.Fatalf("%s %s: copies %v after %s failed", bc.name, st.ID, a, victim.ID)
			}
			if !slices.Contains(b, victim.ID) {
				bs, as := slices.Sorted(slices.Values(b)), slices.Sorted(slices.Values(a))
				if !slices.Equal(bs, as) {
					t.Errorf("%s %s: copies %v -> %v without a copy on the failed node", bc.name, st.ID, b, a)
				}
				untouched++
				continue
			}
			for _, n := range b {
				if n != victim.ID && !slices.Contains(a, n) {
					t.Errorf("%s %s: surviving copy %s dropped: %v -> %v", bc.name, st.ID, n, b, a)
				}
			}
			if b[0] == victim.ID {
				homesFailed++
				if slices.Contains(b, a[0]) {
					onHolder++
				}
			}

		}
		if homesFailed == 0 || onHolder != homesFailed {
			t.Errorf("%s: %d of %d failed homes on a holder", bc.name, onHolder, homesFailed)
		}
		tiers, v := after.Dispersion()
		for _, td := range tiers {
			if td.Avoidable != 0 {
				t.Errorf("%s: tier %s: %d avoidable shared domains with a node failed", bc.name, td.Tier, td.Avoidable)
			}
		}
		if v != 0 {
			t.Errorf("%s: %d level violations", bc.name, v)
		}
		if err := pl.UpsertNode(victim); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(placementBytes(t, pl.Placement()), placementBytes(t, base)) {
			t.Errorf("%s: back active, the node does not get its old placement", bc.name)
		}
		t.Logf("%s: %s failed: %d homes to a holder of %d, %d streams untouched of %d", bc.name, victim.ID, onHolder, homesFailed, untouched, len(ss))
	}
}
