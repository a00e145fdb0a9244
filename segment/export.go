package segment

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
	err = fmt.Errorf("segment %s: %w", e.Path, ErrChecksumMismatch)
	if s.opts.ReadOnly {
		return nil, err
	}
	s.log.Error("segment failed its checksum; quarantined, its range is now a gap", "path", e.Path)
	if qerr := s.quarantine(e.Path); qerr != nil {
		return nil, errors.Join(err, qerr)
	}
	if derr := s.deleteEntry(e); derr != nil {
		return nil, errors.Join(err, derr)
	}
	return nil, err
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
}

type exportSeg struct {
	e  *entry
	ps *parsedSegment
	f  vfs.File
}

// Export writes the clip [from, to) of one stream to w as one
// non-fragmented MP4 (moov before mdat), starting at the keyframe at or
// before from and crossing segment boundaries. Sample payloads are read
// lazily while the file is written. Every closed segment used is verified
// against its checksum first. No coverage in [from, to) gives an error
// wrapping ErrNoCoverage.
func (s *Store) Export(ctx context.Context, stream string, from, to time.Time, w io.Writer) (ExportInfo, error) {
	var info ExportInfo
	if !to.After(from) {
		return info, fmt.Errorf("segment: export %s: empty range %v..%v", stream, from, to)
	}
	es, err := s.entries(stream, from, to)
	if err != nil {
		return info, fmt.Errorf("segment: export %s: %w", stream, err)
	}
	var segs []*exportSeg
	defer func() {
		for _, sg := range segs {
			if sg.f != nil {
				sg.f.Close()
			}
		}
	}()
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return info, err
		}
		if !e.End.After(e.Start) {
			continue
		}
		data, err := s.readVerified(e)
		if err != nil {
			return info, fmt.Errorf("segment: export %s: %w", stream, err)
		}
		ps, err := parseSegment(data)
		if err != nil {
			return info, fmt.Errorf("segment: export %s: %s: %w", stream, e.Path, err)
		}
		if len(segs) > 0 && !codecsEqual(segs[0].ps.Init.Tracks, ps.Init.Tracks) {
			info.Truncated = true
			break
		}
		f, err := s.fs.Open(s.abs(e.Path))
		if err != nil {
			return info, fmt.Errorf("segment: export %s: %w", stream, err)
		}
		segs = append(segs, &exportSeg{e: e, ps: ps, f: f})
	}
	if len(segs) == 0 {
		return info, fmt.Errorf("segment: export %s [%s, %s): %w", stream, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), ErrNoCoverage)
	}
	refID := segs[0].ps.Ref.ID

	// The clip starts at the last reference keyframe at or before from.
	t0 := time.Time{}
	forEachSample(segs, func(_ *exportSeg, tid int, wall time.Time, smp *fmp4.Sample) bool {
		if tid != refID || smp.IsNonSyncSample {
			return true
		}
		if t0.IsZero() || !wall.After(from) {
			t0 = wall
			return true
		}
		return false
	})
	if !t0.Before(to) {
		return info, fmt.Errorf("segment: export %s: %w", stream, ErrNoCoverage)
	}

	type outTrack struct {
		t       *pmp4.Track
		lastEnd time.Time
	}
	tracks := map[int]*outTrack{}
	var order []*outTrack
	for _, it := range segs[0].ps.Init.Tracks {
		ot := &outTrack{t: &pmp4.Track{ID: it.ID, TimeScale: it.TimeScale, Codec: it.Codec}}
		tracks[it.ID] = ot
		order = append(order, ot)
	}
	used := map[*exportSeg]bool{}
	forEachSample(segs, func(sg *exportSeg, tid int, wall time.Time, smp *fmp4.Sample) bool {
		ot := tracks[tid]
		if ot == nil || wall.Before(t0) || !wall.Before(to) {
			return true
		}
		ts := int64(ot.t.TimeScale)
		if len(ot.t.Samples) == 0 {
			ot.t.TimeOffset = int32(durationToTicks(wall.Sub(t0), ts))
		} else if gap := wall.Sub(ot.lastEnd); gap > 0 {
			if g := durationToTicks(gap, ts); g > 0 {
				ot.t.Samples[len(ot.t.Samples)-1].Duration += uint32(g)
			}
			if tid == refID && gap > time.Millisecond {
				info.Gaps = append(info.Gaps, Interval{ot.lastEnd, wall})
			}
		}
		f, off, size := sg.f, sg.ps.payloadOffset(smp.Payload), len(smp.Payload)
		ot.t.Samples = append(ot.t.Samples, &pmp4.Sample{
			Duration:        smp.Duration,
			PTSOffset:       smp.PTSOffset,
			IsNonSyncSample: smp.IsNonSyncSample,
			PayloadSize:     uint32(size),
			GetPayload: func() ([]byte, error) {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				b := make([]byte, size)
				_, err := f.ReadAt(b, off)
				return b, err
			},
		})
		ot.lastEnd = wall.Add(ticksToDuration(int64(smp.Duration), ts))
		if tid == refID {
			info.End = ot.lastEnd
			used[sg] = true
		}
		return true
	})
	var pres pmp4.Presentation
	for _, ot := range order {
		if len(ot.t.Samples) > 0 {
			pres.Tracks = append(pres.Tracks, ot.t)
		}
	}
	if tracks[refID] == nil || len(tracks[refID].t.Samples) == 0 {
		return info, fmt.Errorf("segment: export %s: %w", stream, ErrNoCoverage)
	}
	info.Start = t0
	info.Segments = len(used)
	if err := pres.Marshal(w); err != nil {
		return info, fmt.Errorf("segment: export %s: write mp4: %w", stream, err)
	}
	return info, nil
}

func durationToTicks(d time.Duration, rate int64) int64 {
	sec, rem := int64(d/time.Second), int64(d%time.Second)
	return sec*rate + (rem*rate+int64(time.Second)/2)/int64(time.Second)
}

// forEachSample calls fn for every sample of segs in file order with its
// wall time, until fn returns false.
func forEachSample(segs []*exportSeg, fn func(sg *exportSeg, trackID int, wall time.Time, s *fmp4.Sample) bool) {
	for _, sg := range segs {
		scale := map[int]int64{}
		for _, it := range sg.ps.Init.Tracks {
			scale[it.ID] = int64(it.TimeScale)
		}
		for _, p := range sg.ps.Parts {
			for _, pt := range p.Part.Tracks {
				ts := scale[pt.ID]
				t := int64(pt.BaseTime)
				for _, smp := range pt.Samples {
					if !fn(sg, pt.ID, sg.e.Start.Add(ticksToDuration(t, ts)), smp) {
						return
					}
					t += int64(smp.Duration)
				}
			}
		}
	}
}
