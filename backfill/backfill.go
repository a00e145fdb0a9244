// Package backfill makes a home's archive whole again by itself: for a
// stream the node is home for, it finds the holes in its own archive over
// the buffer window and fills them with the segments the stream's other
// holders recorded (and its own buffer), copied, checked against their
// checksums and indexed as backfill. It only fills holes, never overwrites
// what the home has, and takes nothing that fails its checksum, so
// corruption on one node does not spread. A hole that nobody holds is
// reported once as final and not tried again.
//
// A Filler has one call, Repair, that a node runs periodically, at once on
// start and on promotion, and after a dropped range or a quarantined
// segment; a scripted test drives it the same way.
package backfill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/understudy-nvr/understudy/replica"
	"github.com/understudy-nvr/understudy/segment"
)

// Config configures a Filler.
type Config struct {
	// Store is the home's segment store; Self its node id.
	Store *segment.Store
	Self  string
	// Buffer, if set, is the node's rolling buffer over Store: a buffer
	// segment of its own that fills a hole becomes archive without a copy
	// (replica.Buffer.Promote). Without it the segment is copied.
	Buffer *replica.Buffer
	// Remote lists what the other holders of stream have over [from, to),
	// each segment with the means to copy it. complete is false when a
	// holder did not answer: its share may still come, so no hole is final.
	// Fetches may run concurrently (the next segment is fetched while one
	// is written).
	Remote func(ctx context.Context, stream string, from, to time.Time) (segs []segment.RemoteSegment, complete bool)
	// RateBytes bounds the copy rate in bytes per second, so that live
	// recording keeps the disk; 0 is unbounded.
	RateBytes int64
	// MinHole is the shortest hole worth filling (default 200 ms: less is
	// a frame's jitter between segments).
	MinHole time.Duration
	// FinalAfter is how long a hole nobody holds must have ended before it
	// is final (default 2 min: a holder's segment being written is listed
	// once it is closed).
	FinalAfter time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Result is what one Repair did.
type Result struct {
	// Holes are the holes of the archive over the range, before the repair,
	// the time this node recorded as the camera's outage included.
	Holes []segment.Interval
	// Filled are the segments copied in or promoted, as the intervals
	// they cover.
	Filled []segment.SegmentInfo
	// Bytes copied (promoted segments are not copied).
	Bytes int64
	// Promoted counts the node's own buffer segments that became archive
	// in place.
	Promoted int
	// Pending are the parts of the holes still open and not final: a
	// holder has them and the copy failed, or a holder did not answer.
	Pending []segment.Interval
	// Final are the parts of holes that became final in this call (each is
	// reported once).
	Final []segment.Interval
}

// Filler repairs the archives of a node.
type Filler struct {
	cfg Config
	mu  sync.Mutex
	// final holds, per stream, the intervals reported final.
	final map[string][]segment.Interval
	lim   limiter
}

// New returns a Filler.
func New(cfg Config) (*Filler, error) {
	if cfg.Store == nil || cfg.Self == "" || cfg.Remote == nil {
		return nil, errors.New("backfill: Store, Self and Remote are required")
	}
	cfg.MinHole = cmp.Or(cfg.MinHole, 200*time.Millisecond)
	cfg.FinalAfter = cmp.Or(cfg.FinalAfter, 2*time.Minute)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Filler{cfg: cfg, final: map[string][]segment.Interval{}, lim: limiter{rate: cfg.RateBytes, now: cfg.Now}}, nil
}

// Holes returns the holes of the node's own archive of stream over
// [from, to): the camera's outages as this node recorded them (SOURCE
// gaps) and those reported final left out.
func (f *Filler) Holes(stream string, from, to time.Time) ([]segment.Interval, error) {
	return f.holes(stream, from, to, true)
}

// holes is Holes, with the node's own outages left in unless excuse.
func (f *Filler) holes(stream string, from, to time.Time, excuse bool) ([]segment.Interval, error) {
	segs, err := f.cfg.Store.Segments(stream, from, to)
	if err != nil {
		return nil, err
	}
	var cov []segment.Interval
	for _, si := range segs {
		if si.Class == segment.ClassArchive {
			cov = append(cov, si.Interval())
		}
	}
	if excuse {
		outages, err := f.cfg.Store.SourceOutages(stream, from, to)
		if err != nil {
			return nil, err
		}
		cov = append(cov, outages...)
	}
	f.mu.Lock()
	cov = append(cov, f.final[stream]...)
	f.mu.Unlock()
	var out []segment.Interval
	for _, h := range segment.Subtract(segment.Interval{Start: from, End: to}, segment.Merge(cov)) {
		if h.Duration() >= f.cfg.MinHole {
			out = append(out, h)
		}
	}
	return out, nil
}

// Repair fills the holes of the node's own archive of stream over
// [from, to): from its own buffer and from the segments of the stream's
// other holders that overlap a hole, whole segments (where one also covers
// time the archive has, the two hold the same frames: the timeline and the
// exports take each instant once, passing at a common keyframe). Each
// segment is copied, checked against its checksum, and indexed as an
// archive segment of origin backfill that keeps the recording node's id.
// A copy that fails is left for the next call.
//
// Time this node recorded as the camera's outage is filled too where
// another holder has segments: what one recorder saw as the camera gone
// (it was frozen, or cut off from the camera) another may have received.
// Only what no holder has stays excused as the camera's.
func (f *Filler) Repair(ctx context.Context, stream string, from, to time.Time) (Result, error) {
	var res Result
	holes, err := f.holes(stream, from, to, false)
	if err != nil || len(holes) == 0 {
		return res, err
	}
	outages, err := f.cfg.Store.SourceOutages(stream, from, to)
	if err != nil {
		return res, err
	}
	res.Holes = holes
	local, err := f.cfg.Store.Segments(stream, from, to)
	if err != nil {
		return res, err
	}
	have := map[string]bool{} // node and start of what the archive holds
	var cands []segment.RemoteSegment
	for _, si := range local {
		if si.Class == segment.ClassArchive {
			have[key(si)] = true
		} else if si.Checksum != "" {
			// Its own buffer first: no copy over the network.
			cands = append(cands, segment.RemoteSegment{Info: si, Fetch: func(context.Context) ([]byte, error) {
				return f.cfg.Store.ReadSegment(si)
			}})
		}
	}
	remote, complete := f.cfg.Remote(ctx, stream, from, to)
	for _, r := range remote {
		// Closed segments only: one being written is listed again, whole,
		// once closed.
		if r.Info.Checksum != "" && r.Fetch != nil && r.Info.End.After(r.Info.Start) {
			cands = append(cands, r)
		}
	}
	slices.SortStableFunc(cands, func(a, b segment.RemoteSegment) int {
		if c := a.Info.Start.Compare(b.Info.Start); c != 0 {
			return c
		}
		// Own bytes first, then the longest.
		if (a.Info.Node == f.cfg.Self) != (b.Info.Node == f.cfg.Self) {
			if a.Info.Node == f.cfg.Self {
				return -1
			}
			return 1
		}
		return b.Info.End.Compare(a.Info.End)
	})
	now := f.cfg.Now()
	// choose returns the candidate holding t that reaches furthest, else
	// the first one starting after t and before end.
	choose := func(t, end time.Time) *segment.RemoteSegment {
		var pick *segment.RemoteSegment
		for i := range cands {
			c := &cands[i]
			if !c.Info.End.After(t) || have[key(c.Info)] {
				continue
			}
			if c.Info.Start.After(t) {
				if pick == nil && c.Info.Start.Before(end) {
					pick = c
				}
				break
			}
			if pick == nil || f.better(c, pick) {
				pick = c
			}
		}
		return pick
	}
	// The copy of the segment likely to come next is fetched while the
	// current one is verified and written: the network and the disk work
	// at once.
	pf := newPrefetcher(ctx)
	defer pf.stop()
	for _, h := range holes {
		t := h.Start
		for t.Before(h.End) {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			pick := choose(t, h.End)
			if pick == nil {
				f.settleOutside(stream, segment.Interval{Start: t, End: h.End}, outages, complete, now, &res)
				break
			}
			if pick.Info.Start.After(t) {
				f.settleOutside(stream, segment.Interval{Start: t, End: pick.Info.Start}, outages, complete, now, &res)
			}
			have[key(pick.Info)] = true
			if pick.Info.End.Before(h.End) {
				if next := choose(pick.Info.End, h.End); next != nil && !f.promotable(stream, next) {
					pf.start(next)
				}
			}
			si, n, err := f.copy(ctx, stream, pick, pf)
			if err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				f.cfg.Logger.Warn("backfill: a copy failed; the hole stays for the next round", "stream", stream,
					"from_node", pick.Info.Node, "start", pick.Info.Start, "err", err)
				res.Pending = append(res.Pending, segment.Interval{Start: maxTime(t, pick.Info.Start), End: minTime(h.End, pick.Info.End)})
				t = maxTime(t, pick.Info.Start)
				// Another holder may have the same time: go on from here with
				// the ones left.
				continue
			}
			res.Filled = append(res.Filled, si)
			res.Bytes += n
			if n == 0 {
				res.Promoted++
			}
			t = pick.Info.End
		}
	}
	return res, nil
}

// prefetcher runs the Fetch of a candidate ahead of its turn.
type prefetcher struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	m      map[*segment.RemoteSegment]*fetched
}

type fetched struct {
	done chan struct{}
	data []byte
	err  error
}

func newPrefetcher(ctx context.Context) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	return &prefetcher{ctx: ctx, cancel: cancel, m: map[*segment.RemoteSegment]*fetched{}}
}

func (p *prefetcher) start(c *segment.RemoteSegment) {
	if _, ok := p.m[c]; ok {
		return
	}
	r := &fetched{done: make(chan struct{})}
	p.m[c] = r
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(r.done)
		r.data, r.err = c.Fetch(p.ctx)
	}()
}

// take returns c's bytes: the prefetched ones, or fetched now.
func (p *prefetcher) take(ctx context.Context, c *segment.RemoteSegment) ([]byte, error) {
	r, ok := p.m[c]
	if !ok {
		return c.Fetch(ctx)
	}
	delete(p.m, c)
	select {
	case <-r.done:
		return r.data, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stop cancels what is still being fetched, waits for it, and gives back
// the bytes nobody took.
func (p *prefetcher) stop() {
	p.cancel()
	p.wg.Wait()
	for c, r := range p.m {
		if r.err == nil && c.Release != nil {
			c.Release(r.data)
		}
	}
}

// better reports whether c, holding the moment to fill, should be taken
// rather than pick: the node's own buffer first (no copy over the
// network), then the one that reaches furthest.
func (f *Filler) better(c, pick *segment.RemoteSegment) bool {
	co, po := c.Info.Node == f.cfg.Self, pick.Info.Node == f.cfg.Self
	if co != po {
		return co
	}
	return c.Info.End.After(pick.Info.End)
}

// settleOutside settles the parts of iv outside the node's own recorded
// outages of the camera: those nobody holds are the camera's, no hole.
func (f *Filler) settleOutside(stream string, iv segment.Interval, outages []segment.Interval, complete bool, now time.Time, res *Result) {
	for _, part := range segment.Subtract(iv, segment.Merge(outages)) {
		f.settle(stream, part, complete, now, res)
	}
}

// settle records a part of a hole that no candidate holds: final when
// every holder answered and it ended FinalAfter ago, else pending.
func (f *Filler) settle(stream string, iv segment.Interval, complete bool, now time.Time, res *Result) {
	if iv.Duration() < f.cfg.MinHole {
		return
	}
	if !complete || now.Sub(iv.End) < f.cfg.FinalAfter {
		res.Pending = append(res.Pending, iv)
		return
	}
	f.mu.Lock()
	f.final[stream] = segment.Merge(append(f.final[stream], iv))
	f.mu.Unlock()
	res.Final = append(res.Final, iv)
	f.cfg.Logger.Warn("backfill: no node holds this range; it stays a gap", "stream", stream, "start", iv.Start, "end", iv.End)
}

// promotable reports whether c is the node's own buffer segment, which
// becomes archive in place instead of being copied.
func (f *Filler) promotable(stream string, c *segment.RemoteSegment) bool {
	return f.cfg.Buffer != nil && c.Info.Node == f.cfg.Self && c.Info.Class == segment.ClassBuffer && c.Info.Stream == stream
}

// copy fetches one segment and imports it as archive, or promotes the
// node's own buffer segment in place (0 bytes copied).
func (f *Filler) copy(ctx context.Context, stream string, c *segment.RemoteSegment, pf *prefetcher) (segment.SegmentInfo, int64, error) {
	if f.promotable(stream, c) {
		si, err := f.cfg.Buffer.Promote(c.Info)
		if err != nil {
			return segment.SegmentInfo{}, 0, fmt.Errorf("promote: %w", err)
		}
		f.cfg.Logger.Info("backfilled from the own buffer", "stream", stream, "start", si.Start, "end", si.End)
		return si, 0, nil
	}
	data, err := pf.take(ctx, c)
	if err != nil {
		return segment.SegmentInfo{}, 0, err
	}
	if c.Release != nil {
		defer c.Release(data)
	}
	if err := f.lim.wait(ctx, int64(len(data))); err != nil {
		return segment.SegmentInfo{}, 0, err
	}
	in := c.Info
	in.Stream = stream
	in.Node = cmp.Or(in.Node, f.cfg.Self)
	si, err := f.cfg.Store.ImportSegment(in, segment.ClassArchive, data)
	if err != nil {
		return segment.SegmentInfo{}, 0, fmt.Errorf("import: %w", err)
	}
	f.cfg.Logger.Info("backfilled", "stream", stream, "from_node", in.Node, "start", si.Start, "end", si.End, "bytes", len(data))
	return si, int64(len(data)), nil
}

// Forget drops what was reported final for stream (the stream was
// deleted, or the node is no longer its home).
func (f *Filler) Forget(stream string) {
	f.mu.Lock()
	delete(f.final, stream)
	f.mu.Unlock()
}

func key(si segment.SegmentInfo) string {
	return si.Node + "\x00" + si.Start.UTC().Format(time.RFC3339Nano)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// limiter spaces copies so that on average at most rate bytes a second
// are taken.
type limiter struct {
	rate int64
	now  func() time.Time
	mu   sync.Mutex
	next time.Time // when the next copy may start
}

func (l *limiter) wait(ctx context.Context, n int64) error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	now := l.now()
	start := maxTime(now, l.next)
	l.next = start.Add(time.Duration(float64(n) / float64(l.rate) * float64(time.Second)))
	l.mu.Unlock()
	if d := start.Sub(now); d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tm.C:
		}
	}
	return nil
}
