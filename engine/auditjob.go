package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/understudy-nvr/understudy/engine/audit"
	"github.com/understudy-nvr/understudy/engine/catalog"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// The leader's audit: after every reconcile round, the live node ranked
// first by rendezvous hash (audit.Leader) checks that every enabled stream
// has min(R, live nodes) live recorders receiving media, from its own
// sessions and the peers' statuses, and reports a stream short of them
// for longer than auditGrace (a REPLICATION_CHANGED event and two gauges).

// auditGrace is longer than a failover (detection plus a new replica's
// first keyframe): what heals by itself is not reported.
const auditGrace = 20 * time.Second

// statusStale is the age past which a peer's status says nothing about
// what it records (statuses go every 5 s).
const statusStale = 15 * time.Second

type auditState struct {
	auditor        *audit.Auditor
	leader         atomic.Bool
	under, nowhere atomic.Int64
	wasLeader      bool
}

func (n *Node) runAudit(now time.Time, place map[string][]string, digest uint64, enabled []catalog.Stream) {
	if n.cl == nil {
		return
	}
	var alive []string
	for _, m := range n.cl.Members() {
		if m.Alive {
			alive = append(alive, m.ID)
		}
	}
	a := &n.audit
	if audit.Leader(alive) != n.cfg.ID {
		if a.wasLeader {
			a.auditor.Reset()
			a.wasLeader = false
		}
		a.leader.Store(false)
		a.under.Store(0)
		a.nowhere.Store(0)
		return
	}
	if !a.wasLeader {
		n.log.Info("this node is the cluster's leader: it audits replication", "members", len(alive))
		a.wasLeader = true
	}
	a.leader.Store(true)
	statuses := n.cl.Statuses()
	n.mu.Lock()
	own := map[string]bool{}
	for id, r := range n.sessions {
		own[id] = r.sess.Recording()
	}
	n.mu.Unlock()
	in := audit.Input{Placement: place, Alive: alive, Records: func(nd, id string) bool {
		if nd == n.cfg.ID {
			return own[id]
		}
		st, ok := statuses[nd]
		return ok && st.Digest == digest && !st.Truncated && now.Sub(st.Time) < statusStale && !slices.Contains(st.Missing, id)
	}}
	for _, s := range enabled {
		in.Streams = append(in.Streams, audit.Stream{ID: s.ID, Replicas: s.Replicas})
	}
	for _, ch := range a.auditor.Step(now, in) {
		rec := strings.Join(ch.Recorders, ",")
		msg := fmt.Sprintf("%s: %d of %d live recorders receive media (%s) since %s", ch.State, len(ch.Recorders), ch.Want, cmpDash(rec), ch.Since.UTC().Format(time.RFC3339))
		if ch.Replicated {
			msg = fmt.Sprintf("replicated again: %d of %d recorders (%s)", len(ch.Recorders), ch.Want, rec)
		}
		n.log.Warn("replication audit", "stream", ch.Stream, "state", ch.State.String(), "recorders", rec, "want", ch.Want)
		n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_REPLICATION_CHANGED, Stream: ch.Stream, Node: n.cfg.ID, Message: msg,
			Details: map[string]string{"state": ch.State.String(), "recorders": rec, "want": strconv.Itoa(ch.Want)}})
	}
	_, under, nowhere := a.auditor.Counts()
	a.under.Store(int64(under))
	a.nowhere.Store(int64(nowhere))
}

func cmpDash(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
