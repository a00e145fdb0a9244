package catalog

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
	"unicode/utf8"
)

// Version orders the writes of one stream id across the cluster: a hybrid
// logical clock stamp (wall time in ms and a logical counter) with the id of
// the writing node as the tie-break. Two different writes never share a
// Version, because a node never stamps twice with the same (WallMS, Logical).
type Version struct {
	WallMS  int64  // wall-clock milliseconds since the Unix epoch (> 0)
	Logical uint32 // counter within one WallMS
	Node    string // id of the node that wrote the entry
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	if c := cmp.Compare(v.WallMS, o.WallMS); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Logical, o.Logical); c != 0 {
		return c
	}
	return cmp.Compare(v.Node, o.Node)
}

// Time returns the wall-clock part of the stamp.
func (v Version) Time() time.Time { return time.UnixMilli(v.WallMS).UTC() }

// String prints wall.logical@node.
func (v Version) String() string { return fmt.Sprintf("%d.%d@%s", v.WallMS, v.Logical, v.Node) }

// MaxNodeIDLen bounds a node id, in bytes.
const MaxNodeIDLen = 128

// ValidateNodeID checks a node id: 1..128 bytes of printable UTF-8.
func ValidateNodeID(id string) error {
	if id == "" {
		return errors.New("node id must not be empty")
	}
	if len(id) > MaxNodeIDLen {
		return fmt.Errorf("node id must be at most %d bytes, got %d", MaxNodeIDLen, len(id))
	}
	if !utf8.ValidString(id) {
		return errors.New("node id must be valid UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errors.New("node id must not contain control characters")
		}
	}
	return nil
}

// hlc is a hybrid logical clock. It is not safe for concurrent use: the
// Catalog calls it under its write lock.
type hlc struct {
	now     func() time.Time
	wallMS  int64
	logical uint32
}

// next returns a stamp newer than every stamp the clock issued or observed.
func (h *hlc) next() (int64, uint32) {
	pt := h.now().UnixMilli()
	switch {
	case pt > h.wallMS:
		h.wallMS, h.logical = pt, 0
	case h.logical == math.MaxUint32:
		h.wallMS, h.logical = h.wallMS+1, 0
	default:
		h.logical++
	}
	return h.wallMS, h.logical
}

// observe moves the clock past a stamp seen elsewhere (a merged or loaded
// entry), so the next local write orders after it.
func (h *hlc) observe(wallMS int64, logical uint32) {
	if wallMS > h.wallMS || wallMS == h.wallMS && logical > h.logical {
		h.wallMS, h.logical = wallMS, logical
	}
}

// Entry is one register of the catalog: the latest write of a stream id,
// live or deleted. A tombstone (Deleted) keeps only ID and Version; it wins
// over older writes until CollectTombstones removes it after the tombstone
// TTL.
//
// Entries carry the stream's credentials (other recorders need them), so
// replicate them only over encrypted gossip. Printing or logging an Entry
// redacts them like Stream does.
type Entry struct {
	ID      string
	Version Version
	Deleted bool
	// Stream is the definition; zero for a tombstone or a node record,
	// else Stream.ID == ID.
	Stream Stream
	// Node is the record of a node (ID is NodeEntryID(Node.ID)); zero for
	// a tombstone or a stream.
	Node NodeRecord
	// Hold is a holding record (ID is HoldEntryID(Hold.Stream, Hold.Node));
	// zero otherwise.
	Hold Holding
}

// Validate checks an entry as Merge and the decoder accept it.
func (e Entry) Validate() error {
	node, hold := IsNodeEntryID(e.ID), IsHoldEntryID(e.ID)
	switch {
	case node:
		if err := ValidateNodeID(e.ID[len(NodeEntryPrefix):]); err != nil {
			return err
		}
	case hold:
		stream, nodeID, ok := splitHoldEntryID(e.ID)
		if !ok {
			return fmt.Errorf("holding id %q has no node", e.ID)
		}
		if err := (Holding{Stream: stream, Node: nodeID, Since: time.Unix(1, 0)}).Validate(); err != nil {
			return err
		}
	default:
		if err := ValidateID(e.ID); err != nil {
			return err
		}
	}
	if e.Version.WallMS <= 0 {
		return fmt.Errorf("version: wall time must be positive, got %d", e.Version.WallMS)
	}
	if err := ValidateNodeID(e.Version.Node); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if e.Deleted {
		if !streamIsZero(e.Stream) || e.Node != (NodeRecord{}) || e.Hold != (Holding{}) {
			return errors.New("tombstone must not carry a stream, a node or a holding")
		}
		return nil
	}
	if hold {
		if !streamIsZero(e.Stream) || e.Node != (NodeRecord{}) {
			return errors.New("holding record must not carry a stream or a node")
		}
		if HoldEntryID(e.Hold.Stream, e.Hold.Node) != e.ID {
			return fmt.Errorf("holding %s@%s does not match entry id %q", e.Hold.Stream, e.Hold.Node, e.ID)
		}
		return e.Hold.Validate()
	}
	if e.Hold != (Holding{}) {
		return errors.New("stream or node entry must not carry a holding")
	}
	if node {
		if !streamIsZero(e.Stream) {
			return errors.New("node record must not carry a stream")
		}
		if NodeEntryID(e.Node.ID) != e.ID {
			return fmt.Errorf("node id %q does not match entry id %q", e.Node.ID, e.ID)
		}
		return e.Node.Validate()
	}
	if e.Node != (NodeRecord{}) {
		return errors.New("stream entry must not carry a node")
	}
	if e.Stream.ID != e.ID {
		return fmt.Errorf("stream id %q does not match entry id %q", e.Stream.ID, e.ID)
	}
	if err := e.Stream.Validate(); err != nil {
		return err
	}
	if e.Stream.CreateTime.IsZero() || e.Stream.UpdateTime.IsZero() {
		return errors.New("stream create and update times must be set")
	}
	if !timeFitsNanos(e.Stream.CreateTime) || !timeFitsNanos(e.Stream.UpdateTime) {
		return errors.New("stream create and update times must be between 1678 and 2262")
	}
	return nil
}

func streamIsZero(s Stream) bool {
	return s.ID == "" && s.URL == "" && s.Username == "" && s.Password == "" &&
		s.Replicas == 0 && s.ArchiveRetention == 0 && len(s.Labels) == 0 && !s.Enabled &&
		s.CreateTime.IsZero() && s.UpdateTime.IsZero()
}

var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

// timeFitsNanos reports whether t survives a round trip through UnixNano.
func timeFitsNanos(t time.Time) bool {
	return !t.Before(minNanosTime) && !t.After(maxNanosTime)
}

// Clone returns a deep copy.
func (e Entry) Clone() Entry {
	e.Stream = e.Stream.Clone()
	return e
}

// String prints the entry without credentials.
func (e Entry) String() string {
	if e.Deleted {
		return fmt.Sprintf("Entry{ID:%q Version:%s Deleted}", e.ID, e.Version)
	}
	if IsNodeEntryID(e.ID) {
		return fmt.Sprintf("Entry{ID:%q Version:%s Node{%q %s weight %d %s}}", e.ID, e.Version, e.Node.ID, e.Node.Domain, e.Node.Weight, e.Node.State)
	}
	if IsHoldEntryID(e.ID) {
		return fmt.Sprintf("Entry{ID:%q Version:%s Holding{since %s until %s}}", e.ID, e.Version, e.Hold.Since.Format(time.RFC3339Nano), e.Hold.Until.Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("Entry{ID:%q Version:%s %s}", e.ID, e.Version, e.Stream)
}

// Format prints the redacted form for every verb.
func (e Entry) Format(f fmt.State, verb rune) { formatRedacted(f, verb, e.String()) }

// LogValue logs the entry without credentials.
func (e Entry) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("id", e.ID), slog.String("version", e.Version.String()), slog.Bool("deleted", e.Deleted)}
	switch {
	case e.Deleted:
	case IsNodeEntryID(e.ID):
		attrs = append(attrs, slog.String("node", e.Node.ID), slog.String("domain", e.Node.Domain),
			slog.Int("weight", e.Node.Weight), slog.String("state", e.Node.State))
	case IsHoldEntryID(e.ID):
		attrs = append(attrs, slog.String("stream", e.Hold.Stream), slog.String("node", e.Hold.Node),
			slog.Time("since", e.Hold.Since), slog.Time("until", e.Hold.Until))
	default:
		attrs = append(attrs, slog.Any("stream", e.Stream))
	}
	return slog.GroupValue(attrs...)
}
