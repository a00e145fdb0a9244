package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/understudy-nvr/understudy/backfill"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/segment"
)

// The node's backfill loop: for every stream it is home for, every
// BackfillInterval, at once on start and when it becomes home, it repairs
// its own archive over the buffer window from its buffer and the peers'
// segments (package backfill).

// backfillEdge keeps the live edge out of the repair: the part being
// written, and the peers' segments not closed yet.
const backfillEdge = 10 * time.Second

func (n *Node) newFiller() (*backfill.Filler, error) {
	return backfill.New(backfill.Config{
		Store: n.store, Self: n.cfg.ID, Buffer: n.buffer, RateBytes: int64(n.cfg.BackfillRateMiB) << 20, Logger: n.log,
		Remote: n.backfillRemote,
	})
}

// backfillRemote lists what the other holders of stream have over
// [from, to), for the Filler. The list is complete only when every holder
// answered, the ones that are down included: a holder restarting, frozen
// or cut off holds its share still, so a hole only it holds stays pending
// (retried, and reported by the pending metric) instead of being declared
// final while it is away. A node gone for good stops counting once it is
// forgotten (ForgetNode drops its holdings); a hole older than the buffer
// window is not repaired at all.
func (n *Node) backfillRemote(ctx context.Context, stream string, from, to time.Time) ([]segment.RemoteSegment, bool) {
	if n.cl == nil {
		return nil, true
	}
	segs, missing := n.api.RemoteSegments(ctx, stream, from, to)
	down := n.downHolders(stream, from, to)
	if len(down) > 0 {
		n.log.Debug("backfill: a holder of the range is down; its share is waited for", "stream", stream, "nodes", strings.Join(down, ","))
	}
	return segs, missing == "" && len(down) == 0
}

// downHolders lists the nodes whose holding record says they may hold
// segments of stream over [from, to) and that are not live members now.
func (n *Node) downHolders(stream string, from, to time.Time) []string {
	alive := map[string]bool{n.cfg.ID: true}
	for _, m := range n.cl.Members() {
		if m.Alive {
			alive[m.ID] = true
		}
	}
	var out []string
	for _, h := range n.catalog.Holdings(stream) {
		if !alive[h.Node] && h.Overlaps(from, to) {
			out = append(out, h.Node)
		}
	}
	return out
}

// quarantined is told of a segment that failed its checksum and was
// quarantined: the disk fault is an event, and backfill refills the range.
func (n *Node) quarantined(si segment.SegmentInfo) {
	n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_DISK_FAULT, Stream: si.Stream, Node: n.cfg.ID,
		Message: fmt.Sprintf("segment %s..%s failed its checksum: quarantined, backfill refills it", si.Start.UTC().Format(time.RFC3339), si.End.UTC().Format(time.RFC3339)),
		Details: map[string]string{"path": si.Path, "reason": "checksum mismatch"}})
	if n.backfillWake != nil {
		n.pokeBackfill()
	}
}

// pokeBackfill asks the backfill loop for a round now.
func (n *Node) pokeBackfill() {
	select {
	case n.backfillWake <- struct{}{}:
	default:
	}
}

// backfillRetry is how soon a round follows one that left holes a peer
// has (its segment not closed yet, or a copy that failed).
const backfillRetry = 5 * time.Second

func (n *Node) backfillLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.backfillWake:
		}
		next := n.cfg.BackfillInterval
		if n.backfillRound(ctx, time.Now()) {
			next = min(next, backfillRetry)
		}
		t.Reset(next)
	}
}

// backfillRound repairs the archive of every stream this node is home for;
// it reports whether holes a peer holds are left.
func (n *Node) backfillRound(ctx context.Context, now time.Time) (pendingLeft bool) {
	var homes []string
	for id, role := range n.Roles() {
		if role == "home" {
			homes = append(homes, id)
		}
	}
	slices.Sort(homes)
	var pending, oldest time.Duration
	for _, id := range homes {
		if ctx.Err() != nil {
			return false
		}
		from, to := now.Add(-n.cfg.BufferWindow), n.writerEdge(id, now).Add(-backfillEdge)
		if s, err := n.catalog.Get(id); err == nil && s.CreateTime.After(from) {
			from = s.CreateTime // nothing was recorded before the stream existed
		}
		if !to.After(from) {
			continue
		}
		res, err := n.filler.Repair(ctx, id, from, to)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("backfill round failed", "stream", id, "err", err)
			}
			continue
		}
		n.metrics.backfillBytes.Add(float64(res.Bytes))
		n.metrics.backfillSegments.Add(float64(len(res.Filled)))
		for _, iv := range res.Pending {
			pending += iv.Duration()
			oldest = max(oldest, now.Sub(iv.Start))
		}
		if len(res.Filled) > 0 {
			nodes := map[string]bool{}
			var covered time.Duration
			for _, si := range res.Filled {
				nodes[si.Node] = true
				covered += si.End.Sub(si.Start)
			}
			from := slices.Sorted(mapKeys(nodes))
			n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_BACKFILL_PROGRESS, Stream: id, Node: n.cfg.ID,
				Message: fmt.Sprintf("archive backfilled: %d segments (%s) from %s", len(res.Filled), covered.Round(time.Millisecond), strings.Join(from, ", ")),
				Details: map[string]string{"state": "filled", "segments": strconv.Itoa(len(res.Filled)), "bytes": strconv.FormatInt(res.Bytes, 10),
					"from_nodes": strings.Join(from, ","), "pending_seconds": fmt.Sprintf("%.1f", sumDur(res.Pending).Seconds())}})
		}
		for _, iv := range res.Final {
			n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_BACKFILL_PROGRESS, Stream: id, Node: n.cfg.ID,
				Message: fmt.Sprintf("no node holds %s..%s: it stays a gap", iv.Start.UTC().Format(time.RFC3339), iv.End.UTC().Format(time.RFC3339)),
				Details: map[string]string{"state": "final", "start": iv.Start.UTC().Format(time.RFC3339Nano), "end": iv.End.UTC().Format(time.RFC3339Nano)}})
		}
	}
	n.metrics.backfillPending.Set(pending.Seconds())
	n.metrics.backfillLag.Set(oldest.Seconds())
	return pending > 0
}

// writerEdge is how far this node's own recording of stream will reach
// by itself: now, or, while its session's frames wait in memory for a
// slow or stalled disk, the newest frame its writer has taken
// (session.Stats.Backlog). Backfill stays backfillEdge behind it: what the
// session holds is not a hole, and copying a peer's segments over it
// would load a disk that is behind already and store that time twice (a
// slow-disk chaos run copied 16 s of segments that the node then wrote
// itself).
func (n *Node) writerEdge(stream string, now time.Time) time.Time {
	n.mu.Lock()
	rs := n.sessions[stream]
	n.mu.Unlock()
	if rs == nil || rs.sess == nil {
		return now
	}
	if b := rs.sess.Stats().Backlog; !b.IsZero() && b.Before(now) {
		return b
	}
	return now
}

func sumDur(ivs []segment.Interval) (d time.Duration) {
	for _, iv := range ivs {
		d += iv.Duration()
	}
	return d
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
