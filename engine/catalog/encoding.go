package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"
)

// formatV1 is the first byte of an encoded entry. See doc.go for the layout.
// formatV2 adds, after the labels, the weight, scope and strict scope; an
// entry whose are the defaults (1, "", false) is written in format 1, so
// nodes of the version before read it.
//
// formatNode is a node record of the known-node registry (see doc.go);
// formatHold a holding record of a stream's placement history (hold.go).
// Their tombstones are written in format 1.
const (
	formatV1   = 1
	formatV2   = 2
	formatNode = 3
	formatHold = 4
)

const (
	flagDeleted = 1 << 0
	flagEnabled = 1 << 1
	knownFlags  = flagDeleted | flagEnabled
)

// ErrCorruptEntry is wrapped by every DecodeEntry error.
var ErrCorruptEntry = errors.New("corrupt catalog entry")

// ErrUnknownFormat is wrapped (beside ErrCorruptEntry) by the DecodeEntry
// error of an entry in a format this version does not know: written by a
// newer version, not necessarily damaged.
var ErrUnknownFormat = errors.New("unknown entry format")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeEntry returns the canonical binary form of e (format 1, see
// doc.go): the value stored in Pebble and, later, sent in gossip. The same
// entry always gives the same bytes (labels are sorted).
func EncodeEntry(e Entry) []byte {
	b := make([]byte, 0, 64+len(e.ID)+len(e.Stream.URL)+len(e.Stream.Username)+len(e.Stream.Password)+32*len(e.Stream.Labels))
	v2 := !e.Deleted && (e.Stream.Weight > 1 || e.Stream.Scope != "" || e.Stream.StrictScope)
	node := !e.Deleted && IsNodeEntryID(e.ID)
	hold := !e.Deleted && IsHoldEntryID(e.ID)
	switch {
	case node:
		b = append(b, formatNode)
	case hold:
		b = append(b, formatHold)
	case v2:
		b = append(b, formatV2)
	default:
		b = append(b, formatV1)
	}
	var flags byte
	if e.Deleted {
		flags |= flagDeleted
	}
	if e.Stream.Enabled && !e.Deleted {
		flags |= flagEnabled
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(e.Version.WallMS))
	b = binary.AppendUvarint(b, uint64(e.Version.Logical))
	b = appendString(b, e.Version.Node)
	b = appendString(b, e.ID)
	if node {
		b = appendString(b, e.Node.Domain)
		b = binary.AppendUvarint(b, uint64(e.Node.Weight))
		b = appendString(b, e.Node.State)
	} else if hold {
		b = binary.AppendVarint(b, timeNanos(e.Hold.Since))
		b = binary.AppendVarint(b, timeNanos(e.Hold.Until))
	} else if !e.Deleted {
		s := e.Stream
		b = appendString(b, s.URL)
		b = appendString(b, s.Username)
		b = appendString(b, s.Password)
		b = binary.AppendUvarint(b, uint64(s.Replicas))
		b = binary.AppendVarint(b, int64(s.ArchiveRetention))
		b = binary.AppendVarint(b, timeNanos(s.CreateTime))
		b = binary.AppendVarint(b, timeNanos(s.UpdateTime))
		keys := make([]string, 0, len(s.Labels))
		for k := range s.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendString(b, k)
			b = appendString(b, s.Labels[k])
		}
		if v2 {
			b = binary.AppendUvarint(b, uint64(s.Weight))
			b = appendString(b, s.Scope)
			strict := byte(0)
			if s.StrictScope {
				strict = 1
			}
			b = append(b, strict)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func timeNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanosTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// decoder reads the fields of an encoded entry; the first problem sticks in
// err and makes every later read a no-op.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("%s: bad varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("%s: missing", what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("%s: bad varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string, max int) string {
	if d.err != nil {
		return ""
	}
	n, w := binary.Uvarint(d.b)
	if w <= 0 {
		d.fail("%s length: bad varint", what)
		return ""
	}
	d.b = d.b[w:]
	if n > uint64(max) {
		d.fail("%s: length %d exceeds %d", what, n, max)
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("%s: truncated", what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// DecodeEntry parses and validates an encoded entry. Any problem (unknown
// format, bad checksum, truncation, trailing bytes, an invalid field) gives
// an error wrapping ErrCorruptEntry; it never panics.
func DecodeEntry(b []byte) (Entry, error) {
	e, err := decodeEntry(b)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrCorruptEntry, err)
	}
	return e, nil
}

func decodeEntry(b []byte) (Entry, error) {
	if len(b) < 2+4 {
		return Entry{}, fmt.Errorf("%d bytes is too short", len(b))
	}
	if b[0] != formatV1 && b[0] != formatV2 && b[0] != formatNode && b[0] != formatHold {
		return Entry{}, fmt.Errorf("%w: unknown format %d", ErrUnknownFormat, b[0])
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return Entry{}, fmt.Errorf("checksum mismatch: stored %08x, computed %08x", sum, got)
	}
	flags := body[1]
	if flags&^knownFlags != 0 {
		return Entry{}, fmt.Errorf("unknown flags %#x", flags)
	}
	d := decoder{b: body[2:]}
	var e Entry
	e.Deleted = flags&flagDeleted != 0
	wall := d.uvarint("version wall time")
	logical := d.uvarint("version logical")
	if d.err == nil && (wall > math.MaxInt64 || logical > math.MaxUint32) {
		d.fail("version %d.%d out of range", wall, logical)
	}
	e.Version = Version{WallMS: int64(wall), Logical: uint32(logical)}
	e.Version.Node = d.string("version node", MaxNodeIDLen)
	e.ID = d.string("id", max(MaxIDLen, len(NodeEntryPrefix)+MaxNodeIDLen, len(HoldEntryPrefix)+MaxIDLen+1+MaxNodeIDLen))
	if d.err == nil && (b[0] == formatHold) != (IsHoldEntryID(e.ID) && !e.Deleted) {
		d.fail("format %d under id %q", b[0], e.ID)
	}
	if b[0] == formatHold {
		if flags != 0 {
			d.fail("holding record with flags %#x", flags)
		}
		if d.err == nil {
			e.Hold.Stream, e.Hold.Node, _ = splitHoldEntryID(e.ID)
		}
		e.Hold.Since = nanosTime(d.varint("holding since"))
		e.Hold.Until = nanosTime(d.varint("holding until"))
	} else if b[0] == formatNode {
		if e.Deleted || flags&flagEnabled != 0 {
			d.fail("node record with flags %#x", flags)
		}
		if d.err == nil && !IsNodeEntryID(e.ID) {
			d.fail("node record under id %q", e.ID)
		}
		if d.err == nil {
			e.Node.ID = e.ID[len(NodeEntryPrefix):]
		}
		e.Node.Domain = d.string("node domain", MaxNodeDomainLen)
		w := d.uvarint("node weight")
		if d.err == nil && w > MaxNodeRecordWeight {
			d.fail("node weight: %d out of range", w)
		}
		e.Node.Weight = int(w)
		e.Node.State = d.string("node state", 16)
	} else if d.err == nil && !e.Deleted && IsNodeEntryID(e.ID) {
		d.fail("stream under node id %q", e.ID)
	} else if !e.Deleted {
		s := &e.Stream
		s.ID = e.ID
		s.Enabled = flags&flagEnabled != 0
		s.URL = d.string("url", MaxURLLen)
		s.Username = d.string("username", MaxCredentialLen)
		s.Password = d.string("password", MaxCredentialLen)
		replicas := d.uvarint("replicas")
		if d.err == nil && replicas > MaxReplicas {
			d.fail("replicas: %d out of range", replicas)
		}
		s.Replicas = int(replicas)
		s.ArchiveRetention = time.Duration(d.varint("archive retention"))
		s.CreateTime = nanosTime(d.varint("create time"))
		s.UpdateTime = nanosTime(d.varint("update time"))
		n := d.uvarint("label count")
		if d.err == nil && n > MaxLabels {
			d.fail("labels: %d exceeds %d", n, MaxLabels)
		}
		if d.err == nil && n > 0 {
			s.Labels = make(map[string]string, n)
			prev := ""
			for i := uint64(0); i < n && d.err == nil; i++ {
				k := d.string("label key", MaxLabelKeyLen)
				v := d.string("label value", MaxLabelValueLen)
				if d.err == nil && i > 0 && k <= prev {
					d.fail("labels: keys not strictly increasing")
				}
				s.Labels[k], prev = v, k
			}
		}
		if b[0] == formatV2 {
			w := d.uvarint("weight")
			if d.err == nil && w > MaxWeight {
				d.fail("weight: %d out of range", w)
			}
			s.Weight = int(w)
			s.Scope = d.string("scope", MaxScopeLen)
			switch st := d.byte("strict scope"); st {
			case 0, 1:
				s.StrictScope = st == 1
			default:
				d.fail("strict scope: %d is not a bool", st)
			}
		}
	} else if b[0] == formatV2 {
		d.fail("tombstone in format 2")
	} else if flags&flagEnabled != 0 {
		d.fail("tombstone with enabled flag")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Entry{}, d.err
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	return e, nil
}
