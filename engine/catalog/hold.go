package catalog

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The catalog also keeps each stream's placement history: one holding
// record per stream and node that has recorded it, written by that node
// itself, saying over which time the node may hold segments of the stream
// (Since, and Until once it stopped recording it; zero Until: it records
// it now, or it died recording it). A federated read of a stream over a
// range asks only the nodes whose holding overlaps the range (and those
// placement puts the stream on now), not every member. A holding is an
// upper bound: Since only ever moves earlier, and the record is removed
// (a tombstone) only when the node holds nothing of the stream any more.
//
// Holding records live beside the streams under ids HoldEntryPrefix +
// stream id + ":" + node id; a stream id has no ':', so the first ':'
// after the prefix ends the stream id. The stream methods never see them.

// HoldEntryPrefix starts the entry id of a holding record.
const HoldEntryPrefix = "held:"

// Holding is what one node may hold of one stream.
type Holding struct {
	Stream string
	Node   string
	Since  time.Time // the earliest time the node may hold segments of
	Until  time.Time // zero: open (it records the stream, or died doing so)
}

// Overlaps tells whether the holding may hold segments of [start, end);
// a zero start or end leaves that side unbounded.
func (h Holding) Overlaps(start, end time.Time) bool {
	if !end.IsZero() && !h.Since.Before(end) {
		return false
	}
	return h.Until.IsZero() || start.IsZero() || h.Until.After(start)
}

// Validate checks a holding as Merge and the decoder accept it.
func (h Holding) Validate() error {
	if err := ValidateID(h.Stream); err != nil {
		return fmt.Errorf("holding: stream: %w", err)
	}
	if err := ValidateNodeID(h.Node); err != nil {
		return fmt.Errorf("holding: %w", err)
	}
	if h.Since.IsZero() || !timeFitsNanos(h.Since) || !h.Until.IsZero() && !timeFitsNanos(h.Until) {
		return fmt.Errorf("holding %s@%s: since must be set and both times between 1678 and 2262", h.Stream, h.Node)
	}
	if !h.Until.IsZero() && h.Until.Before(h.Since) {
		return fmt.Errorf("holding %s@%s: until %s is before since %s", h.Stream, h.Node, h.Until.Format(time.RFC3339), h.Since.Format(time.RFC3339))
	}
	return nil
}

// IsHoldEntryID tells whether an entry id is that of a holding record.
func IsHoldEntryID(id string) bool { return strings.HasPrefix(id, HoldEntryPrefix) }

// HoldEntryID is the entry id of the holding of stream by node.
func HoldEntryID(stream, node string) string { return HoldEntryPrefix + stream + ":" + node }

// splitHoldEntryID returns the stream and node ids of a holding's entry id.
func splitHoldEntryID(id string) (stream, node string, ok bool) {
	rest, ok := strings.CutPrefix(id, HoldEntryPrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ":")
}

// isStreamEntryID tells whether an entry id is that of a stream (not a
// node or holding record).
func isStreamEntryID(id string) bool { return !IsNodeEntryID(id) && !IsHoldEntryID(id) }

// IsStreamEntryID tells whether an entry id is that of a stream, not one
// of the records kept beside the streams (nodes, holdings).
func IsStreamEntryID(id string) bool { return isStreamEntryID(id) }

// SetHolding writes h as the holding of its stream by its node, unless the
// catalog holds exactly h already (so a node may call it every round). A
// Since later than the one held is kept at the one held: a holding only
// grows backwards. It reports whether it wrote.
func (c *Catalog) SetHolding(h Holding) (bool, error) {
	h.Since, h.Until = holdTime(h.Since, false), holdTime(h.Until, true)
	if !h.Until.IsZero() && h.Until.Before(h.Since) {
		h.Until = h.Since
	}
	if err := h.Validate(); err != nil {
		return false, err
	}
	id := HoldEntryID(h.Stream, h.Node)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; ok && !e.Deleted {
		if e.Hold.Since.Before(h.Since) {
			h.Since = e.Hold.Since
		}
		if e.Hold == h {
			return false, nil
		}
	}
	return true, c.commit(Entry{ID: id, Version: c.stamp(), Hold: h})
}

// DropHolding replaces the holding of stream by node with a tombstone:
// the node holds nothing of the stream any more (or is gone for good).
// Dropping a holding the catalog does not hold is not an error.
func (c *Catalog) DropHolding(stream, node string) error {
	id := HoldEntryID(stream, node)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; !ok || e.Deleted {
		return nil
	}
	return c.commit(Entry{ID: id, Version: c.stamp(), Deleted: true})
}

// Holdings returns the live holding records of stream, ordered by node id.
func (c *Catalog) Holdings(stream string) []Holding {
	prefix := HoldEntryPrefix + stream + ":"
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, _ := slices.BinarySearch(c.ids, prefix)
	var out []Holding
	for ; i < len(c.ids) && strings.HasPrefix(c.ids[i], prefix); i++ {
		if e := c.entries[c.ids[i]]; !e.Deleted {
			out = append(out, e.Hold)
		}
	}
	return out
}

// HoldingsOf returns the live holding records written for node, ordered
// by stream id.
func (c *Catalog) HoldingsOf(node string) []Holding {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, _ := slices.BinarySearch(c.ids, HoldEntryPrefix)
	var out []Holding
	for ; i < len(c.ids) && IsHoldEntryID(c.ids[i]); i++ {
		if e := c.entries[c.ids[i]]; !e.Deleted && e.Hold.Node == node {
			out = append(out, e.Hold)
		}
	}
	slices.SortFunc(out, func(a, b Holding) int { return strings.Compare(a.Stream, b.Stream) })
	return out
}

// holdTime is t as a holding keeps it: UTC, in whole milliseconds (up,
// for an Until, so the bound still covers t), and the zero time as the
// zero time (so that records compare with ==).
func holdTime(t time.Time, up bool) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	r := t.UTC().Truncate(time.Millisecond)
	if up && r.Before(t) {
		r = r.Add(time.Millisecond)
	}
	return r
}
