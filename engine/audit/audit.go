// Package audit is the leader's cluster-wide check that every enabled
// stream has R live recorders receiving media. It is a pure state machine:
// each Step takes what the leader knows now (placement, live members, who
// reports recording what) and returns the streams whose replication state
// changed, with a grace period so a failover that completes in seconds
// raises nothing.
package audit

import (
	"hash/fnv"
	"slices"
	"time"
)

// Leader returns the live node that runs the cluster-wide jobs: the one
// ranked first by rendezvous hash of a fixed key, so every node that sees
// the same members names the same leader, and a leader's death moves the
// job to one node only.
func Leader(alive []string) string {
	best, bestScore := "", uint64(0)
	for _, id := range alive {
		h := fnv.New64a()
		h.Write([]byte("understudy leader\x00"))
		h.Write([]byte(id))
		if s := h.Sum64(); best == "" || s > bestScore || (s == bestScore && id < best) {
			best, bestScore = id, s
		}
	}
	return best
}

// State is a stream's replication state.
type State int

const (
	// Replicated: at least min(R, live nodes) recorders receive media.
	Replicated State = iota
	// UnderReplicated: fewer, but at least one.
	UnderReplicated
	// Nowhere: no live node records the stream.
	Nowhere
)

func (s State) String() string {
	switch s {
	case UnderReplicated:
		return "under-replicated"
	case Nowhere:
		return "recorded nowhere"
	}
	return "replicated"
}

// Stream is an enabled stream and its R.
type Stream struct {
	ID       string
	Replicas int
}

// Input is what the leader knows at one step.
type Input struct {
	Streams []Stream
	// Placement gives each stream's placed nodes.
	Placement map[string][]string
	// Alive are the live members.
	Alive []string
	// Records reports whether node records stream with media flowing.
	Records func(node, stream string) bool
}

// Change is a stream whose state changed (after the grace period).
type Change struct {
	Stream     string
	State      State
	Recorders  []string // the live nodes recording it
	Want       int      // min(R, live nodes)
	Since      time.Time
	Replicated bool // back to Replicated after a reported problem
}

// Auditor keeps the states between steps.
type Auditor struct {
	// Grace is how long a stream must stay short of recorders before it is
	// reported (default 10 s: longer than a failover).
	Grace    time.Duration
	pending  map[string]time.Time // stream -> since when short, not reported yet
	reported map[string]State     // streams reported short
	counts   [3]int
}

// New returns an Auditor.
func New(grace time.Duration) *Auditor {
	if grace <= 0 {
		grace = 10 * time.Second
	}
	return &Auditor{Grace: grace, pending: map[string]time.Time{}, reported: map[string]State{}}
}

// Step audits every stream and returns the changes to report.
func (a *Auditor) Step(now time.Time, in Input) []Change {
	var out []Change
	alive := map[string]bool{}
	for _, id := range in.Alive {
		alive[id] = true
	}
	seen := map[string]bool{}
	a.counts = [3]int{}
	for _, s := range in.Streams {
		seen[s.ID] = true
		want := min(max(s.Replicas, 1), len(in.Alive))
		var rec []string
		for _, nd := range in.Placement[s.ID] {
			if alive[nd] && in.Records(nd, s.ID) {
				rec = append(rec, nd)
			}
		}
		slices.Sort(rec)
		st := Replicated
		switch {
		case len(rec) == 0 && want > 0:
			st = Nowhere
		case len(rec) < want:
			st = UnderReplicated
		}
		if st == Replicated {
			delete(a.pending, s.ID)
			if _, was := a.reported[s.ID]; was {
				delete(a.reported, s.ID)
				out = append(out, Change{Stream: s.ID, State: Replicated, Recorders: rec, Want: want, Since: now, Replicated: true})
			}
			a.counts[Replicated]++
			continue
		}
		since, ok := a.pending[s.ID]
		if !ok {
			since = now
			a.pending[s.ID] = now
		}
		if now.Sub(since) >= a.Grace {
			a.counts[st]++
			if prev, was := a.reported[s.ID]; !was || prev != st {
				a.reported[s.ID] = st
				out = append(out, Change{Stream: s.ID, State: st, Recorders: rec, Want: want, Since: since})
			}
		} else {
			a.counts[Replicated]++ // within the grace period
		}
	}
	for id := range a.pending {
		if !seen[id] {
			delete(a.pending, id)
		}
	}
	for id := range a.reported {
		if !seen[id] {
			delete(a.reported, id) // disabled or deleted: not a problem to report
		}
	}
	return out
}

// Counts returns, as of the last step, the streams replicated, reported
// under-replicated and reported recorded nowhere.
func (a *Auditor) Counts() (replicated, under, nowhere int) {
	return a.counts[Replicated], a.counts[UnderReplicated], a.counts[Nowhere]
}

// Reset forgets every state (this node stopped being the leader: the next
// leader reports afresh).
func (a *Auditor) Reset() {
	clear(a.pending)
	clear(a.reported)
	a.counts = [3]int{}
}
