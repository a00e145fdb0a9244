package segment

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// lookup returns the current index entry of an indexed segment.
func (s *Store) lookup(si SegmentInfo) (_ *entry, err error) {
	if err := ValidateStreamID(si.Stream); err != nil {
		return nil, err
	}
	if _, err := parseSegmentRelPath(si.Path); err != nil {
		return nil, fmt.Errorf("segment %s: %w", si.Path, err)
	}
	k := segmentKey(&entry{Stream: si.Stream, Start: si.Start, Path: si.Path})
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("segment %s: %w", si.Path, errNotIndexed)
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return decodeEntry(k, v)
}

// lookupPath returns the index entry of a segment file, nil if none.
func (s *Store) lookupPath(rel string) (*entry, error) {
	fn, err := parseSegmentRelPath(rel)
	if err != nil {
		return nil, err
	}
	e, err := s.lookup(SegmentInfo{Stream: fn.stream, Start: fn.start, Path: rel})
	if errors.Is(err, errNotIndexed) {
		return nil, nil
	}
	return e, err
}

var errNotIndexed = errors.New("not in the index")

// ReadSegment returns the bytes of an indexed segment (up to its last
// durable part), verifying the checksum of a closed segment. On a mismatch
// the file is quarantined, the entry dropped (the range becomes a gap) and
// the error wraps ErrChecksumMismatch.
func (s *Store) ReadSegment(si SegmentInfo) ([]byte, error) {
	e, err := s.lookup(si)
	if err != nil {
		return nil, err
	}
	return s.readVerified(e)
}

func (s *Store) readVerified(e *entry) ([]byte, error) {
	data, err := s.readFile(e.Path, e.Bytes)
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", e.Path, err)
	}
	if e.Open || sha256.Sum256(data) == e.Checksum {
		return data, nil
	}
	return nil, s.checksumFailed(e)
}

// checksumFailed quarantines the file of e, whose bytes do not match its
// checksum, and drops its entry (the range becomes a gap); the error
// wraps ErrChecksumMismatch.
func (s *Store) checksumFailed(e *entry) error {
	err := fmt.Errorf("segment %s: %w", e.Path, ErrChecksumMismatch)
	if s.opts.ReadOnly {
		return err
	}
	s.log.Error("segment failed its checksum; quarantined, its range is now a gap", "path", e.Path)
	if qerr := s.quarantine(e.Path); qerr != nil {
		return errors.Join(err, qerr)
	}
	if derr := s.deleteEntry(e); derr != nil {
		return errors.Join(err, derr)
	}
	if s.opts.OnQuarantine != nil {
		s.opts.OnQuarantine(e.info())
	}
	return err
}

// ExportInfo describes an exported clip.
type ExportInfo struct {
	// Start is the wall time of the clip's first frame: the keyframe at or
	// before the requested from (or the first recorded keyframe after it).
	Start time.Time
	// End is the wall time just past the clip's last reference frame.
	End time.Time
	// Segments is the number of segments the clip was cut from.
	Segments int
	// Gaps are the holes inside [Start, End) with no recording; in the
	// file the frame before each gap is held over it, so playback time
	// stays equal to wall time.
	Gaps []Interval
	// Truncated is set when the clip stops early because the codec
	// parameters changed between segments.
	Truncated bool
	// Remote is how many of the segments are other nodes' (CutClipFrom).
	Remote int
}

// Export writes the clip [from, to) of one stream to w as one
// non-fragmented MP4 (moov before mdat), starting at the keyframe at or
// before from and crossing segment boundaries: CutClip, then Cut.Write.
// No coverage in [from, to) gives an error wrapping ErrNoCoverage.
func (s *Store) Export(ctx context.Context, stream string, from, to time.Time, w io.Writer) (ExportInfo, error) {
	c, err := s.CutClip(ctx, stream, from, to)
	if err != nil {
		return ExportInfo{}, err
	}
	defer c.Close()
	return c.Info(), c.Write(ctx, w)
}

// ErrClipTooLarge means a clip would not fit the 32-bit sample offsets of
// a non-fragmented MP4 (4 GiB); a shorter range does.
var ErrClipTooLarge = errors.New("clip larger than an MP4 file can hold (4 GiB); export a shorter range")

// moovBytesPerSample bounds what one sample adds to the moov (stsz, stco,
// stss, stts and ctts entries), for the size check before writing.
const moovBytesPerSample = 32

// Cut is a clip cut out of the recorded segments but not written yet: the
// MP4 sample tables and where each sample's bytes are in its segment file.
// It holds no segment bytes and no open file, so its memory grows with the
// number of samples (about 60 bytes each), not with the bytes of
// the clip. Write streams the payloads from the files, at most two of them
// open at a time.
type Cut struct {
	s      *Store
	stream string
	info   ExportInfo
	pres   pmp4.Presentation
	paths  []string      // segment files (absolute), indexed by sampleRef.seg
	names  []string      // and what they are: node and relative path
	temp   []string      // copies of other nodes' segments, removed by Release
	refs   [][]sampleRef // per track of pres, per sample
	next   []int         // per track, the sample whose payload is asked for next
	// dataBytes is the sum of the payload sizes; header the bytes of the
	// file before the first payload, once Size has run.
	dataBytes, header int64

	// Used by Write.
	ctx   context.Context
	files [2]cutFile // the two segment files read last
	buf   []byte     // payload buffer, reused: pmp4 writes each payload out before asking for the next
	// A ranged write: payloads wholly before skipBelow (an offset in the
	// file) are not read; mdatAt is the file offset of the next payload.
	skipBelow, mdatAt int64
	dry               bool   // Size's pass: payloads are not written at all
	size              int64  // the file's length, once Size has run
	etag              string // and its entity tag
}

// sampleRef is where a sample's payload is on disk.
type sampleRef struct {
	off  int64
	seg  int32
	size uint32
}

type cutFile struct {
	seg int32
	f   vfs.File
}

// Info describes the clip.
func (c *Cut) Info() ExportInfo { return c.info }

// bind points every sample's GetPayload at c: one function per track,
// which hands out the track's payloads in order. A muxer asks for them in
// order (a track's chunk offsets only grow), so the samples need no
// function of their own (32 bytes each).
func (c *Cut) bind() {
	c.next = make([]int, len(c.pres.Tracks))
	for t, tr := range c.pres.Tracks {
		get := func() ([]byte, error) {
			k := c.next[t]
			if k >= len(c.refs[t]) {
				return nil, fmt.Errorf("segment: export %s: track %d: payload %d of %d asked for", c.stream, t, k+1, len(c.refs[t]))
			}
			c.next[t]++
			return c.payload(t, k)
		}
		for _, smp := range tr.Samples {
			smp.GetPayload = get
		}
	}
}

// Samples is the number of samples in the clip, of all tracks: what its
// sample tables, and a Clone, cost in memory (about 60 bytes each).
func (c *Cut) Samples() int {
	n := 0
	for _, refs := range c.refs {
		n += len(refs)
	}
	return n
}

// Clone returns a Cut of the same clip that can be written while c is
// written, or kept to be cloned again (a cache of cuts): the sample tables
// are copied, the samples' places on disk shared. Nothing is read. Size has
// run on the clone when it had on c.
func (c *Cut) Clone() *Cut {
	d := &Cut{s: c.s, stream: c.stream, info: c.info, paths: c.paths, names: c.names, refs: c.refs,
		dataBytes: c.dataBytes, header: c.header, size: c.size, etag: c.etag}
	d.pres.Tracks = make([]*pmp4.Track, len(c.pres.Tracks))
	for t, tr := range c.pres.Tracks {
		nt := *tr
		block := make([]pmp4.Sample, len(tr.Samples))
		nt.Samples = make([]*pmp4.Sample, len(tr.Samples))
		for k, smp := range tr.Samples {
			block[k] = *smp
			nt.Samples[k] = &block[k]
		}
		d.pres.Tracks[t] = &nt
	}
	d.bind()
	return d
}

// Write writes the clip to w as one non-fragmented MP4 (moov before mdat),
// reading the sample payloads from the segment files as it goes; it closes
// them before returning.
func (c *Cut) Write(ctx context.Context, w io.Writer) error {
	c.begin(ctx, 0)
	defer c.Close()
	if err := c.pres.Marshal(w); err != nil {
		return fmt.Errorf("segment: export %s: write mp4: %w", c.stream, err)
	}
	return nil
}

// Size returns the length in bytes of the file Write writes, and a strong
// validator of its content (an HTTP entity tag, quoted): it changes when
// the sample tables, or where the payloads come from, change. Size builds
// the sample tables but reads no payload.
func (c *Cut) Size() (int64, string, error) {
	if c.size > 0 {
		return c.size, c.etag, nil
	}
	c.begin(context.Background(), 0)
	c.dry = true
	defer func() { c.dry = false }()
	// Without payloads the file is its header (ftyp, moov and the mdat box
	// header); the payloads follow it, in the order pmp4 asks for them.
	h := fnv.New128a()
	var n countingWriter
	if err := c.pres.Marshal(io.MultiWriter(h, &n)); err != nil {
		return 0, "", fmt.Errorf("segment: export %s: size mp4: %w", c.stream, err)
	}
	for _, p := range c.names {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	var b [16]byte
	for _, refs := range c.refs {
		for _, r := range refs {
			binary.LittleEndian.PutUint64(b[:8], uint64(r.off))
			binary.LittleEndian.PutUint32(b[8:12], uint32(r.seg))
			binary.LittleEndian.PutUint32(b[12:], r.size)
			h.Write(b[:])
		}
	}
	c.header = int64(n)
	c.size = c.header + c.dataBytes
	c.etag = `"` + hex.EncodeToString(h.Sum(nil)) + `"`
	return c.size, c.etag, nil
}

// WriteRange writes bytes [off, off+n) of the file Write writes (see Size)
// to w. Payloads wholly before off are not read, so a range near the end
// of a long clip costs the sample tables, not the clip.
func (c *Cut) WriteRange(ctx context.Context, w io.Writer, off, n int64) error {
	size, _, err := c.Size()
	if err != nil {
		return err
	}
	if off < 0 || n < 0 || off+n > size {
		return fmt.Errorf("segment: export %s: range %d+%d outside the %d bytes of the clip", c.stream, off, n, size)
	}
	if n == 0 {
		return nil
	}
	c.begin(ctx, off)
	defer c.Close()
	rw := &rangeWriter{w: w, from: off, to: off + n}
	if err := c.pres.Marshal(rw); err != nil && !errors.Is(err, errRangeDone) {
		return fmt.Errorf("segment: export %s: write mp4: %w", c.stream, err)
	}
	if rw.at < rw.to {
		return fmt.Errorf("segment: export %s: mp4 ended at byte %d, before %d", c.stream, rw.at, rw.to)
	}
	return nil
}

// begin readies c for a pass of the muxer: payloads from the first, those
// wholly before file offset skipBelow not read (after Size, or 0).
func (c *Cut) begin(ctx context.Context, skipBelow int64) {
	c.ctx, c.skipBelow, c.mdatAt = ctx, skipBelow, c.header
	clear(c.next)
}

// errRangeDone stops a ranged write at the end of its range.
var errRangeDone = errors.New("range written")

// rangeWriter passes on the bytes of [from, to) of what is written to it,
// and stops the writer with errRangeDone once past to.
type rangeWriter struct {
	w            io.Writer
	at, from, to int64
}

func (r *rangeWriter) Write(p []byte) (int, error) {
	lo, hi := r.at, r.at+int64(len(p))
	r.at = hi
	if s, e := max(lo, r.from), min(hi, r.to); s < e {
		if _, err := r.w.Write(p[s-lo : e-lo]); err != nil {
			return 0, err
		}
	}
	if hi >= r.to {
		return len(p), errRangeDone
	}
	return len(p), nil
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// Close closes the segment files Write has open. Calling it again, or
// without Write, does nothing.
func (c *Cut) Close() error {
	var errs []error
	for i := range c.files {
		if c.files[i].f != nil {
			errs = append(errs, c.files[i].f.Close())
			c.files[i].f = nil
		}
	}
	return errors.Join(errs...)
}

// payload reads the payload of sample k of track t into the clip's
// buffer, valid until the next call.
func (c *Cut) payload(t, k int) ([]byte, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	r := c.refs[t][k]
	if c.dry {
		return nil, nil
	}
	if c.skipBelow > 0 {
		at := c.mdatAt
		c.mdatAt += int64(r.size)
		if at+int64(r.size) <= c.skipBelow { // before the range: its bytes are dropped unread
			if cap(c.buf) < int(r.size) {
				c.buf = make([]byte, r.size)
			}
			return c.buf[:r.size], nil
		}
	}
	f, err := c.file(r.seg)
	if err != nil {
		return nil, err
	}
	if cap(c.buf) < int(r.size) {
		c.buf = make([]byte, r.size)
	}
	b := c.buf[:r.size]
	if _, err := f.ReadAt(b, r.off); err != nil {
		return nil, fmt.Errorf("segment %s: read at %d: %w", c.names[r.seg], r.off, err)
	}
	return b, nil
}

// file returns segment file seg, opened. Payloads are written in time
// order, so they come from at most two files at a time (at a boundary the
// last video of one segment interleaves with the first audio of the next):
// of two open files, the earlier segment is closed to open a third.
func (c *Cut) file(seg int32) (vfs.File, error) {
	for i := range c.files {
		if c.files[i].f != nil && c.files[i].seg == seg {
			return c.files[i].f, nil
		}
	}
	slot := &c.files[0]
	if c.files[0].f != nil && (c.files[1].f == nil || c.files[1].seg < c.files[0].seg) {
		slot = &c.files[1]
	}
	if slot.f != nil {
		if err := slot.f.Close(); err != nil {
			return nil, fmt.Errorf("segment %s: %w", c.names[slot.seg], err)
		}
		slot.f = nil
	}
	f, err := c.s.fs.Open(c.paths[seg])
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", c.names[seg], err)
	}
	slot.seg, slot.f = seg, f
	return f, nil
}

func durationToTicks(d time.Duration, rate int64) int64 {
	sec, rem := int64(d/time.Second), int64(d%time.Second)
	return sec*rate + (rem*rate+int64(time.Second)/2)/int64(time.Second)
}

// forEachSample calls fn for every sample of segment e (parsed as ps) in
// file order with its wall time, until fn returns false; it reports
// whether fn never did.
func forEachSample(e *entry, ps *parsedSegment, fn func(trackID int, wall time.Time, s *fmp4.Sample) bool) bool {
	scale := map[int]int64{}
	for _, it := range ps.Init.Tracks {
		scale[it.ID] = int64(it.TimeScale)
	}
	for _, p := range ps.Parts {
		for _, pt := range p.Part.Tracks {
			ts := scale[pt.ID]
			t := int64(pt.BaseTime)
			for _, smp := range pt.Samples {
				if !fn(pt.ID, e.Start.Add(ticksToDuration(t, ts)), smp) {
					return false
				}
				t += int64(smp.Duration)
			}
		}
	}
	return true
}

// ErrNoSegment means the store holds no segment of the stream that starts
// at the time asked for (with the checksum asked for).
var ErrNoSegment = errors.New("no such segment")
