package engine

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/understudy-nvr/understudy/engine/api"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/engine/reconcile"
	"github.com/understudy-nvr/understudy/placement"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/segment"
)

// This file joins the node to the cluster and keeps its sessions in line
// with the roles placement gives it. The decisions are the reconcile
// package's (a pure state machine); membership and gossip are the cluster
// package's; here they meet the sessions.

// startCluster joins (or founds) the cluster when gossip is configured.
func (n *Node) startCluster() error {
	if n.cfg.GossipListen == "" {
		return nil
	}
	host, port, _ := net.SplitHostPort(n.cfg.GossipListen)
	ahost, aport, _ := net.SplitHostPort(n.cfg.GossipAdvertise)
	bindPort, _ := strconv.Atoi(port)
	advPort, _ := strconv.Atoi(aport)
	var keys [][]byte
	if n.cfg.GossipKeyFile != "" {
		var err error
		if keys, err = ReadGossipKeys(n.cfg.GossipKeyFile); err != nil {
			return fmt.Errorf("gossip-key-file: %w", err)
		}
	}
	c, err := cluster.Start(cluster.Config{
		Meta: cluster.Meta{ID: n.cfg.ID, Domain: n.cfg.Domain, APIAddress: n.addr, Version: n.version,
			Weight: n.selfWeight, State: n.selfState},
		BindAddr:      host,
		BindPort:      bindPort,
		AdvertiseAddr: ahost,
		AdvertisePort: advPort,
		Join:          n.cfg.JoinAddrs(),
		Keys:          keys,
		Catalog:       n.catalog,
		Logger:        n.log,
		Transport:     n.cfg.GossipTransport,
		OnProblem: func(kind, peer, msg string) {
			n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_CLUSTER_PROBLEM, Node: n.cfg.ID, Message: msg,
				Details: map[string]string{"problem": kind, "peer": peer}})
		},
	})
	if err != nil {
		return err
	}
	n.cl = c
	n.setPeerKeys(keys)
	return nil
}

// insecurePeerKey stands in for the gossip key of a cluster that runs
// without one (insecure-gossip): anyone who reads this source can forge
// its credential, as anyone on the network can read its gossip.
var insecurePeerKey = []byte("understudy insecure gossip: no key")

// setPeerKeys derives the cluster credentials from the gossip keys: this
// node presents the first key's, and accepts every key's.
func (n *Node) setPeerKeys(keys [][]byte) {
	if len(keys) == 0 {
		keys = [][]byte{insecurePeerKey}
	}
	tokens := make([]string, len(keys))
	for i, k := range keys {
		tokens[i] = api.PeerToken(k)
	}
	n.auth.SetPeerTokens(tokens)
	n.peerToken.Store(&tokens[0])
}

// ReloadGossipKeys re-reads the gossip key file (on SIGHUP): a key can be
// added, made primary and retired without a restart.
func (n *Node) ReloadGossipKeys() error {
	if n.cl == nil || n.cfg.GossipKeyFile == "" {
		return fmt.Errorf("no gossip key file configured")
	}
	keys, err := ReadGossipKeys(n.cfg.GossipKeyFile)
	if err != nil {
		return err
	}
	if err := n.cl.SetKeys(keys); err != nil {
		return err
	}
	n.setPeerKeys(keys)
	return nil
}

// GossipAddr is the gossip address peers join, or "" for a lone node.
func (n *Node) GossipAddr() string {
	if n.cl == nil {
		return ""
	}
	return n.cl.GossipAddr()
}

// SetNodeState changes this node's cluster state (active, draining,
// saturated) and weight (0: unchanged); both travel in its membership
// metadata to every node, whose placement follows.
func (n *Node) SetNodeState(state string, weight int) error {
	if _, err := placement.ParseState(state); err != nil && state != "" {
		return err
	}
	if weight < 0 || weight > placement.MaxNodeWeight {
		return fmt.Errorf("weight: must be between 1 and %d, got %d", placement.MaxNodeWeight, weight)
	}
	n.placeMu.Lock()
	if state != "" {
		n.selfState = state
	}
	if weight > 0 {
		n.selfWeight = weight
	}
	n.placeMu.Unlock()
	return n.announceState()
}

// poke asks the supervisor for a reconcile round now.
func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// members is the live membership: self always, and the live members,
// with their domain, weight and state.
func (n *Node) members() []reconcile.Member {
	n.placeMu.Lock()
	self := reconcile.Member{ID: n.cfg.ID, Domain: n.cfg.Domain, Weight: n.selfWeight, State: parseState(n.stateLocked())}
	n.placeMu.Unlock()
	if n.cl == nil {
		return []reconcile.Member{self}
	}
	out := []reconcile.Member{self}
	for _, m := range n.cl.Members() {
		if !m.Alive || m.ID == n.cfg.ID {
			continue
		}
		out = append(out, reconcile.Member{ID: m.ID, Domain: m.Domain, Weight: max(m.Weight, 1), State: parseState(m.State)})
	}
	return out
}

// placementMembers is the membership as placement takes it: the live
// members and the nodes of the known-node registry (catalog.Nodes) that
// are not live, as placement.Failed: known and down, so that only their
// copies move and their homes pass to nodes that held the streams. Every
// node reads the same replicated registry, so they agree on the failed
// nodes, a newcomer too. A registered node that was draining or saturated
// when it last wrote its record held no copies and is left out. First it
// brings this node's own record up to date (a write only on a change).
func (n *Node) placementMembers(live []reconcile.Member) []reconcile.Member {
	if n.cl == nil {
		return live
	}
	n.placeMu.Lock()
	rec := catalog.NodeRecord{ID: n.cfg.ID, Domain: n.cfg.Domain, Weight: min(max(n.selfWeight, 1), placement.MaxNodeWeight), State: n.stateLocked()}
	n.placeMu.Unlock()
	if _, err := n.catalog.RegisterNode(rec); err != nil {
		n.log.Warn("node registry: cannot record this node", "err", err)
	}
	ids := make(map[string]bool, len(live))
	for _, m := range live {
		ids[m.ID] = true
	}
	out := live
	for _, r := range n.catalog.Nodes() {
		if ids[r.ID] || r.State != cluster.StateActive {
			continue
		}
		out = append(out, reconcile.Member{ID: r.ID, Domain: r.Domain, Weight: r.Weight, State: placement.Failed})
	}
	return out
}

func parseState(s string) placement.State {
	st, err := placement.ParseState(s)
	if err != nil {
		return placement.Active
	}
	return st
}

// placementDigest hashes a placement: two nodes with the same digest
// agree on every stream's recorders.
func placementDigest(place map[string][]string) uint64 {
	ids := make([]string, 0, len(place))
	for id := range place {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	h := fnv.New64a()
	for _, id := range ids {
		h.Write([]byte(id))
		for _, nd := range place[id] {
			h.Write([]byte{0})
			h.Write([]byte(nd))
		}
		h.Write([]byte{'\n'})
	}
	return h.Sum64()
}

// feedReports passes what peers say they record to the reconciler. A
// peer's status counts only when its placement digest equals this node's
// (same view of every stream's recorders): it then records every stream
// placed on it that it does not list as missing.
func (n *Node) feedReports(now time.Time, place map[string][]string, digest uint64) {
	if n.cl == nil {
		return
	}
	statuses := n.cl.Statuses()
	rec := make(map[string][]string, len(statuses))
	for id, nodes := range place {
		for _, nd := range nodes {
			st, ok := statuses[nd]
			if !ok || nd == n.cfg.ID || st.Digest != digest || st.Truncated || slices.Contains(st.Missing, id) {
				continue
			}
			rec[nd] = append(rec[nd], id)
		}
	}
	for nd := range statuses {
		if nd != n.cfg.ID {
			n.rec.Report(now, nd, rec[nd])
		}
	}
}

// reconcile brings the sessions in line with the catalog and the
// membership: it feeds the reconciler, applies its actions, restarts
// sessions whose URL or credentials changed, and publishes this node's
// status. Only the supervisor goroutine calls it.
func (n *Node) reconcile(ctx context.Context) {
	now := time.Now()
	enabled := n.catalog.Enabled()
	byID := make(map[string]catalog.Stream, len(enabled))
	rs := make([]reconcile.Stream, 0, len(enabled))
	for _, s := range enabled {
		byID[s.ID] = s
		rs = append(rs, reconcile.Stream{ID: s.ID, Replicas: s.Replicas, Weight: s.LoadWeight(), Scope: s.Scope, Strict: s.StrictScope})
	}
	n.rec.SetStreams(rs)
	members := n.members()
	n.noteMembership(members)
	n.noteSuspects()
	n.rec.SetMembers(now, n.placementMembers(members))
	n.placeMu.Lock()
	prev, prevDigest := n.placed, n.digest
	n.placeMu.Unlock()
	n.feedReports(now, prev, prevDigest)

	actions := n.rec.Step(now)
	place := n.rec.Placement()
	digest := placementDigest(place)
	n.placeMu.Lock()
	n.placed, n.digest = place, digest
	n.placeMu.Unlock()

	var stopping []stop
	n.mu.Lock()
	for _, a := range actions {
		switch a.Kind {
		case reconcile.Stop:
			if r, ok := n.sessions[a.Stream]; ok {
				stopping = append(stopping, stop{r, n.stopReason(a, place)})
				delete(n.sessions, a.Stream)
			}
		case reconcile.ChangeRole:
			if r, ok := n.sessions[a.Stream]; ok {
				r.sess.SetClass(roleClass(a.To))
				r.role = a.To
				n.log.Info("role changed", "stream", a.Stream, "from", a.From.String(), "to", a.To.String())
				if a.To == reconcile.Home {
					defer n.pokeBackfill() // the new home archives what it recorded as replica
				}
				n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_ROLE_CHANGED, Stream: a.Stream, Node: n.cfg.ID,
					Message: fmt.Sprintf("%s → %s", a.From, a.To),
					Details: map[string]string{"from": a.From.String(), "to": a.To.String(), "class": roleClass(a.To).String()}})
			}
		}
	}
	// A changed URL or credentials restart the session in the same role.
	var restart []*runningSession
	for id, r := range n.sessions {
		if s, ok := byID[id]; ok && s.RecordingURL() != r.stream.RecordingURL() {
			stopping = append(stopping, stop{r, stopChanged})
			delete(n.sessions, id)
			restart = append(restart, r)
		} else if ok {
			r.stream = s
		}
	}
	n.mu.Unlock()
	n.stopSessions(stopping)

	n.mu.Lock()
	for _, a := range actions {
		if a.Kind == reconcile.Start {
			if err := n.startSession(ctx, byID[a.Stream], a.To); err != nil {
				n.log.Error("cannot record stream", "stream", byID[a.Stream], "err", err)
			}
			if a.To == reconcile.Home {
				defer n.pokeBackfill() // a home back after an outage repairs it at once
			}
		}
	}
	for _, r := range restart {
		if err := n.startSession(ctx, byID[r.stream.ID], r.role); err != nil {
			n.log.Error("cannot record stream", "stream", byID[r.stream.ID], "err", err)
		}
	}
	n.mu.Unlock()
	n.publishStatus(place, digest)
	n.runAudit(now, place, digest, enabled)
}

// stopReason says, once and precisely, why a session stops.
func (n *Node) stopReason(a reconcile.Action, place map[string][]string) string {
	switch a.Reason {
	case reconcile.StopRemoved:
		if s, err := n.catalog.Get(a.Stream); err == nil && !s.Enabled {
			return "disabled by an operator"
		}
		return "deleted"
	case reconcile.StopHandedOff:
		return fmt.Sprintf("placed on other nodes (%s), which record it now", strings.Join(place[a.Stream], ", "))
	case reconcile.StopTimeout:
		return fmt.Sprintf("placed on other nodes (%s); stopped after the %s handoff timeout", strings.Join(place[a.Stream], ", "), n.cfg.HandoffTimeout)
	}
	return string(a.Reason)
}

func roleClass(r reconcile.Role) segment.Class {
	if r == reconcile.Replica {
		return segment.ClassBuffer
	}
	return segment.ClassArchive
}

// publishStatus gossips what this node records: the streams placed on it
// that it does not record (its size grows with what is wrong only), and
// its load figures.
func (n *Node) publishStatus(place map[string][]string, digest uint64) {
	if n.cl == nil {
		return
	}
	st := cluster.Status{Digest: digest, CPUPercent: min(max(n.CPUPercent(), 0), 100), Time: time.Now()}
	st.DiskUsed, st.DiskFree = n.diskUsage()
	n.mu.Lock()
	for id, nodes := range place {
		if !slices.Contains(nodes, n.cfg.ID) {
			continue
		}
		r, ok := n.sessions[id]
		if !ok || !r.sess.Recording() {
			st.Missing = append(st.Missing, id)
		}
	}
	for _, r := range n.sessions {
		if r.role == reconcile.Home {
			st.Home++
		} else {
			st.Replica++
		}
	}
	n.mu.Unlock()
	n.cl.SetStatus(st)
}

// noteMembership publishes NODE_JOINED, NODE_LEFT and NODE_STATE_CHANGED
// events for the changes since the last round.
func (n *Node) noteMembership(members []reconcile.Member) {
	now := make(map[string]placement.State, len(members))
	for _, m := range members {
		now[m.ID] = m.State
	}
	if n.seen != nil {
		for id, st := range now {
			old, ok := n.seen[id]
			switch {
			case !ok:
				n.log.Info("node joined", "peer", id)
				n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_NODE_JOINED, Node: id, Message: "node joined"})
			case old != st:
				n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_NODE_STATE_CHANGED, Node: id,
					Message: fmt.Sprintf("node state %s → %s", old, st),
					Details: map[string]string{"from": api.NodeStateProto(old).String(), "to": api.NodeStateProto(st).String()}})
			}
		}
		for id := range n.seen {
			if _, ok := now[id]; !ok {
				n.log.Warn("node left or declared down", "peer", id)
				n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_NODE_LEFT, Node: id, Message: "node left or declared down",
					Details: map[string]string{"state": "NODE_STATE_DOWN"}})
			}
		}
	}
	n.seen = now
}

// noteSuspects publishes a node state change when a live member becomes
// suspect (its probes went unanswered) and when it answers again. A
// suspicion moves no copy: placement waits for the member to be declared
// dead, so a freeze shorter than that changes nothing.
func (n *Node) noteSuspects() {
	if n.cl == nil {
		return
	}
	now := map[string]bool{}
	for _, m := range n.cl.Members() {
		if m.Suspect {
			now[m.ID] = true
			if !n.suspects[m.ID] {
				n.log.Warn("node suspect: it did not answer failure probes", "peer", m.ID)
				n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_NODE_STATE_CHANGED, Node: m.ID,
					Message: "node suspect: it did not answer failure probes",
					Details: map[string]string{"from": api.NodeStateProto(parseState(m.State)).String(), "to": understudyv1.NodeState_NODE_STATE_SUSPECT.String()}})
			}
		} else if n.suspects[m.ID] && m.Alive {
			n.log.Info("node answers again", "peer", m.ID)
			n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_NODE_STATE_CHANGED, Node: m.ID,
				Message: "node answers failure probes again",
				Details: map[string]string{"from": understudyv1.NodeState_NODE_STATE_SUSPECT.String(), "to": api.NodeStateProto(parseState(m.State)).String()}})
		}
	}
	n.suspects = now
}

// Placement returns, as of the last reconcile round, each enabled stream's
// recorders, home first.
func (n *Node) Placement() map[string][]string {
	n.placeMu.Lock()
	defer n.placeMu.Unlock()
	out := make(map[string][]string, len(n.placed))
	for id, ns := range n.placed {
		out[id] = slices.Clone(ns)
	}
	return out
}

// Roles returns the role of every session this node runs.
func (n *Node) Roles() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]string, len(n.sessions))
	for id, r := range n.sessions {
		out[id] = r.role.String()
	}
	return out
}
