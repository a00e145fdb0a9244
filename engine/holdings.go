package engine

import (
	"slices"
	"time"

	"github.com/understudy-nvr/understudy/engine/catalog"
)

// The placement history. A federated read of a stream (package api's
// readPeers) asks only the members that may hold some of it over the
// range read: those whose holding record (catalog.Holding, written by
// each node for itself) says so, and those the current placement puts
// the stream on (a holding just written may not have reached this node
// yet). A stream with no holding record at all (a cluster whose nodes are
// of the version before) is read from every live member, as before.
//
// Each node keeps its own holdings true, in the supervisor's goroutine
// right after each reconcile round, so a session started or stopped in
// the round is seen at once:
//   - a stream it records has an open holding (Until zero);
//   - a stream it stopped recording gets Until = now (its session has
//     written everything by then: stopSessions waits), or the end of what
//     it stored if later (segments carry the camera's clock), and Since
//     moves back to the start of what it stored;
//   - every holdScanEvery, and at start, its store is compared with its
//     holdings: a stream with segments but no holding (recorded before
//     holdings existed) gets one spanning them; one that backfill extended
//     backwards gets the earlier Since; one it holds nothing of any more
//     (retention, deletion) and does not record is dropped.
//
// A holding is an upper bound: a node that died recording keeps an open
// one until it restarts, and Since never moves forward. While a node
// records a stream the current placement names it, so reads ask it even
// where a camera's clock puts segments before its Since.

// holdScanEvery is how often a node compares its holdings with its store.
var holdScanEvery = time.Minute

// holdingsState is the supervisor's view of this node's holdings.
type holdingsState struct {
	open     map[string]bool // streams whose holding this node wrote open
	lastScan time.Time
}

// syncHoldings brings this node's holdings in line with its sessions and,
// every holdScanEvery, with its store. Only the supervisor calls it.
func (n *Node) syncHoldings(now time.Time) {
	hs := &n.holds
	if hs.open == nil {
		hs.open = map[string]bool{}
		for _, h := range n.catalog.HoldingsOf(n.cfg.ID) {
			if h.Until.IsZero() {
				hs.open[h.Stream] = true // maybe left open by a crash: closed below unless recording
			}
		}
	}
	n.mu.Lock()
	running := make(map[string]time.Time, len(n.sessions))
	for id, rs := range n.sessions {
		running[id] = rs.started
	}
	n.mu.Unlock()
	for id, started := range running {
		if hs.open[id] {
			continue
		}
		if _, err := n.catalog.SetHolding(catalog.Holding{Stream: id, Node: n.cfg.ID, Since: started}); err != nil {
			n.log.Warn("placement history: cannot record a holding", "stream", id, "err", err)
			continue
		}
		hs.open[id] = true
	}
	for id := range hs.open {
		if _, ok := running[id]; ok {
			continue
		}
		if err := n.closeHolding(id, now); err != nil {
			n.log.Warn("placement history: cannot close a holding", "stream", id, "err", err)
			continue
		}
		delete(hs.open, id)
	}
	if now.Sub(hs.lastScan) >= holdScanEvery {
		hs.lastScan = now
		n.scanHoldings(running)
	}
}

// closeHolding ends this node's open holding of stream at now, or at the
// end of what it stored if that is later, and moves Since back to the
// start of what it stored: segments carry the camera's clock, which may
// be ahead of or behind this node's.
func (n *Node) closeHolding(stream string, now time.Time) error {
	for _, h := range n.catalog.Holdings(stream) {
		if h.Node == n.cfg.ID && h.Until.IsZero() {
			h.Until = maxTime(now, h.Since)
			if ext, ok, err := n.store.Extent(stream); err == nil && ok {
				h.Until = maxTime(h.Until, ext.End)
				if ext.Start.Before(h.Since) {
					h.Since = ext.Start
				}
			}
			_, err := n.catalog.SetHolding(h)
			return err
		}
	}
	return nil
}

// scanHoldings compares this node's holdings with what its store holds.
func (n *Node) scanHoldings(running map[string]time.Time) {
	stored, err := n.store.Streams()
	if err != nil {
		n.log.Warn("placement history: cannot list the stored streams", "err", err)
		return
	}
	mine := map[string]catalog.Holding{}
	for _, h := range n.catalog.HoldingsOf(n.cfg.ID) {
		mine[h.Stream] = h
	}
	for _, id := range stored {
		ext, ok, err := n.store.Extent(id)
		if err != nil || !ok {
			continue
		}
		h, had := mine[id]
		want := h
		if !had {
			want = catalog.Holding{Stream: id, Node: n.cfg.ID, Since: ext.Start, Until: ext.End}
			if _, rec := running[id]; rec {
				want.Until = time.Time{}
			}
		}
		if ext.Start.Before(want.Since) {
			want.Since = ext.Start
		}
		if !want.Until.IsZero() && ext.End.After(want.Until) {
			want.Until = ext.End
		}
		if had && want == h {
			continue
		}
		if _, err := n.catalog.SetHolding(want); err != nil {
			n.log.Warn("placement history: cannot record a holding", "stream", id, "err", err)
		}
	}
	for id := range mine {
		if _, rec := running[id]; rec || slices.Contains(stored, id) {
			continue
		}
		if err := n.catalog.DropHolding(id, n.cfg.ID); err != nil {
			n.log.Warn("placement history: cannot drop a holding", "stream", id, "err", err)
		}
		delete(n.holds.open, id)
	}
}

// maxTime is the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
