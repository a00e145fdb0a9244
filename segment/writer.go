package segment

import (
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Track is one elementary stream of a Writer. The MP4 track ID is its index
// in WriterConfig.Tracks plus one.
type Track struct {
	// ClockRate is the rate of the track's PTS/DTS (90000 for video, the
	// sample rate for audio). Required.
	ClockRate int
	// Codec is one of mp4.CodecH264, CodecH265, CodecMPEG4Audio, CodecOpus,
	// CodecLPCM (G.711 decoded to LPCM by the caller). Required.
	Codec mp4.Codec
}

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Stream is the stream id (see ValidateStreamID). Required.
	Stream string
	// Class is ClassArchive (default) or ClassBuffer.
	Class Class
	// Origin is OriginLive (default) or OriginBackfill.
	Origin Origin
	// Tracks of the stream; the first video track (or track 0 when there
	// is none) is the reference track that cuts segments and parts.
	Tracks []Track
	// SegmentDuration: a new segment starts at the first reference-track
	// keyframe at least this long after the segment's start. Default 60s.
	SegmentDuration time.Duration
	// PartDuration: a part is written once it holds at least this much
	// reference-track media. Default 1s.
	PartDuration time.Duration
}

// EnsureDefaults fills zero durations with their defaults.
func (c *WriterConfig) EnsureDefaults() {
	if c.SegmentDuration <= 0 {
		c.SegmentDuration = 60 * time.Second
	}
	if c.PartDuration <= 0 {
		c.PartDuration = time.Second
	}
}

// Frame is one access unit (video) or audio frame.
type Frame struct {
	// Track is the index into WriterConfig.Tracks.
	Track int
	// PTS is the presentation time in the track's clock rate. All tracks of
	// a writer share one time origin (PTS 0 is the same instant for every
	// track), which may be anywhere.
	PTS int64
	// DTS is the decode time in the same units; == PTS without B-frames;
	// non-decreasing per track.
	DTS int64
	// Wall is the wall-clock time of PTS (RTCP sender reports, or the
	// caller's estimate). It anchors the segment times.
	Wall time.Time
	// Random marks a random access point (IDR/keyframe); audio frames are
	// always random.
	Random bool
	// Payload is the sample as stored in MP4: AVCC (4-byte length-prefixed
	// NALUs) for H.264/H.265, one raw frame for audio. WriteFrame copies
	// it; WriteOwnedFrame keeps it.
	Payload []byte
}

// Timing thresholds of the writer's wall-clock mapping.
const (
	// maxDrift: when a reference frame's Wall differs from the time its PTS
	// maps to by more than this, the mapping is re-anchored (new segment).
	maxDrift = 500 * time.Millisecond
	// maxJump: a reference-track DTS step longer than this is a
	// discontinuity (lost packets, camera restart), not a long frame.
	maxJump = 2 * time.Second
)

// Writer turns frames of one stream into segment files. It is not safe for
// concurrent use; use one Writer per stream.
type Writer struct {
	s      *Store
	cfg    WriterConfig
	ref    int
	tracks []*trackState
	init   []byte

	seg *openSegment

	// Wall-clock mapping of the reference track: wall(dts) =
	// anchorWall + (dts-anchorDTS)/clock. Consecutive segments under one
	// anchor are exactly contiguous.
	anchored   bool
	anchorWall time.Time
	anchorDTS  int64

	closed bool
	// parts counts the parts written, for Options.DropPartEvery.
	parts uint64
	// switchClass: the segment that starts at the next reference keyframe
	// goes to nextClass (SetClass).
	switchClass bool
	nextClass   Class
}

type trackState struct {
	clock   int64
	pending *Frame // the newest frame: its duration is known at the next one
	lastDur int64
	origin  int64 // segment start in this track's units
	base    int64 // DTS - origin of the current part's first sample
	samples []*fmp4.Sample
}

type openSegment struct {
	e        entry
	f        vfs.File
	hash     hash.Hash
	seq      uint32
	partFrom int64 // reference DTS at the start of the current part
	refEnd   int64 // reference DTS just past the last committed sample
	written  int64 // bytes written
	// last durable state: what survives a crash or a write error
	syncedSize int64
	syncedEnd  time.Time
	syncedHash []byte // sha256 state (encoding.BinaryMarshaler)
	lastSync   time.Time
	initEnd    int64
	writtenEnd time.Time
}

// NewWriter starts a writer for one stream. The first segment starts at the
// first reference-track keyframe.
func (s *Store) NewWriter(cfg WriterConfig) (*Writer, error) {
	cfg.EnsureDefaults()
	if s.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if err := ValidateStreamID(cfg.Stream); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	if !cfg.Class.valid() || !cfg.Origin.valid() {
		return nil, fmt.Errorf("segment: stream %s: invalid class %d or origin %d", cfg.Stream, cfg.Class, cfg.Origin)
	}
	if len(cfg.Tracks) == 0 {
		return nil, fmt.Errorf("segment: stream %s: no tracks", cfg.Stream)
	}
	w := &Writer{s: s, cfg: cfg, ref: -1}
	init := fmp4.Init{}
	for i, t := range cfg.Tracks {
		if t.ClockRate <= 0 || t.Codec == nil {
			return nil, fmt.Errorf("segment: stream %s: track %d needs a clock rate and a codec", cfg.Stream, i)
		}
		switch t.Codec.(type) {
		case *mp4.CodecH264, *mp4.CodecH265, *mp4.CodecMPEG4Audio, *mp4.CodecOpus, *mp4.CodecLPCM:
		default:
			return nil, fmt.Errorf("segment: stream %s: track %d: codec %T not supported", cfg.Stream, i, t.Codec)
		}
		if w.ref < 0 && t.Codec.IsVideo() {
			w.ref = i
		}
		w.tracks = append(w.tracks, &trackState{clock: int64(t.ClockRate)})
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: i + 1, TimeScale: uint32(t.ClockRate), Codec: t.Codec})
	}
	if w.ref < 0 {
		w.ref = 0
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("segment: stream %s: init: %w", cfg.Stream, err)
	}
	w.init = buf.Bytes()
	return w, nil
}

func (w *Writer) refClock() int64 { return w.tracks[w.ref].clock }

func (w *Writer) wallOf(dts int64) time.Time {
	return w.anchorWall.Add(ticksToDuration(dts-w.anchorDTS, w.refClock()))
}

// WriteFrame adds one frame. Errors wrap their cause; after a write error
// the segment is closed at its last durable part and the writer starts a
// new segment by itself at the next keyframe.
func (w *Writer) WriteFrame(f Frame) error { return w.writeFrame(f, false) }

// WriteOwnedFrame is WriteFrame without the copy of f.Payload: the writer
// keeps the slice until the part holding it is written, and the caller
// must neither change nor reuse it. A recording session, whose payloads
// are fresh per frame, saves a copy of every byte it records (and the
// garbage of it: at 50 cameras of 4 Mbit/s, 25 MB/s less to allocate).
func (w *Writer) WriteOwnedFrame(f Frame) error { return w.writeFrame(f, true) }

func (w *Writer) writeFrame(f Frame, owned bool) error {
	if w.closed {
		return fmt.Errorf("segment: stream %s: writer %w", w.cfg.Stream, ErrClosed)
	}
	if f.Track < 0 || f.Track >= len(w.tracks) {
		return fmt.Errorf("segment: stream %s: frame of track %d, writer has %d tracks", w.cfg.Stream, f.Track, len(w.tracks))
	}
	if len(f.Payload) == 0 || f.Wall.IsZero() {
		return fmt.Errorf("segment: stream %s: frame without payload or wall time", w.cfg.Stream)
	}
	t := w.tracks[f.Track]
	isRef := f.Track == w.ref
	if t.pending != nil && f.DTS < t.pending.DTS {
		// Timestamps went back (camera or session restart): a new timeline.
		err := w.endSegment()
		w.anchored = false
		if err != nil {
			return err
		}
	}
	if isRef && w.seg != nil && t.pending != nil {
		jump := ticksToDuration(f.DTS-t.pending.DTS, t.clock) > maxJump
		drift := f.Wall.Sub(w.wallOf(f.PTS)).Abs() > maxDrift
		if jump || drift {
			err := w.endSegment()
			w.anchored = false
			if err != nil {
				return err
			}
		}
	}
	if w.seg == nil {
		if !isRef || !f.Random {
			return nil // waiting for a keyframe to start a segment
		}
		if err := w.startSegment(&f); err != nil {
			return err
		}
		t.pending = keepFrame(&f, owned)
		return nil
	}
	if !isRef && f.DTS < t.origin {
		return nil // before the segment's start: belonged to the previous one
	}
	if isRef && f.Random && (ticksToDuration(f.DTS-t.origin, t.clock) >= w.cfg.SegmentDuration || w.switchClass) {
		w.commit(f.Track, f.DTS-t.pending.DTS)
		if err := w.endSegment(); err != nil {
			return err
		}
		if err := w.startSegment(&f); err != nil {
			return err
		}
		t.pending = keepFrame(&f, owned)
		return nil
	}
	if t.pending != nil {
		w.commit(f.Track, f.DTS-t.pending.DTS)
	}
	t.pending = keepFrame(&f, owned)
	if isRef && ticksToDuration(w.seg.refEnd-w.seg.partFrom, t.clock) >= w.cfg.PartDuration {
		if err := w.flushPart(); err != nil {
			return w.fail(err)
		}
	}
	return nil
}

// keepFrame returns the frame as the writer holds it until its part is
// written: f itself when the caller handed over its payload, or a copy.
func keepFrame(f *Frame, owned bool) *Frame {
	if owned {
		return f
	}
	c := *f
	c.Payload = append([]byte(nil), f.Payload...)
	return &c
}

// commit turns track i's pending frame into a sample of the current part.
func (w *Writer) commit(i int, dur int64) {
	t := w.tracks[i]
	p := t.pending
	t.pending = nil
	if p == nil {
		return
	}
	if dur < 0 {
		dur = 0
	}
	if dur > 1<<31 {
		dur = 1 << 31
	}
	if len(t.samples) == 0 {
		t.base = p.DTS - t.origin
	}
	t.samples = append(t.samples, &fmp4.Sample{
		Duration:        uint32(dur),
		PTSOffset:       int32(p.PTS - p.DTS),
		IsNonSyncSample: !p.Random,
		Payload:         p.Payload,
	})
	t.lastDur = dur
	if i == w.ref {
		w.seg.refEnd = p.DTS + dur
	}
}

// defaultDur is the duration given to a track's last sample when no
// previous duration is known: one 25 fps frame for video, 20 ms for audio.
func (w *Writer) defaultDur(i int) int64 {
	t := w.tracks[i]
	if t.lastDur > 0 {
		return t.lastDur
	}
	if w.cfg.Tracks[i].Codec.IsVideo() {
		return t.clock / 25
	}
	return t.clock / 50
}

// SetClass makes the segment in progress end at the next reference
// keyframe and the segments from there on go to class c (a replica
// promoted to home archives from then on). The two segments meet exactly:
// no instant is lost or recorded twice. Without a segment in progress the
// next one starts in c.
func (w *Writer) SetClass(c Class) error {
	if !c.valid() {
		return fmt.Errorf("segment: stream %s: invalid class %d", w.cfg.Stream, c)
	}
	if c == w.cfg.Class {
		w.switchClass = false
		return nil
	}
	if w.seg == nil {
		w.cfg.Class = c
		return nil
	}
	w.switchClass, w.nextClass = true, c
	return nil
}

func (w *Writer) startSegment(f *Frame) error {
	s := w.s
	if w.switchClass {
		w.cfg.Class, w.switchClass = w.nextClass, false
	}
	if !w.anchored {
		w.anchorWall = f.Wall.Add(-ticksToDuration(f.PTS-f.DTS, w.refClock()))
		w.anchorDTS = f.DTS
		w.anchored = true
	}
	start := w.wallOf(f.DTS).UTC()
	rel := segmentRelPath(w.cfg.Stream, start, w.cfg.Class, w.cfg.Origin, s.opts.Node)
	path := s.abs(rel)
	dayDir := s.fs.PathDir(path)
	streamDir := s.fs.PathDir(dayDir)
	wrap := func(what string, err error) error {
		return fmt.Errorf("segment: stream %s: %s %s: %w", w.cfg.Stream, what, rel, err)
	}
	s.dirMu.Lock()
	if err := s.fs.MkdirAll(dayDir, 0o755); err != nil {
		s.dirMu.Unlock()
		return wrap("create directory for", err)
	}
	if _, err := s.fs.Stat(path); err == nil {
		s.dirMu.Unlock()
		return wrap("create", errors.New("file exists"))
	}
	// Active before the file exists, so a concurrent Check leaves it alone.
	s.mu.Lock()
	s.active[rel] = true
	s.mu.Unlock()
	inactive := func() {
		s.mu.Lock()
		delete(s.active, rel)
		s.mu.Unlock()
	}
	file, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	s.dirMu.Unlock()
	if err != nil {
		inactive()
		return wrap("create", err)
	}
	h := sha256.New()
	failed := func(what string, err error) error {
		_ = file.Close()
		_ = s.fs.Remove(path)
		inactive()
		return wrap(what, err)
	}
	h.Write(w.init)
	// Write a copy: w.init is reused and Write may scribble on its input.
	if _, err := file.Write(append([]byte(nil), w.init...)); err != nil {
		return failed("write init of", err)
	}
	if err := file.Sync(); err != nil {
		return failed("sync", err)
	}
	// The new directory entries must survive a crash too.
	for _, d := range []string{dayDir, streamDir, s.abs(segmentsDir)} {
		if err := syncDir(s.fs, d); err != nil {
			return failed("sync directory of", err)
		}
	}
	st, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	seg := &openSegment{
		e: entry{Stream: w.cfg.Stream, Start: start, End: start, Bytes: int64(len(w.init)), Node: s.opts.Node,
			Path: rel, Class: w.cfg.Class, Origin: w.cfg.Origin, Open: true},
		f: file, hash: h, seq: 1, partFrom: f.DTS, refEnd: f.DTS,
		written: int64(len(w.init)), syncedSize: int64(len(w.init)), syncedEnd: start, syncedHash: st,
		lastSync: time.Now(), initEnd: int64(len(w.init)), writtenEnd: start,
	}
	if err := s.putEntry(&seg.e, pebble.NoSync); err != nil {
		return failed("index", err)
	}
	w.seg = seg
	refOrigin := f.DTS
	for i, t := range w.tracks {
		t.pending = nil
		t.samples = nil
		if i == w.ref {
			t.origin = refOrigin
		} else {
			// Same instant in this track's units (all tracks share one origin).
			t.origin = refOrigin * t.clock / w.refClock()
		}
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// partBufs are the buffers parts are marshalled into, shared by every
// writer: a fresh buffer per part grew by doubling, which cleared and
// copied each part's bytes twice over (a fifth of the CPU of recording,
// profiled at 20 streams of 4 Mbit/s). A bounded free list rather than a
// sync.Pool, which every GC empties, and rather than one per writer,
// which would hold a part of memory per stream.
var partBufs = make(chan *seekablebuffer.Buffer, 8)

// getPartBuf returns an empty buffer with room for size bytes.
func getPartBuf(size int) *seekablebuffer.Buffer {
	var b *seekablebuffer.Buffer
	select {
	case b = <-partBufs:
		b.Reset()
	default:
		b = new(seekablebuffer.Buffer)
	}
	b.Grow(size)
	return b
}

// putPartBuf gives a buffer back; one far larger than a part usually is
// (a burst) is left to the GC.
func putPartBuf(b *seekablebuffer.Buffer) {
	if b.Cap() > 8<<20 {
		return
	}
	select {
	case partBufs <- b:
	default:
	}
}

// flushPart writes the samples committed since the last part as one part
// (one write), then fsyncs per policy and records the new end in the index.
func (w *Writer) flushPart() error {
	seg := w.seg
	p := fmp4.Part{SequenceNumber: seg.seq}
	for i, t := range w.tracks {
		if len(t.samples) > 0 {
			p.Tracks = append(p.Tracks, &fmp4.PartTrack{ID: i + 1, BaseTime: uint64(t.base), Samples: t.samples})
		}
	}
	if len(p.Tracks) == 0 {
		return nil
	}
	var size int
	for _, t := range p.Tracks {
		for _, sm := range t.Samples {
			size += len(sm.Payload)
		}
	}
	buf := getPartBuf(size + 64*len(p.Tracks) + 1024)
	defer putPartBuf(buf)
	if err := p.Marshal(buf); err != nil {
		return fmt.Errorf("marshal part: %w", err)
	}
	for _, t := range w.tracks {
		t.samples = nil
	}
	data := buf.Bytes()
	w.parts++
	if e := w.s.opts.DropPartEvery; e > 0 && w.parts%e == e/5 {
		data = nil // the chaos suite's silent loss: nothing written, nothing hashed
	}
	// Hash first: a vfs.File may reuse or (Pebble's invariant builds)
	// scribble over a buffer once Write returns. On a failed write the
	// durable hash state (syncedHash) is what counts.
	seg.hash.Write(data)
	n, err := seg.f.Write(data)
	seg.written += int64(n)
	if err != nil {
		return fmt.Errorf("write part: %w", err)
	}
	seg.seq++
	w.s.parts.Add(1)
	seg.partFrom = seg.refEnd
	seg.writtenEnd = w.wallOf(seg.refEnd)
	if w.s.opts.Fsync == FsyncPart || time.Since(seg.lastSync) >= w.s.opts.FsyncInterval {
		return w.syncSegment()
	}
	return nil
}

// syncSegment fsyncs the file and records the durable state.
func (w *Writer) syncSegment() error {
	seg := w.seg
	if err := seg.f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	seg.lastSync = time.Now()
	seg.syncedSize = seg.written
	seg.syncedEnd = seg.writtenEnd
	seg.syncedHash, _ = seg.hash.(encoding.BinaryMarshaler).MarshalBinary()
	seg.e.End = seg.syncedEnd
	seg.e.Bytes = seg.syncedSize
	if err := w.s.putEntry(&seg.e, pebble.NoSync); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// endSegment commits every pending frame, writes the last part, fsyncs and
// indexes the closed segment with its checksum.
func (w *Writer) endSegment() error {
	if w.seg == nil {
		for _, t := range w.tracks {
			t.pending = nil
		}
		return nil
	}
	for i, t := range w.tracks {
		if i != w.ref && t.pending != nil {
			w.commit(i, w.defaultDur(i))
		}
	}
	if t := w.tracks[w.ref]; t.pending != nil {
		w.commit(w.ref, w.defaultDur(w.ref))
	}
	if err := w.flushPart(); err != nil {
		return w.fail(err)
	}
	if w.seg.syncedSize != w.seg.written {
		if err := w.syncSegment(); err != nil {
			return w.fail(err)
		}
	}
	seg := w.seg
	if err := seg.f.Close(); err != nil {
		return w.fail(fmt.Errorf("close: %w", err))
	}
	seg.f = nil
	w.seg = nil
	return w.closeEntry(seg)
}

// closeEntry indexes seg as closed at its durable state, or removes it when
// no part of it is durable.
func (w *Writer) closeEntry(seg *openSegment) error {
	s := w.s
	// Inactive only once the index says closed (or gone), so a concurrent
	// Check never sees an open entry without a writer.
	defer func() {
		s.mu.Lock()
		delete(s.active, seg.e.Path)
		s.mu.Unlock()
	}()
	if seg.syncedSize <= seg.initEnd {
		_ = s.fs.Remove(s.abs(seg.e.Path))
		if err := s.deleteEntry(&seg.e); err != nil {
			return fmt.Errorf("segment: stream %s: drop empty segment %s: %w", w.cfg.Stream, seg.e.Path, err)
		}
		return nil
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(seg.syncedHash); err != nil {
		return fmt.Errorf("segment: stream %s: checksum state: %w", w.cfg.Stream, err)
	}
	copy(seg.e.Checksum[:], h.Sum(nil))
	seg.e.Open = false
	seg.e.End = seg.syncedEnd
	seg.e.Bytes = seg.syncedSize
	if err := s.putEntry(&seg.e, pebble.Sync); err != nil {
		return fmt.Errorf("segment: stream %s: index %s: %w", w.cfg.Stream, seg.e.Path, err)
	}
	return nil
}

// fail handles an I/O error of the open segment: the segment is closed at
// its last durable part (the rest becomes a gap) and the writer waits for
// the next keyframe to start a new one.
func (w *Writer) fail(cause error) error {
	seg := w.seg
	w.seg = nil
	for _, t := range w.tracks {
		t.pending = nil
		t.samples = nil
	}
	if seg == nil {
		return cause
	}
	if seg.f != nil {
		_ = seg.f.Close()
	}
	err := fmt.Errorf("segment: stream %s: %s: %w", w.cfg.Stream, seg.e.Path, cause)
	w.s.log.Error("segment write failed; closed at last durable part", "stream", w.cfg.Stream,
		"path", seg.e.Path, "durable_end", seg.syncedEnd, "err", cause)
	if cerr := w.closeEntry(seg); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// Close writes the last part, closes and indexes the open segment.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.endSegment()
}
