package reconcile

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/placement"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const sec = time.Second

func member(id, domain string) Member {
	return Member{ID: id, Domain: domain, Weight: 1, State: placement.Active}
}

var (
	mA = member("a", "rack=r1")
	mB = member("b", "rack=r2")
	mC = member("c", "rack=r3")
)

func streams12() []Stream {
	var ss []Stream
	for i := range 12 {
		ss = append(ss, Stream{ID: fmt.Sprintf("s%02d", i), Replicas: 2, Weight: 1})
	}
	return ss
}

func newRec(self string, members ...Member) *Reconciler {
	r := New(Config{Self: self})
	r.SetStreams(streams12())
	r.SetMembers(t0, members)
	return r
}

func strs(as []Action) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// roleIn is the role placement gives node in copies (home first).
func roleIn(copies []string, node string) Role {
	switch i := slices.Index(copies, node); {
	case i < 0:
		return None
	case i == 0:
		return Home
	}
	return Replica
}

// onNode returns the streams placed on node, sorted.
func onNode(pl map[string][]string, node string) []string {
	var out []string
	for id, ns := range pl {
		if slices.Contains(ns, node) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func TestInitialPlacementAndRoles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []Member
	}{
		{"racks", []Member{mA, mB, mC}},
		{"no rack tier falls back to node", []Member{member("a", "host=h1"), member("b", "host=h2"), member("c", "host=h3")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first map[string][]string
			for _, self := range []string{"a", "b", "c"} {
				r := newRec(self, tc.members...)
				acts := r.Step(t0)
				pl := r.Placement()
				if first == nil {
					first = pl
				} else if !reflect.DeepEqual(pl, first) {
					t.Fatalf("%s computes %v, a computes %v", self, pl, first)
				}
				if len(pl) != 12 {
					t.Fatalf("placement has %d streams, want 12", len(pl))
				}
				var want []string
				for _, s := range streams12() {
					ns := pl[s.ID]
					if len(ns) != 2 || ns[0] == ns[1] {
						t.Fatalf("stream %s on %v, want 2 distinct nodes", s.ID, ns)
					}
					if role := roleIn(ns, self); role != None {
						want = append(want, fmt.Sprintf("start %s %s", s.ID, role))
					}
				}
				if got := strs(acts); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: actions\n%v\nwant\n%v", self, got, want)
				}
				for id, role := range r.Roles() {
					if role != roleIn(pl[id], self) {
						t.Fatalf("%s: role of %s is %s, placement %v", self, id, role, pl[id])
					}
				}
				if len(r.Roles()) != len(want) {
					t.Fatalf("%s: %d roles, %d starts", self, len(r.Roles()), len(want))
				}
				if got := r.Step(at(sec)); len(got) != 0 {
					t.Fatalf("%s: second step with no input acts: %v", self, strs(got))
				}
			}
		})
	}
}

func TestHomeDiesReplicaPromoted(t *testing.T) {
	promotions := 0
	for _, self := range []string{"a", "b", "c"} {
		for _, dead := range []Member{mA, mB, mC} {
			if dead.ID == self {
				continue
			}
			var live []Member
			for _, m := range []Member{mA, mB, mC} {
				if m.ID != dead.ID {
					live = append(live, m)
				}
			}
			r := newRec(self, mA, mB, mC)
			r.Step(t0)
			before, oldRoles := r.Placement(), r.Roles()
			r.SetMembers(at(3*sec), live)
			acts := r.Step(at(3 * sec))
			after := r.Placement()
			var want []string
			for _, s := range streams12() {
				if slices.Contains(after[s.ID], dead.ID) {
					t.Fatalf("dead %s still placed for %s: %v", dead.ID, s.ID, after[s.ID])
				}
				if len(after[s.ID]) != 2 {
					t.Fatalf("stream %s on %v after failover, want both survivors", s.ID, after[s.ID])
				}
				o, n := oldRoles[s.ID], roleIn(after[s.ID], self)
				switch {
				case o == None && n != None:
					want = append(want, fmt.Sprintf("start %s %s", s.ID, n))
				case o != n && n != None:
					want = append(want, fmt.Sprintf("change %s %s->%s", s.ID, o, n))
				}
				if before[s.ID][0] == dead.ID && o == Replica && n == Home {
					promotions++
				}
			}
			if got := strs(acts); !reflect.DeepEqual(got, want) {
				t.Fatalf("self %s, %s dies: actions\n%v\nwant\n%v", self, dead.ID, got, want)
			}
			for _, a := range acts {
				if a.Kind == Stop || (a.Kind == Start && oldRoles[a.Stream] != None) {
					t.Fatalf("failover restarts or stops a running session: %v", a)
				}
			}
		}
	}
	if promotions == 0 {
		t.Fatal("no replica was promoted to home in any scenario")
	}
}

// joinScenario: self a records with c while b is away; b joins at 1 s and
// counts from 11 s (RejoinHold 10 s). It returns the reconciler, the streams
// a loses to b, and the time of the loss.
func joinScenario(t *testing.T) (*Reconciler, []string, time.Time) {
	t.Helper()
	r := newRec("a", mA, mC)
	if got := r.Step(t0); len(got) != 12 {
		t.Fatalf("alone with c, a starts %d streams, want 12", len(got))
	}
	r.SetMembers(at(sec), []Member{mA, mB, mC})
	for s := 1; s <= 10; s++ {
		if got := r.Step(at(time.Duration(s) * sec)); len(got) != 0 {
			t.Fatalf("b under hold at %ds, yet actions %v", s, strs(got))
		}
	}
	loss := at(11 * sec)
	acts := r.Step(loss)
	pl := r.Placement()
	var lost []string
	for id, ns := range pl {
		if !slices.Contains(ns, "a") {
			lost = append(lost, id)
		}
		if len(ns) != 2 {
			t.Fatalf("after b counts, %s on %v", id, ns)
		}
	}
	slices.Sort(lost)
	if len(lost) == 0 {
		t.Fatal("b took no stream from a")
	}
	for _, a := range acts {
		if a.Kind != ChangeRole {
			t.Fatalf("b joining: a does %v, want only role changes", a)
		}
	}
	if roles := r.Roles(); len(roles) != 12 {
		t.Fatalf("a stopped before handoff: roles %v", roles)
	}
	return r, lost, loss
}

func TestHandoffWaitsForNewHolders(t *testing.T) {
	r, lost, loss := joinScenario(t)
	pl := r.Placement()
	r.Report(loss, "c", onNode(pl, "c"))
	if got := r.Step(loss.Add(sec)); len(got) != 0 {
		t.Fatalf("b has not reported, yet %v", strs(got))
	}
	// b reports the first lost stream only: exactly that one stops.
	r.Report(loss, "b", lost[:1])
	want := []string{fmt.Sprintf("stop %s %s handed-off", lost[0], r.Roles()[lost[0]])}
	if got := strs(r.Step(loss.Add(2 * sec))); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	r.Report(loss, "b", onNode(pl, "b"))
	roles := r.Roles()
	want = nil
	for _, id := range lost[1:] {
		if _, ok := roles[id]; ok {
			want = append(want, fmt.Sprintf("stop %s %s handed-off", id, roles[id]))
		}
	}
	if got := strs(r.Step(loss.Add(3 * sec))); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := onNode(r.Placement(), "a"); !reflect.DeepEqual(slices.Sorted(mapKeys(r.Roles())), got) {
		t.Fatalf("a records %v, placed %v", r.Roles(), got)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestHandoffTimeout(t *testing.T) {
	r, lost, loss := joinScenario(t)
	if d, ok := r.NextDeadline(loss); !ok || !d.Equal(loss.Add(30*sec)) {
		t.Fatalf("next deadline %v %v, want %v", d, ok, loss.Add(30*sec))
	}
	// b reports everything it holds, c nothing: no stream is handed off.
	r.Report(loss, "b", onNode(r.Placement(), "b"))
	if got := r.Step(loss.Add(29 * sec)); len(got) != 0 {
		t.Fatalf("before the timeout, c unreported: %v", strs(got))
	}
	roles := r.Roles()
	var want []string
	for _, id := range lost {
		if _, ok := roles[id]; ok {
			want = append(want, fmt.Sprintf("stop %s %s handoff-timeout", id, roles[id]))
		}
	}
	if len(want) != len(lost) {
		t.Fatalf("streams stopped before the timeout with c unreported: roles %v", roles)
	}
	if got := strs(r.Step(loss.Add(30 * sec))); !reflect.DeepEqual(got, want) {
		t.Fatalf("at timeout: got %v, want %v", got, want)
	}
	if _, ok := r.NextDeadline(loss.Add(30 * sec)); ok {
		t.Fatal("a deadline remains after every handoff ended")
	}
}

func TestPlacedBackCancelsStop(t *testing.T) {
	r, _, loss := joinScenario(t)
	roles := r.Roles()
	r.SetMembers(loss.Add(2*sec), []Member{mA, mC}) // b dies before the handoff
	acts := r.Step(loss.Add(2 * sec))
	for _, a := range acts {
		if a.Kind != ChangeRole {
			t.Fatalf("b dying mid-handoff: %v, want only role changes", a)
		}
	}
	if got := r.Roles(); len(got) != 12 || len(roles) != 12 {
		t.Fatalf("roles %v", got)
	}
	if got := r.Step(loss.Add(20 * sec)); len(got) != 0 {
		t.Fatalf("a cancelled stop fired: %v", strs(got))
	}
	// b comes back: the new loss at 33 s restarts the timeout; the first
	// loss's timeout (at 30 s) is forgotten.
	r.SetMembers(loss.Add(23*sec), []Member{mA, mB, mC})
	r.Step(loss.Add(33 * sec))
	if got := r.Step(loss.Add(62 * sec)); len(got) != 0 {
		t.Fatalf("stop before the second loss's timeout: %v", strs(got))
	}
	got := r.Step(loss.Add(63 * sec))
	if len(got) == 0 {
		t.Fatal("no stop at the second loss's timeout")
	}
	for _, a := range got {
		if a.Kind != Stop || a.Reason != StopTimeout {
			t.Fatalf("at the second timeout: %v", a)
		}
	}
}

func TestFlappingMemberCausesNoActions(t *testing.T) {
	for _, self := range []string{"a", "b"} {
		r := newRec(self, mA, mB, mC)
		r.Step(t0)
		stable := r.Placement()
		r.SetMembers(at(sec), []Member{mA, mB}) // c dies: failover at once
		if got := r.Step(at(sec)); len(got) == 0 {
			t.Fatalf("%s: c died and nothing moved", self)
		}
		failover := r.Placement()
		// c flaps: back at 3 s, gone at 5 s, ... back at 19 s, stays.
		for s := 2; s <= 28; s++ {
			now := at(time.Duration(s) * sec)
			if s%2 == 1 && s <= 17 {
				if s%4 == 3 {
					r.SetMembers(now, []Member{mA, mB, mC})
				} else {
					r.SetMembers(now, []Member{mA, mB})
				}
			}
			if s == 19 {
				r.SetMembers(now, []Member{mA, mB, mC})
			}
			acts := r.Step(now)
			if len(acts) != 0 {
				t.Fatalf("%s at %ds: flapping c caused %v", self, s, strs(acts))
			}
			if !reflect.DeepEqual(r.Placement(), failover) {
				t.Fatalf("%s at %ds: placement moved while c flaps", self, s)
			}
		}
		// c has been present since 19 s: it counts at 29 s.
		acts := r.Step(at(29 * sec))
		if !reflect.DeepEqual(r.Placement(), stable) {
			t.Fatalf("%s: c stable for RejoinHold, placement %v, want %v", self, r.Placement(), stable)
		}
		for _, a := range acts {
			if a.Kind != ChangeRole { // losses wait for the handoff
				t.Fatalf("%s: c counting again: %v", self, a)
			}
		}
		if len(r.Roles()) != 12 {
			t.Fatalf("%s: stopped before the handoff to c: %v", self, r.Roles())
		}
	}
}

func TestDeletedStreamStopsAtOnce(t *testing.T) {
	r, lost, loss := joinScenario(t)
	roles := r.Roles()
	kept := onNode(r.Placement(), "a")[0]
	var rest []Stream
	for _, s := range streams12() {
		if s.ID != kept && s.ID != lost[0] {
			rest = append(rest, s)
		}
	}
	r.SetStreams(rest) // one placed here, one waiting for its handoff
	want := []string{
		fmt.Sprintf("stop %s %s removed", kept, roles[kept]),
		fmt.Sprintf("stop %s %s removed", lost[0], roles[lost[0]]),
	}
	slices.Sort(want)
	var stops []string // the smaller catalog may also move roles
	for _, a := range r.Step(loss) {
		if a.Kind != ChangeRole {
			stops = append(stops, a.String())
		}
	}
	if !reflect.DeepEqual(stops, want) {
		t.Fatalf("got %v, want %v", stops, want)
	}
	if _, ok := r.Placement()[kept]; ok {
		t.Fatal("deleted stream still placed")
	}
}

func TestPlacementFailureOverRecords(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []Member
	}{
		{"domains of unlike tiers", []Member{mA, member("b", "zone=z/rack=r2"), mC}},
		{"every member draining", []Member{
			{ID: "a", Domain: "rack=r1", Weight: 1, State: placement.Draining},
			{ID: "b", Domain: "rack=r2", Weight: 1, State: placement.Draining},
			{ID: "c", Domain: "rack=r3", Weight: 1, State: placement.Saturated},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRec("b", tc.members...)
			acts := r.Step(t0)
			if len(acts) != 12 {
				t.Fatalf("b starts %v, want all 12", strs(acts))
			}
			for id, ns := range r.Placement() {
				if !reflect.DeepEqual(ns, []string{"a", "b", "c"}) {
					t.Fatalf("%s on %v, want every node", id, ns)
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shuffled := func(ms ...Member) []Member {
		ms = slices.Clone(ms)
		rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		return ms
	}
	run := func(shuffle bool) (trace []string) {
		ident := func(ms ...Member) []Member { return ms }
		mix := ident
		ss := streams12()
		if shuffle {
			mix = shuffled
			rng.Shuffle(len(ss), func(i, j int) { ss[i], ss[j] = ss[j], ss[i] })
		}
		r := New(Config{Self: "a"})
		r.SetStreams(ss)
		r.SetMembers(t0, mix(mA, mB, mC))
		step := func(now time.Time) {
			trace = append(trace, strs(r.Step(now))...)
			trace = append(trace, fmt.Sprint(r.Placement()))
		}
		step(t0)
		r.SetMembers(at(sec), mix(mA, mC))
		step(at(sec))
		r.SetMembers(at(2*sec), mix(mC, mB, mA))
		step(at(12 * sec))
		r.Report(at(13*sec), "b", []string{"s11", "s03", "s00", "s05", "s07"})
		r.Report(at(13*sec), "c", []string{"s01", "s02", "s04", "s06", "s08", "s09", "s10"})
		step(at(13 * sec))
		step(at(60 * sec))
		return trace
	}
	want := run(false)
	for range 5 {
		if got := run(true); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffled inputs:\n%v\nwant\n%v", got, want)
		}
	}
}

// TestFailedMember: a member that dies and is passed as Failed loses only
// its copies: every stream whose home moved is homed on a node that held
// it, no stream it did not hold changes. Back live, it counts as failed
// until the rejoin hold passes, then gets its old copies back. A member
// that fails before it ever counted stays out.
func TestFailedMember(t *testing.T) {
	four := []Member{mA, mB, mC, member("d", "rack=r4")}
	var ss []Stream
	for i := range 200 {
		ss = append(ss, Stream{ID: fmt.Sprintf("s%03d", i), Replicas: 2, Weight: 1})
	}
	r := New(Config{Self: "a"})
	r.SetStreams(ss)
	r.SetMembers(t0, four)
	r.Step(t0)
	before := r.Placement()
	failed := slices.Clone(four)
	failed[2].State = placement.Failed // c
	r.SetMembers(at(sec), failed)
	r.Step(at(sec))
	after := r.Placement()
	homesMoved := 0
	for _, s := range ss {
		b, a := before[s.ID], after[s.ID]
		if slices.Contains(a, "c") || len(a) != 2 {
			t.Fatalf("%s: %v after c failed", s.ID, a)
		}
		if !slices.Contains(b, "c") {
			if !slices.Equal(a, b) {
				t.Errorf("%s: %v -> %v without a copy on c", s.ID, b, a)
			}
			continue
		}
		if a[0] != b[0] {
			homesMoved++
			if !slices.Contains(b, a[0]) {
				t.Errorf("%s: home %s -> %s, which did not hold it (%v)", s.ID, b[0], a[0], b)
			}
		}
	}
	if homesMoved == 0 {
		t.Fatal("no home moved: c was home for nothing")
	}
	// Back live: failed during the hold, then its old placement.
	r.SetMembers(at(5*sec), four)
	r.Step(at(5 * sec))
	if got := r.Placement(); !reflect.DeepEqual(got, after) {
		t.Error("c back within the rejoin hold changed the placement")
	}
	r.SetMembers(at(16*sec), four)
	r.Step(at(16 * sec))
	if got := r.Placement(); !reflect.DeepEqual(got, before) {
		t.Error("c back past the rejoin hold does not get its old placement")
	}
	// A newcomer that fails within its hold was never counted: it stays out.
	e := member("e", "rack=r5")
	r.SetMembers(at(20*sec), append(slices.Clone(four), e))
	r.Step(at(20 * sec))
	e.State = placement.Failed
	r.SetMembers(at(22*sec), append(slices.Clone(four), e))
	r.Step(at(22 * sec))
	if got := r.Placement(); !reflect.DeepEqual(got, before) {
		t.Error("a member that failed before it counted changed the placement")
	}
}
