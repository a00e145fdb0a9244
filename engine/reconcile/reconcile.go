package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/understudy-nvr/understudy/placement"
)

// Role is what this node does for one stream.
type Role uint8

const (
	// None: the node does not record the stream.
	None Role = iota
	// Home: the node records the stream as its home copy.
	Home
	// Replica: the node records one of the other copies.
	Replica
)

// String returns "none", "home" or "replica".
func (r Role) String() string {
	switch r {
	case None:
		return "none"
	case Home:
		return "home"
	case Replica:
		return "replica"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Kind is the kind of an Action.
type Kind uint8

const (
	// Start a session for Stream in role To.
	Start Kind = iota + 1
	// ChangeRole of the running session of Stream from From to To; the
	// session keeps running, only its class changes.
	ChangeRole
	// Stop the session of Stream (which had role From) for Reason.
	Stop
)

// Reason is why a session stops.
type Reason string

// The reasons of a Stop.
const (
	// StopRemoved: the stream left the catalog; it stops at once.
	StopRemoved Reason = "removed"
	// StopHandedOff: every node now placed for the stream reports that it
	// records it.
	StopHandedOff Reason = "handed-off"
	// StopTimeout: Config.HandoffTimeout passed before the handoff completed.
	StopTimeout Reason = "handoff-timeout"
)

// Action is one thing the caller must do to its sessions.
type Action struct {
	Kind   Kind
	Stream string
	From   Role   // ChangeRole and Stop
	To     Role   // Start and ChangeRole
	Reason Reason // Stop
}

// String formats the action for logs and tests: "start s1 home",
// "change s1 replica->home", "stop s1 replica handed-off".
func (a Action) String() string {
	switch a.Kind {
	case Start:
		return fmt.Sprintf("start %s %s", a.Stream, a.To)
	case ChangeRole:
		return fmt.Sprintf("change %s %s->%s", a.Stream, a.From, a.To)
	case Stop:
		return fmt.Sprintf("stop %s %s %s", a.Stream, a.From, a.Reason)
	}
	return fmt.Sprintf("action(%d) %s", a.Kind, a.Stream)
}

// Member is a live member as membership reports it.
type Member struct {
	ID string
	// Domain is the failure-domain path, such as "zone=z0/rack=r3"; one
	// that does not parse is replaced by "host=<ID>".
	Domain string
	// Weight is the capacity weight, clamped to 1..placement.MaxNodeWeight.
	Weight int
	// State is passed to placement as is: draining and saturated members
	// get no copies; a failed one (known, down) keeps its place and only
	// its copies are replaced (see SetMembers).
	State placement.State
}

// Stream is one enabled catalog stream.
type Stream struct {
	ID string
	// Replicas is R, clamped to 1..placement.MaxReplicas.
	Replicas int
	// Weight is the load weight, clamped to 1..placement.MaxStreamWeight.
	Weight int
	// Scope keeps the copies under a failure-domain prefix (placement's
	// Stream.Scope); one that does not parse, or whose keys are not a
	// prefix of the members' tiers, is left out (the stream is placed
	// anywhere) rather than failing every stream's placement.
	Scope  string
	Strict bool
}

// Config tunes a Reconciler. The zero value with Self set is usable.
type Config struct {
	// Self is this node's member ID. Required.
	Self string
	// Level is the tier key the copies of a stream must not share.
	// Default "rack"; when placement refuses it, "node" is tried, and when
	// that is refused too every live node records every stream.
	Level string
	// Overload is placement's overload (placement.Config.Overload): how far
	// past its load bound a node may go so that copies stay unique at the
	// tiers above Level. Default 0.
	Overload float64
	// HandoffTimeout bounds make-before-break: a session whose role moved
	// elsewhere stops at the latest this long after the move.
	// Default 30s.
	HandoffTimeout time.Duration
	// RejoinHold is the hysteresis against flapping: a member that
	// (re)appears counts in placement only once it has been continuously
	// present this long. Default 10s.
	RejoinHold time.Duration
}

// EnsureDefaults applies the defaults documented on the fields.
func (c *Config) EnsureDefaults() {
	if c.Level == "" {
		c.Level = "rack"
	}
	if c.HandoffTimeout <= 0 {
		c.HandoffTimeout = 30 * time.Second
	}
	if c.RejoinHold <= 0 {
		c.RejoinHold = 10 * time.Second
	}
}

type present struct {
	Member
	since time.Time // start of the current continuous presence
	// wasFailed: the member came back from state Failed less than
	// RejoinHold ago; it counts as Failed until the hold passes.
	wasFailed bool
	// uncounted: the member failed before its rejoin hold passed, so
	// placement never counted it; it stays out while failed.
	uncounted bool
}

// Reconciler is the role state machine of one node. It is not safe for
// concurrent use; it reads no clock and starts no goroutine.
type Reconciler struct {
	cfg     Config
	streams map[string]Stream
	members map[string]present
	self    Member                     // last known self, used when membership omits it
	reports map[string]map[string]bool // node -> streams it says it records
	roles   map[string]Role            // sessions running here, by stream
	losing  map[string]time.Time       // stream -> when this node lost its role
	seeded  bool                       // SetMembers was called once

	place    map[string][]string
	placeKey string // effective members and streams place was computed from
}

// New returns a Reconciler that records nothing yet.
func New(cfg Config) *Reconciler {
	cfg.EnsureDefaults()
	return &Reconciler{
		cfg:     cfg,
		streams: map[string]Stream{},
		members: map[string]present{},
		self:    Member{ID: cfg.Self, Domain: "host=" + cfg.Self, Weight: 1, State: placement.Active},
		reports: map[string]map[string]bool{},
		roles:   map[string]Role{},
		losing:  map[string]time.Time{},
	}
}

// SetStreams replaces the catalog: the enabled streams.
func (r *Reconciler) SetStreams(streams []Stream) {
	r.streams = make(map[string]Stream, len(streams))
	for _, s := range streams {
		r.streams[s.ID] = s
	}
	r.placeKey = ""
}

// SetMembers replaces the members as seen at now: the live ones, and the
// known ones that are down in state placement.Failed (placement then
// replaces only their copies). A member absent from the list is gone, and
// what it reported is forgotten, as is what a failed one reported.
//
// The rejoin hold applies to live members only: a member that fails
// counts as failed at once, and one that comes back from failed counts as
// failed until it has been back for RejoinHold.
func (r *Reconciler) SetMembers(now time.Time, members []Member) {
	next := make(map[string]present, len(members))
	for _, m := range members {
		p, ok := r.members[m.ID]
		switch {
		case !ok:
			p.since, p.wasFailed = now, false
			if !r.seeded { // the members known at start count at once
				p.since = now.Add(-r.cfg.RejoinHold)
			}
		case p.State == placement.Failed && m.State != placement.Failed:
			p.since, p.wasFailed, p.uncounted = now, !p.uncounted, false
		case p.State != placement.Failed && m.State == placement.Failed:
			p.uncounted = now.Sub(p.since) < r.cfg.RejoinHold && !p.wasFailed
		}
		p.Member = m
		next[m.ID] = p
		if m.ID == r.cfg.Self {
			r.self = m
		}
		if m.State == placement.Failed {
			delete(r.reports, m.ID)
		}
	}
	for id := range r.members {
		if _, ok := next[id]; !ok {
			delete(r.reports, id)
		}
	}
	r.members = next
	r.seeded = true
}

// Report records what a peer says it records now (its whole set).
func (r *Reconciler) Report(now time.Time, node string, recording []string) {
	if node == r.cfg.Self || r.members[node].State == placement.Failed {
		return
	}
	set := make(map[string]bool, len(recording))
	for _, s := range recording {
		set[s] = true
	}
	r.reports[node] = set
}

// effective returns the members placement counts at now, sorted by ID:
// self always, failed members at once, the others once present for
// RejoinHold (failed until then when they came back from failed).
func (r *Reconciler) effective(now time.Time) []Member {
	out := []Member{r.self}
	for id, p := range r.members {
		switch {
		case id == r.cfg.Self:
		case p.State == placement.Failed:
			if !p.uncounted {
				out = append(out, p.Member)
			}
		case now.Sub(p.since) >= r.cfg.RejoinHold:
			out = append(out, p.Member)
		case p.wasFailed:
			m := p.Member
			m.State = placement.Failed
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// FitsTiers reports whether scope parses and its keys are a prefix of the
// tiers of the nodes' domains (which placement requires of every scope).
func FitsTiers(scope string, nodes []placement.Node) bool {
	if scope == "" || len(nodes) == 0 {
		return false
	}
	d, err := placement.ParseDomain(scope)
	if err != nil || len(d) > len(nodes[0].Domain) {
		return false
	}
	for i, t := range d {
		if nodes[0].Domain[i].Key != t.Key {
			return false
		}
	}
	return true
}

// compute refreshes r.place from the effective members and the streams.
func (r *Reconciler) compute(now time.Time) {
	ms := r.effective(now)
	var key strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&key, "%q %q %d %d\n", m.ID, m.Domain, m.Weight, m.State)
	}
	if key.String() == r.placeKey && r.place != nil {
		return
	}
	r.placeKey = key.String()

	pn := make([]placement.Node, 0, len(ms))
	all := make([]string, 0, len(ms))
	for _, m := range ms {
		d, err := placement.ParseDomain(m.Domain)
		if err != nil {
			d = placement.Domain{{Key: "host", Value: m.ID}}
		}
		pn = append(pn, placement.Node{ID: m.ID, Domain: d, Weight: int64(min(max(m.Weight, 1), placement.MaxNodeWeight)), State: m.State})
		all = append(all, m.ID)
	}
	ps := make([]placement.Stream, 0, len(r.streams))
	for _, s := range r.streams {
		st := placement.Stream{
			ID:       s.ID,
			Weight:   int64(min(max(s.Weight, 1), placement.MaxStreamWeight)),
			Replicas: min(max(s.Replicas, 1), placement.MaxReplicas),
		}
		if FitsTiers(s.Scope, pn) {
			st.Scope, st.Strict = s.Scope, s.Strict
		}
		ps = append(ps, st)
	}
	p, err := placement.Place(pn, ps, placement.Config{Level: r.cfg.Level, Overload: r.cfg.Overload})
	if err != nil && r.cfg.Level != "node" {
		p, err = placement.Place(pn, ps, placement.Config{Level: "node", Overload: r.cfg.Overload})
	}
	r.place = make(map[string][]string, len(r.streams))
	for id := range r.streams {
		var ids []string
		if err == nil {
			ids = p.Lookup(id)
		}
		if len(ids) == 0 { // refused, or no active member: over-record
			ids = all
		}
		r.place[id] = ids
	}
}

// want is the role placement gives this node for stream id.
func (r *Reconciler) want(id string) Role {
	i := slices.Index(r.place[id], r.cfg.Self)
	switch {
	case i < 0:
		return None
	case i == 0:
		return Home
	}
	return Replica
}

// handedOff reports whether every node placed for id records it.
func (r *Reconciler) handedOff(id string) bool {
	for _, n := range r.place[id] {
		if !r.reports[n][id] {
			return false
		}
	}
	return true
}

// Step advances the machine to now and returns the actions to take, sorted
// by stream. The caller applies them all before the next input; it calls
// Step after every input and periodically (holds and timeouts expire only
// in Step).
func (r *Reconciler) Step(now time.Time) []Action {
	r.compute(now)
	ids := make([]string, 0, len(r.streams)+len(r.roles))
	for id := range r.streams {
		ids = append(ids, id)
	}
	for id := range r.roles {
		if _, ok := r.streams[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []Action
	for _, id := range ids {
		cur := r.roles[id]
		_, inCatalog := r.streams[id]
		want := r.want(id)
		switch {
		case !inCatalog:
			out = append(out, Action{Kind: Stop, Stream: id, From: cur, Reason: StopRemoved})
			delete(r.roles, id)
			delete(r.losing, id)
		case want != None:
			delete(r.losing, id) // placed back before the stop: no churn
			if cur == None {
				out = append(out, Action{Kind: Start, Stream: id, To: want})
			} else if cur != want {
				out = append(out, Action{Kind: ChangeRole, Stream: id, From: cur, To: want})
			}
			r.roles[id] = want
		case cur != None:
			lost, ok := r.losing[id]
			if !ok {
				lost = now
				r.losing[id] = now
			}
			reason := Reason("")
			if r.handedOff(id) {
				reason = StopHandedOff
			} else if now.Sub(lost) >= r.cfg.HandoffTimeout {
				reason = StopTimeout
			}
			if reason != "" {
				out = append(out, Action{Kind: Stop, Stream: id, From: cur, Reason: reason})
				delete(r.roles, id)
				delete(r.losing, id)
			}
		}
	}
	return out
}

// NextDeadline returns the earliest time after now at which Step may act
// without new input (a rejoin hold or a handoff timeout ending), or false.
func (r *Reconciler) NextDeadline(now time.Time) (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for id, p := range r.members {
		if id != r.cfg.Self {
			consider(p.since.Add(r.cfg.RejoinHold))
		}
	}
	for _, t := range r.losing {
		consider(t.Add(r.cfg.HandoffTimeout))
	}
	return next, !next.IsZero()
}

// Placement returns the placement as of the last Step: for each stream its
// nodes, the home first. The caller may modify it.
func (r *Reconciler) Placement() map[string][]string {
	out := make(map[string][]string, len(r.place))
	for id, ns := range r.place {
		out[id] = slices.Clone(ns)
	}
	return out
}

// Roles returns the sessions this node runs after the last Step, with their
// role; a session waiting for its handoff keeps the role it had.
func (r *Reconciler) Roles() map[string]Role {
	out := make(map[string]Role, len(r.roles))
	for id, role := range r.roles {
		out[id] = role
	}
	return out
}
