package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Key spaces of the index (see doc.go).
const (
	prefixSegment byte = 0x01 // 0x01 stream 0x00 start8 basename → entry
	prefixOutage  byte = 0x02 // 0x02 stream 0x00 start8 → end8
	prefixMaxLen  byte = 0x03 // 0x03 stream → longest segment duration (int64 ns, big-endian)
)

const entryVersion = 1

// entry is the decoded value of a segment key.
type entry struct {
	Stream   string
	Start    time.Time
	End      time.Time
	Bytes    int64
	Node     string
	Path     string // relative, slash-separated
	Class    Class
	Origin   Origin
	Open     bool // still being written (or crashed while written)
	Checksum [sha256.Size]byte
}

func (e *entry) info() SegmentInfo {
	si := SegmentInfo{Stream: e.Stream, Node: e.Node, Start: e.Start, End: e.End, Bytes: e.Bytes,
		Path: e.Path, Class: e.Class, Origin: e.Origin}
	if !e.Open {
		si.Checksum = "sha256:" + hex.EncodeToString(e.Checksum[:])
	}
	return si
}

// timeKey encodes t as 8 bytes that sort like the times: Unix nanoseconds
// with the sign bit flipped, big-endian.
func timeKey(t time.Time) [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano())^(1<<63))
	return b
}

func decodeTimeKey(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

func streamPrefix(p byte, stream string) []byte {
	k := make([]byte, 0, 2+len(stream)+8+64)
	k = append(k, p)
	k = append(k, stream...)
	return append(k, 0)
}

func timePrefix(p byte, stream string, t time.Time) []byte {
	tk := timeKey(t)
	return append(streamPrefix(p, stream), tk[:]...)
}

func segmentKey(e *entry) []byte {
	base := e.Path[strings.LastIndexByte(e.Path, '/')+1:]
	return append(timePrefix(prefixSegment, e.Stream, e.Start), base...)
}

func maxLenKey(stream string) []byte { return append([]byte{prefixMaxLen}, stream...) }

// parseSegmentKey returns the stream and start of a segment key.
func parseSegmentKey(k []byte) (string, time.Time, error) {
	if len(k) < 1 || k[0] != prefixSegment {
		return "", time.Time{}, errors.New("not a segment key")
	}
	i := bytes.IndexByte(k[1:], 0)
	if i < 0 || len(k) < 1+i+1+8 {
		return "", time.Time{}, errors.New("malformed segment key")
	}
	stream := string(k[1 : 1+i])
	return stream, decodeTimeKey(k[2+i : 10+i]), nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encode returns the versioned binary value of e (see doc.go).
func (e *entry) encode() []byte {
	b := make([]byte, 0, 64+len(e.Path)+len(e.Node))
	b = append(b, entryVersion)
	var flags byte
	if e.Open {
		flags |= 1
	}
	b = append(b, flags, byte(e.Class), byte(e.Origin))
	b = binary.BigEndian.AppendUint64(b, uint64(e.End.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Bytes))
	b = append(b, e.Checksum[:]...)
	b = binary.AppendUvarint(b, uint64(len(e.Path)))
	b = append(b, e.Path...)
	b = binary.AppendUvarint(b, uint64(len(e.Node)))
	b = append(b, e.Node...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeEntry validates and decodes a segment key and value. A corrupt value
// is an error, never a panic.
func decodeEntry(k, v []byte) (*entry, error) {
	stream, start, err := parseSegmentKey(k)
	if err != nil {
		return nil, err
	}
	const fixed = 4 + 8 + 8 + sha256.Size
	if len(v) < fixed+2+4 {
		return nil, fmt.Errorf("index entry of %d bytes is too short", len(v))
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, errors.New("index entry crc mismatch")
	}
	if body[0] != entryVersion {
		return nil, fmt.Errorf("index entry version %d not supported", body[0])
	}
	e := &entry{Stream: stream, Start: start, Open: body[1]&1 != 0, Class: Class(body[2]), Origin: Origin(body[3])}
	if body[1]&^1 != 0 || !e.Class.valid() || !e.Origin.valid() {
		return nil, errors.New("index entry has unknown flags, class or origin")
	}
	e.End = time.Unix(0, int64(binary.BigEndian.Uint64(body[4:12]))).UTC()
	e.Bytes = int64(binary.BigEndian.Uint64(body[12:20]))
	copy(e.Checksum[:], body[20:fixed])
	rest := body[fixed:]
	readStr := func() (string, error) {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return "", errors.New("index entry string out of bounds")
		}
		s := string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
		return s, nil
	}
	if e.Path, err = readStr(); err != nil {
		return nil, err
	}
	if e.Node, err = readStr(); err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errors.New("index entry has trailing bytes")
	}
	if e.Bytes < 0 || e.End.Before(e.Start) || e.Path == "" {
		return nil, errors.New("index entry has negative size, end before start or no path")
	}
	if want := segmentKey(e); !bytes.Equal(want, k) {
		return nil, errors.New("index entry path does not match its key")
	}
	return e, nil
}

// putEntry writes e and raises the stream's max-length bound if needed.
func (s *Store) putEntry(e *entry, opts *pebble.WriteOptions) (err error) {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(segmentKey(e), e.encode(), nil); err != nil {
		return err
	}
	d := e.End.Sub(e.Start)
	cur, err := s.maxLenLocked(e.Stream)
	if err != nil {
		return err
	}
	if d > cur {
		if err := b.Set(maxLenKey(e.Stream), binary.BigEndian.AppendUint64(nil, uint64(d)), nil); err != nil {
			return err
		}
	}
	return b.Commit(opts)
}

func (s *Store) deleteEntry(e *entry) error {
	return s.deleteKey(segmentKey(e))
}

// deleteKey deletes one index key, synced.
func (s *Store) deleteKey(k []byte) (err error) {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	return s.db.Delete(k, pebble.Sync)
}

// maxLen is the longest segment duration ever indexed for stream, so a
// range query can start its iterator that far before `from`.
func (s *Store) maxLenLocked(stream string) (time.Duration, error) {
	v, closer, err := s.db.Get(maxLenKey(stream))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("index: max-length value of %d bytes", len(v))
	}
	return time.Duration(binary.BigEndian.Uint64(v)), nil
}

var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

func normRange(from, to time.Time) (time.Time, time.Time) {
	if from.IsZero() {
		from = minTime
	}
	if to.IsZero() {
		to = maxTime
	}
	return from, to
}

// entries returns the index entries of stream overlapping [from, to),
// ordered by start. Zero from/to mean unbounded.
func (s *Store) entries(stream string, from, to time.Time) (_ []*entry, err error) {
	if err := ValidateStreamID(stream); err != nil {
		return nil, err
	}
	from, to = normRange(from, to)
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	ml, err := s.maxLenLocked(stream)
	if err != nil {
		return nil, err
	}
	lo := from.Add(-ml)
	if lo.Before(minTime) {
		lo = minTime
	}
	upper := timePrefix(prefixSegment, stream, to)
	if to.Equal(maxTime) {
		upper = append([]byte{prefixSegment}, stream...)
		upper = append(upper, 1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: timePrefix(prefixSegment, stream, lo), UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*entry
	for ok := it.First(); ok; ok = it.Next() {
		e, err := decodeEntry(it.Key(), it.Value())
		if err != nil {
			return nil, fmt.Errorf("index key %q: %w", it.Key(), err)
		}
		if e.End.After(from) || (e.Start.Equal(e.End) && !e.Start.Before(from)) {
			out = append(out, e)
		}
	}
	return out, it.Error()
}

// allEntries returns every segment entry, with the keys of undecodable ones.
func (s *Store) allEntries() (_ []*entry, _ [][]byte, err error) {
	if err := s.rlock(); err != nil {
		return nil, nil, err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSegment}, UpperBound: []byte{prefixSegment + 1}})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	var out []*entry
	var bad [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		e, err := decodeEntry(it.Key(), it.Value())
		if err != nil {
			bad = append(bad, slices.Clone(it.Key()))
			continue
		}
		out = append(out, e)
	}
	return out, bad, it.Error()
}

// scanIndex reads every key and value of the index, so a damaged table
// shows up wherever it is, not only where a query happens to look.
func (s *Store) scanIndex() (err error) {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	it, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if _, err := it.ValueAndErr(); err != nil {
			return err
		}
	}
	return it.Error()
}

// Streams lists the streams that have at least one indexed segment.
func (s *Store) Streams() (_ []string, err error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSegment}, UpperBound: []byte{prefixSegment + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; {
		stream, _, err := parseSegmentKey(it.Key())
		if err != nil {
			return nil, fmt.Errorf("index key %q: %w", it.Key(), err)
		}
		out = append(out, stream)
		next := append([]byte{prefixSegment}, stream...)
		ok = it.SeekGE(append(next, 1))
	}
	return out, it.Error()
}

// Extent returns the span of stream's indexed segments, of every class:
// from the start of the first to the end of the one that ends last; ok is
// false when none is indexed. It reads a few index keys at each end, not
// the whole index of the stream.
func (s *Store) Extent(stream string) (_ Interval, ok bool, err error) {
	if err := ValidateStreamID(stream); err != nil {
		return Interval{}, false, err
	}
	if err := s.rlock(); err != nil {
		return Interval{}, false, err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	ml, err := s.maxLenLocked(stream)
	if err != nil {
		return Interval{}, false, err
	}
	upper := append(append([]byte{prefixSegment}, stream...), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: streamPrefix(prefixSegment, stream), UpperBound: upper})
	if err != nil {
		return Interval{}, false, err
	}
	defer it.Close()
	if !it.First() {
		return Interval{}, false, it.Error()
	}
	first, err := decodeEntry(it.Key(), it.Value())
	if err != nil {
		return Interval{}, false, fmt.Errorf("index key %q: %w", it.Key(), err)
	}
	iv := Interval{Start: first.Start, End: first.End}
	// Segments are keyed by start: the one that ends last starts within the
	// stream's longest segment before the last start.
	var lastStart time.Time
	for ok := it.Last(); ok; ok = it.Prev() {
		e, err := decodeEntry(it.Key(), it.Value())
		if err != nil {
			return Interval{}, false, fmt.Errorf("index key %q: %w", it.Key(), err)
		}
		if lastStart.IsZero() {
			lastStart = e.Start
		} else if e.Start.Before(lastStart.Add(-ml)) {
			break
		}
		if e.End.After(iv.End) {
			iv.End = e.End
		}
	}
	return iv, true, it.Error()
}

// Segments returns the segments of stream overlapping [from, to), ordered
// by start. A zero from or to leaves that side unbounded.
func (s *Store) Segments(stream string, from, to time.Time) ([]SegmentInfo, error) {
	es, err := s.entries(stream, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]SegmentInfo, len(es))
	for i, e := range es {
		out[i] = e.info()
	}
	return out, nil
}

// Coverage returns the merged intervals of stream's segments, clipped to
// [from, to). A zero from or to leaves that side unbounded.
func (s *Store) Coverage(stream string, from, to time.Time) ([]Interval, error) {
	es, err := s.entries(stream, from, to)
	if err != nil {
		return nil, err
	}
	ivs := make([]Interval, 0, len(es))
	for _, e := range es {
		ivs = append(ivs, Interval{e.Start, e.End})
	}
	from, to = normRange(from, to)
	return Clip(Merge(ivs), from, to), nil
}

// Gaps returns [from, to) minus the coverage of stream. A zero from or to
// is replaced by the start of the first or the end of the last segment.
func (s *Store) Gaps(stream string, from, to time.Time) ([]Interval, error) {
	cov, err := s.Coverage(stream, from, to)
	if err != nil {
		return nil, err
	}
	if len(cov) == 0 && (from.IsZero() || to.IsZero()) {
		return nil, nil
	}
	if from.IsZero() {
		from = cov[0].Start
	}
	if to.IsZero() {
		to = cov[len(cov)-1].End
	}
	return Subtract(Interval{from, to}, cov), nil
}

// AddSourceOutage records that the camera of stream was unreachable during
// iv, so the time is reported as a source gap rather than a system gap.
// Overlapping or touching outages are merged.
func (s *Store) AddSourceOutage(stream string, iv Interval) (err error) {
	if err := ValidateStreamID(stream); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if !iv.End.After(iv.Start) {
		return fmt.Errorf("segment: source outage %v..%v is empty", iv.Start, iv.End)
	}
	s.mu.Lock() // read-merge-write must not interleave
	defer s.mu.Unlock()
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	old, keys, err := s.outages(stream, iv.Start, iv.End, true)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	merged := iv
	for i, o := range old {
		if o.Start.Before(merged.Start) {
			merged.Start = o.Start
		}
		if o.End.After(merged.End) {
			merged.End = o.End
		}
		if err := b.Delete(keys[i], nil); err != nil {
			return err
		}
	}
	ek := timeKey(merged.End)
	if err := b.Set(timePrefix(prefixOutage, stream, merged.Start), ek[:], nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// SourceOutages returns the recorded source outages of stream overlapping
// [from, to), clipped to it. A zero from or to leaves that side unbounded.
func (s *Store) SourceOutages(stream string, from, to time.Time) (_ []Interval, err error) {
	if err := ValidateStreamID(stream); err != nil {
		return nil, err
	}
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	ivs, _, err := s.outages(stream, from, to, false)
	if err != nil {
		return nil, err
	}
	from, to = normRange(from, to)
	return Clip(ivs, from, to), nil
}

// outages lists stored outages overlapping (or, with touching, touching)
// [from, to). Stored outages never overlap, so the one starting before from
// is found by seeking back one key.
func (s *Store) outages(stream string, from, to time.Time, touching bool) ([]Interval, [][]byte, error) {
	from, to = normRange(from, to)
	lower := streamPrefix(prefixOutage, stream)
	upper := append([]byte{prefixOutage}, stream...)
	upper = append(upper, 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	ok := it.SeekLT(timePrefix(prefixOutage, stream, from))
	if !ok {
		ok = it.First()
	}
	var ivs []Interval
	var keys [][]byte
	for ; ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(lower)+8 || len(v) != 8 {
			return nil, nil, fmt.Errorf("index: malformed outage key %q", k)
		}
		iv := Interval{decodeTimeKey(k[len(lower):]), decodeTimeKey(v)}
		if iv.Start.After(to) || (!touching && !iv.Start.Before(to)) {
			break
		}
		if iv.End.After(from) || (touching && iv.End.Equal(from)) {
			ivs = append(ivs, iv)
			keys = append(keys, slices.Clone(k))
		}
	}
	return ivs, keys, it.Error()
}

// Merge sorts intervals and merges overlapping or touching ones; empty
// intervals are dropped.
func Merge(ivs []Interval) []Interval {
	ivs = slices.Clone(ivs)
	slices.SortFunc(ivs, func(a, b Interval) int { return a.Start.Compare(b.Start) })
	var out []Interval
	for _, iv := range ivs {
		if !iv.End.After(iv.Start) {
			continue
		}
		if n := len(out); n > 0 && !iv.Start.After(out[n-1].End) {
			if iv.End.After(out[n-1].End) {
				out[n-1].End = iv.End
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// Clip restricts sorted, disjoint intervals to [from, to).
func Clip(ivs []Interval, from, to time.Time) []Interval {
	var out []Interval
	for _, iv := range ivs {
		if iv.Start.Before(from) {
			iv.Start = from
		}
		if iv.End.After(to) {
			iv.End = to
		}
		if iv.End.After(iv.Start) {
			out = append(out, iv)
		}
	}
	return out
}

// Subtract returns r minus the sorted, disjoint intervals cov.
func Subtract(r Interval, cov []Interval) []Interval {
	var out []Interval
	cur := r.Start
	for _, c := range cov {
		if !c.End.After(cur) {
			continue
		}
		if !c.Start.Before(r.End) {
			break
		}
		if c.Start.After(cur) {
			out = append(out, Interval{cur, c.Start})
		}
		cur = c.End
	}
	if r.End.After(cur) {
		out = append(out, Interval{cur, r.End})
	}
	return out
}
