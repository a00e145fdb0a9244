package segment

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// RemoteSegment is a segment another node holds, as its ListSegments lists
// it, with the means to copy its bytes: a clip cut with CutClipFrom takes
// what this store lacks from such segments.
type RemoteSegment struct {
	// Info is the segment as the other node lists it: Stream, Node, Start,
	// End, Path, and Checksum ("" for a segment still being written).
	Info SegmentInfo
	// Fetch returns the segment's bytes (of a segment being written, up
	// to its last durable part).
	Fetch func(ctx context.Context) ([]byte, error)
	// Release, if set, takes back the bytes Fetch returned once the
	// caller is done with them, for reuse.
	Release func([]byte)
}

// clipSeg is one segment a clip may be cut from, of this store or of
// another node.
type clipSeg struct {
	node       string
	start, end time.Time
	local      *entry
	remote     *RemoteSegment
	path       string // absolute, in the store's FS: at once for a local one, once fetched for a remote one
	name       string // node and relative path, for messages and the entity tag
	// The part of the segment the clip takes, on the clock of the node
	// that recorded it: [lo, hi); a zero bound is open. skip: none of it.
	lo, hi time.Time
	skip   bool
	// shift puts its wall times on the clip's clock (that of its first
	// segment): two recorders stamp the same frame a few milliseconds
	// apart.
	shift time.Duration
	read  bool       // kf and last are known
	kf    []keyframe // of the reference track, in order
	last  time.Time  // end of its last reference sample
}

type keyframe struct {
	wall time.Time
	sum  uint64 // FNV-1a of the payload, with its length
}

// joinTolerance is how far apart two segments of one node may be and still
// be one recording (a rotation leaves a frame's time at most), and how
// early another node's segment may start after the chain's end to be
// taken as continuing it.
const joinTolerance = 100 * time.Millisecond

// seamTolerance is how much of a frame two nodes' clocks may disagree by
// where a clip passes from one to the other with no common keyframe.
const seamTolerance = 20 * time.Millisecond

// chooseChain picks, in time order, the segments a clip of [from, to) is
// cut from: at each point the chain goes on with the node it is on while
// that node holds the next moment (no seam), else with the segment that
// reaches furthest (this node's on a near tie: its bytes need no copy), and
// across a hole no one holds with the segment that starts first after it.
func chooseChain(cands []*clipSeg, from, to time.Time, self string) []*clipSeg {
	slices.SortStableFunc(cands, func(a, b *clipSeg) int {
		if c := a.start.Compare(b.start); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	var chain []*clipSeg
	t, node := from, ""
	for t.Before(to) {
		var best *clipSeg
		for _, c := range cands {
			if c.start.After(t.Add(joinTolerance)) {
				break
			}
			if !c.end.After(t) {
				continue
			}
			if best == nil || better(c, best, t, node, self) {
				best = c
			}
		}
		if best == nil {
			// A hole: go on where the next segment starts.
			i := slices.IndexFunc(cands, func(c *clipSeg) bool { return c.start.After(t) })
			if i < 0 || !cands[i].start.Before(to) {
				break
			}
			t, node = cands[i].start, ""
			continue
		}
		chain = append(chain, best)
		t, node = best.end, best.node
	}
	return chain
}

// better reports whether the chain, at t on node, should go on with c
// rather than with best (both hold t, or start within joinTolerance after
// it).
func better(c, best *clipSeg, t time.Time, node, self string) bool {
	if (c.node == node) != (best.node == node) {
		return c.node == node
	}
	if c.node == node {
		return false // both go on on the same node: the one that starts first
	}
	if cc, bc := !c.start.After(t), !best.start.After(t); cc != bc {
		return cc // one holds t itself, the other starts just after it
	}
	ce, be := c.end, best.end
	if c.node == self {
		ce = ce.Add(2 * time.Second)
	}
	if best.node == self {
		be = be.Add(2 * time.Second)
	}
	return ce.After(be)
}

// CutClip reads and verifies, one at a time, the segments of one stream
// that cover [from, to) and keeps the sample tables of the clip: it starts
// at the keyframe at or before from and stops before the first segment
// whose codec parameters differ from the first one's (Info().Truncated).
// At most one segment's bytes are in memory at a time. Every closed
// segment used is verified against its checksum before CutClip returns, so
// a corrupt segment fails an export before a byte is written. No coverage
// in [from, to) gives an error wrapping ErrNoCoverage; a clip beyond the
// MP4 size limit ErrClipTooLarge.
func (s *Store) CutClip(ctx context.Context, stream string, from, to time.Time) (*Cut, error) {
	return s.CutClipFrom(ctx, stream, from, to, nil)
}

// CutClipFrom is CutClip over this store's segments and other nodes'
// (remote): the clip takes each moment from one segment (see chooseChain),
// copying the remote ones it takes into the data directory's tmp/ and
// checking them against their checksums (a remote segment that cannot be
// copied or fails its checksum is left out and the chain chosen again).
// Where the clip passes from one node's recording to another's it cuts at
// the last keyframe both hold (the same bytes: both recorded the same
// camera), so no frame plays twice or is left out and the timestamps stay
// monotonic; with no common keyframe it passes at the other node's first
// keyframe after the end of the first's recording. Release removes the
// copies.
func (s *Store) CutClipFrom(ctx context.Context, stream string, from, to time.Time, remote []RemoteSegment) (_ *Cut, err error) {
	if !to.After(from) {
		return nil, fmt.Errorf("segment: export %s: empty range %v..%v", stream, from, to)
	}
	all, err := s.entries(stream, from, to)
	if err != nil {
		return nil, fmt.Errorf("segment: export %s: %w", stream, err)
	}
	var cands []*clipSeg
	for _, e := range all {
		if e.End.After(e.Start) {
			cands = append(cands, &clipSeg{node: cmp.Or(e.Node, s.opts.Node), start: e.Start, end: e.End, local: e,
				path: s.abs(e.Path), name: e.Path})
		}
	}
	for i := range remote {
		r := &remote[i]
		if r.Info.Stream != stream || r.Fetch == nil || !r.Info.End.After(r.Info.Start) ||
			!r.Info.End.After(from) || !r.Info.Start.Before(to) {
			continue
		}
		cands = append(cands, &clipSeg{node: r.Info.Node, start: r.Info.Start, end: r.Info.End, remote: r,
			name: r.Info.Node + ":" + cmp.Or(r.Info.Path, r.Info.Start.UTC().Format(time.RFC3339Nano))})
	}
	noCoverage := fmt.Errorf("segment: export %s [%s, %s): %w", stream, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), ErrNoCoverage)
	c := &Cut{s: s, stream: stream}
	defer func() {
		if err != nil {
			c.Release()
		}
	}()
	var chain []*clipSeg
	for {
		chain = chooseChain(cands, from, to, s.opts.Node)
		failed := -1
		for i, g := range chain {
			if g.remote == nil || g.path != "" {
				continue
			}
			if err := c.fetch(ctx, g); err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("segment: export %s: %w", stream, ctx.Err())
				}
				s.log.Warn("export: a segment of another node could not be copied; the clip takes that time from elsewhere",
					"stream", stream, "segment", g.name, "err", err)
				failed = i
				break
			}
		}
		if failed < 0 {
			break
		}
		cands = slices.DeleteFunc(cands, func(x *clipSeg) bool { return x == chain[failed] })
	}
	if len(chain) == 0 {
		return nil, noCoverage
	}

	// load reads, verifies and parses one segment; nil when its codecs
	// differ from the first segment's. The segment parsed last is kept:
	// the passes below usually end in the segment the next starts with.
	var first []*fmp4.InitTrack
	var last struct {
		g  *clipSeg
		ps *parsedSegment
	}
	load := func(g *clipSeg) (*parsedSegment, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if last.g == g {
			return last.ps, nil
		}
		last.g, last.ps = nil, nil // let the previous segment's bytes go before reading the next
		var data []byte
		var err error
		if g.local != nil {
			data, err = s.readVerified(g.local)
		} else {
			data, err = s.readAbs(g.path)
		}
		if err != nil {
			return nil, fmt.Errorf("segment: export %s: %w", stream, err)
		}
		ps, err := parseSegment(data)
		if err != nil {
			return nil, fmt.Errorf("segment: export %s: %s: %w", stream, g.name, err)
		}
		if first == nil {
			first = ps.Init.Tracks
		} else if !codecsEqual(first, ps.Init.Tracks) {
			return nil, nil
		}
		last.g, last.ps = g, ps
		return ps, nil
	}
	// keyframes reads the reference keyframes of g and the end of its
	// last reference sample; false when g's codecs differ.
	keyframes := func(g *clipSeg) (bool, error) {
		if g.read {
			return true, nil
		}
		ps, err := load(g)
		if err != nil || ps == nil {
			return false, err
		}
		st := entryTimes(g)
		forEachSample(st, ps, func(tid int, wall time.Time, smp *fmp4.Sample) bool {
			if tid != ps.Ref.ID {
				return true
			}
			if !smp.IsNonSyncSample {
				h := fnv.New64a()
				h.Write(smp.Payload)
				g.kf = append(g.kf, keyframe{wall: wall, sum: h.Sum64() ^ uint64(len(smp.Payload))})
			}
			g.last = wall.Add(ticksToDuration(int64(smp.Duration), int64(ps.Ref.TimeScale)))
			return true
		})
		g.read = true
		return true, nil
	}

	// The seams: where the chain passes from one node to another.
	prev := chain[0]
	for _, b := range chain[1:] {
		if b.node == prev.node {
			b.shift = prev.shift
			if b.start.Before(prev.end) { // one node's overlapping copies
				b.lo = prev.end
			}
			prev = b
			continue
		}
		okA, err := keyframes(prev)
		if err != nil {
			return nil, err
		}
		okB, err := keyframes(b)
		if err != nil {
			return nil, err
		}
		if !okA || !okB {
			break // a codec change: pass 2 ends the clip there
		}
		b.shift = prev.shift
		matched := false
		at := map[uint64]time.Time{}
		for _, k := range b.kf {
			if _, dup := at[k.sum]; !dup {
				at[k.sum] = k.wall
			}
		}
		for i := len(prev.kf) - 1; i >= 0; i-- {
			k := prev.kf[i]
			if !prev.lo.IsZero() && k.wall.Before(prev.lo) {
				break
			}
			if bw, ok := at[k.sum]; ok {
				prev.hi, b.lo = k.wall, bw
				b.shift = prev.shift + k.wall.Sub(bw)
				matched = true
				break
			}
		}
		if !matched {
			edge := prev.last.Add(prev.shift).Add(-seamTolerance)
			i := slices.IndexFunc(b.kf, func(k keyframe) bool { return !k.wall.Add(b.shift).Before(edge) })
			if i < 0 {
				b.skip = true
				continue
			}
			b.lo = b.kf[i].wall
		}
		prev = b
	}

	// Pass 1: the clip starts at the last reference keyframe at or before
	// from (or the first one after it).
	var t0 time.Time
	found := false
	for _, g := range chain {
		if g.skip {
			continue
		}
		ok, err := keyframes(g)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		for _, k := range g.kf {
			if (!g.lo.IsZero() && k.wall.Before(g.lo)) || (!g.hi.IsZero() && !k.wall.Before(g.hi)) {
				continue
			}
			w := k.wall.Add(g.shift)
			if t0.IsZero() || !w.After(from) {
				t0 = w
				continue
			}
			found = true
			break
		}
		if found {
			break
		}
	}
	if t0.IsZero() || !t0.Before(to) {
		return nil, noCoverage
	}

	// Pass 2: the samples of every track in [t0, to), each segment's in its
	// part, on the clip's clock.
	type outTrack struct {
		t       *pmp4.Track
		refs    []sampleRef
		lastEnd time.Time
	}
	tracks := map[int]*outTrack{}
	var order []*outTrack
	refID := -1
	samples := 0
	for _, g := range chain {
		if g.skip {
			continue
		}
		ps, err := load(g)
		if err != nil {
			return nil, err
		}
		if ps == nil {
			c.info.Truncated = true
			break
		}
		if refID < 0 {
			refID = ps.Ref.ID
			for _, it := range first {
				ot := &outTrack{t: &pmp4.Track{ID: it.ID, TimeScale: it.TimeScale, Codec: it.Codec}}
				tracks[it.ID] = ot
				order = append(order, ot)
			}
		}
		seg := int32(len(c.paths))
		c.paths = append(c.paths, g.path)
		c.names = append(c.names, g.name)
		n := 0
		for _, p := range ps.Parts {
			for _, pt := range p.Part.Tracks {
				n += len(pt.Samples)
			}
		}
		block := make([]pmp4.Sample, 0, n) // one allocation for the segment's samples
		used := false
		forEachSample(entryTimes(g), ps, func(tid int, own time.Time, smp *fmp4.Sample) bool {
			ot := tracks[tid]
			if ot == nil || (!g.lo.IsZero() && own.Before(g.lo)) || (!g.hi.IsZero() && !own.Before(g.hi)) {
				return true
			}
			wall := own.Add(g.shift)
			if wall.Before(t0) || !wall.Before(to) {
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
					c.info.Gaps = append(c.info.Gaps, Interval{ot.lastEnd, wall})
				}
			}
			size := uint32(len(smp.Payload))
			ot.refs = append(ot.refs, sampleRef{off: ps.payloadOffset(smp.Payload), seg: seg, size: size})
			samples++
			c.dataBytes += int64(size)
			block = append(block, pmp4.Sample{
				Duration:        smp.Duration,
				PTSOffset:       smp.PTSOffset,
				IsNonSyncSample: smp.IsNonSyncSample,
				PayloadSize:     size,
			})
			ot.t.Samples = append(ot.t.Samples, &block[len(block)-1])
			ot.lastEnd = wall.Add(ticksToDuration(int64(smp.Duration), ts))
			if tid == refID {
				c.info.End = ot.lastEnd
				used = true
			}
			return true
		})
		if used {
			c.info.Segments++
			if g.remote != nil {
				c.info.Remote++
			}
		}
		if c.dataBytes+int64(samples)*moovBytesPerSample+64<<10 > math.MaxUint32 {
			return nil, fmt.Errorf("segment: export %s: %w", stream, ErrClipTooLarge)
		}
	}
	for _, ot := range order {
		if len(ot.t.Samples) > 0 {
			c.pres.Tracks = append(c.pres.Tracks, ot.t)
			c.refs = append(c.refs, ot.refs)
		}
	}
	if tracks[refID] == nil || len(tracks[refID].t.Samples) == 0 {
		return nil, noCoverage
	}
	c.info.Start = t0
	c.bind()
	return c, nil
}

// entryTimes is what forEachSample needs of a segment: its start.
func entryTimes(g *clipSeg) *entry { return &entry{Start: g.start} }

// fetch copies remote segment g into the data directory's tmp/, checked
// against its checksum, and points g at the copy.
func (c *Cut) fetch(ctx context.Context, g *clipSeg) error {
	data, err := g.remote.Fetch(ctx)
	if err != nil {
		return err
	}
	if want := g.remote.Info.Checksum; want != "" {
		sum := sha256.Sum256(data)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != want {
			return fmt.Errorf("%w (got %s, want %s)", ErrChecksumMismatch, got, want)
		}
	}
	fs := c.s.fs
	dir := fs.PathJoin(c.s.opts.Dir, "tmp")
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := fs.PathJoin(dir, "clip-"+rand.Text()+".mp4")
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	c.temp = append(c.temp, path)
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	g.path = path
	return nil
}

// readAbs reads a whole file of the store's FS by its absolute path.
func (s *Store) readAbs(path string) ([]byte, error) {
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Federated reports whether the clip takes segments of other nodes: it
// holds copies of them until Release, and must not be cloned.
func (c *Cut) Federated() bool { return len(c.temp) > 0 }

// Release closes the files of the clip and removes the copies of other
// nodes' segments it was cut from; the clip cannot be written after.
func (c *Cut) Release() error {
	errs := []error{c.Close()}
	for _, p := range c.temp {
		if err := c.s.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	c.temp = nil
	return errors.Join(errs...)
}
