// Package replica keeps a node's rolling buffer: the segments it records
// as a replica (class buffer) for the last Window, under a disk Budget.
// Eviction removes the oldest segments first, across all streams, and
// never touches a segment being written, so live recording is never
// blocked by it; it costs time in proportion to what it evicts and to
// what was recorded since the last call, not to what is held.
//
// A Buffer is driven by calls: Enforce (the node's retention loop calls
// it every minute or so, a test calls it with any clock), Segments (the
// buffer of one stream over a range) and Promote (a buffer segment
// becomes archive, without a copy, when the node is the stream's home).
//
// What is held is learned from the segment index: Enforce reads each
// stream's entries from where the previous call stopped, so a buffer
// that was just opened after a crash reads its streams once, and the
// index and the files stay the store's business (they are consistent
// across crashes there).
package replica

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/understudy-nvr/understudy/segment"
)

// DefaultWindow is how far back a buffer reaches when the node's
// configuration says nothing.
const DefaultWindow = 6 * time.Hour

// Policy is what a node's buffer holds.
type Policy struct {
	// Window is how long a buffer segment is kept after it ended
	// (DefaultWindow when 0).
	Window time.Duration
	// Budget bounds the bytes the buffer holds on disk; 0 is no bound.
	// When the window needs more, the oldest segments go early.
	Budget int64
}

// Report is what one Enforce did and what the buffer holds after it.
type Report struct {
	// Evicted segments and bytes in this call, of which Early were
	// inside the window (the budget made them go).
	Evicted, Early int
	Bytes          int64
	// Held is the bytes held after the call, in HeldSegments segments.
	Held         int64
	HeldSegments int
	// Streams is the number of streams with buffer segments.
	Streams int
	// Reach is how far back the buffer reaches: now minus the start of
	// its oldest segment, at most the window (less when the budget evicted
	// early, or when nothing was buffered that long ago). Zero when the
	// buffer is empty.
	Reach time.Duration
	// OverBudget is set when the budget forced eviction inside the window.
	OverBudget bool
}

// seg is one closed buffer segment held.
type seg struct {
	start, end time.Time
	bytes      int64
	path       string
}

// stream is what the buffer holds of one stream, oldest first.
type stream struct {
	held []seg
	// scanned is where the next read of the index starts: the start of
	// the first segment not yet seen closed.
	scanned time.Time
}

// Buffer is one node's rolling buffer. It is safe for concurrent use.
type Buffer struct {
	store *segment.Store

	mu      sync.Mutex
	policy  Policy
	streams map[string]*stream
	held    int64
	// evicted and early count since New, for metrics.
	evictedSegs, evictedBytes, earlySegs uint64
	last                                 Report
}

// New returns the buffer of store.
func New(store *segment.Store, p Policy) (*Buffer, error) {
	if store == nil {
		return nil, errors.New("replica: a store is required")
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return &Buffer{store: store, policy: p.withDefaults(), streams: map[string]*stream{}}, nil
}

func (p Policy) check() error {
	if p.Window < 0 {
		return fmt.Errorf("replica: window %v is negative", p.Window)
	}
	if p.Budget < 0 {
		return fmt.Errorf("replica: budget %d bytes is negative", p.Budget)
	}
	return nil
}

func (p Policy) withDefaults() Policy {
	p.Window = cmp.Or(p.Window, DefaultWindow)
	return p
}

// Policy returns what the buffer holds.
func (b *Buffer) Policy() Policy {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.policy
}

// SetPolicy changes the window and the budget; the next Enforce applies
// them.
func (b *Buffer) SetPolicy(p Policy) error {
	if err := p.check(); err != nil {
		return err
	}
	b.mu.Lock()
	b.policy = p.withDefaults()
	b.mu.Unlock()
	return nil
}

// Segments returns the buffer segments of stream overlapping [from, to),
// the one being written included, ordered by start.
func (b *Buffer) Segments(streamID string, from, to time.Time) ([]segment.SegmentInfo, error) {
	all, err := b.store.Segments(streamID, from, to)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, si := range all {
		if si.Class == segment.ClassBuffer {
			out = append(out, si)
		}
	}
	return out, nil
}

// Promote makes a closed buffer segment part of the archive without a
// copy (segment.Store.Reclassify): its bytes are verified first, and it
// leaves the buffer's accounting.
func (b *Buffer) Promote(si segment.SegmentInfo) (segment.SegmentInfo, error) {
	if si.Class != segment.ClassBuffer {
		return segment.SegmentInfo{}, fmt.Errorf("replica: %s is not a buffer segment", si.Path)
	}
	out, err := b.store.Reclassify(si, segment.ClassArchive)
	if err != nil {
		return out, err
	}
	b.mu.Lock()
	if st := b.streams[si.Stream]; st != nil {
		if i := slices.IndexFunc(st.held, func(g seg) bool { return g.path == si.Path }); i >= 0 {
			b.held -= st.held[i].bytes
			st.held = slices.Delete(st.held, i, i+1)
		}
	}
	b.mu.Unlock()
	return out, nil
}

// Last returns the report of the last Enforce.
func (b *Buffer) Last() Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// Totals returns the segments and bytes evicted since New, and how many
// of those segments went early (inside the window, for the budget).
func (b *Buffer) Totals() (segments, bytes, early uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.evictedSegs, b.evictedBytes, b.earlySegs
}

// Enforce evicts what the window and the budget no longer allow at now:
// every buffer segment that ended more than Window ago, then, while the
// buffer holds more than Budget, the segment that ended first across all
// streams. Segments being written are never evicted (a budget smaller
// than what is being written is overrun, never enforced by stopping a
// recording). An error of one stream does not stop the others; the
// errors are joined.
func (b *Buffer) Enforce(now time.Time) (Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	ids, err := b.store.Streams()
	if err != nil {
		return b.last, fmt.Errorf("replica: %w", err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
		if err := b.scan(id); err != nil {
			errs = append(errs, fmt.Errorf("replica: stream %s: %w", id, err))
		}
	}
	for id, st := range b.streams {
		if !seen[id] {
			b.held -= st.sum()
			delete(b.streams, id)
		}
	}
	var rep Report
	cut := now.Add(-b.policy.Window)
	for id, st := range b.streams {
		n := 0
		for n < len(st.held) && !st.held[n].end.After(cut) {
			n++
		}
		if n > 0 {
			errs = append(errs, b.evict(id, st, n, false, &rep)...)
		}
	}
	if b.policy.Budget > 0 && b.held > b.policy.Budget {
		errs = append(errs, b.evictForBudget(&rep)...)
	}
	rep.Held = b.held
	var oldest time.Time
	for _, st := range b.streams {
		if len(st.held) == 0 {
			continue
		}
		rep.Streams++
		rep.HeldSegments += len(st.held)
		if oldest.IsZero() || st.held[0].start.Before(oldest) {
			oldest = st.held[0].start
		}
	}
	if !oldest.IsZero() {
		rep.Reach = min(max(now.Sub(oldest), 0), b.policy.Window)
	}
	b.last = rep
	return rep, errors.Join(errs...)
}

// scan adds the buffer segments of id closed since the last scan.
func (b *Buffer) scan(id string) error {
	st := b.streams[id]
	if st == nil {
		st = &stream{}
		b.streams[id] = st
	}
	segs, err := b.store.Segments(id, st.scanned, time.Time{})
	if err != nil {
		return err
	}
	var lastStart time.Time
	if n := len(st.held); n > 0 {
		lastStart = st.held[n-1].start
	}
	next := time.Time{}
	for _, si := range segs {
		if si.Checksum == "" { // being written: seen again once closed
			if next.IsZero() {
				next = si.Start
			}
			continue
		}
		if si.Class != segment.ClassBuffer || si.Start.Before(st.scanned) {
			continue
		}
		if len(st.held) > 0 && !si.Start.After(lastStart) && slices.ContainsFunc(st.held, func(g seg) bool { return g.path == si.Path }) {
			continue
		}
		st.held = append(st.held, seg{si.Start, si.End, si.Bytes, si.Path})
		b.held += si.Bytes
		lastStart = si.Start
	}
	slices.SortFunc(st.held, func(a, c seg) int { return a.start.Compare(c.start) })
	switch {
	case !next.IsZero():
		st.scanned = next
	case len(segs) > 0:
		// Past everything seen; a segment starting exactly there again is
		// recognised by its path.
		st.scanned = segs[len(segs)-1].Start
	}
	return nil
}

// evict removes the first n held segments of id from the store.
func (b *Buffer) evict(id string, st *stream, n int, early bool, rep *Report) []error {
	from, before := st.held[0].start, st.held[n-1].end
	d, err := b.store.DeleteRange(id, segment.ClassBuffer, from, before)
	if err != nil {
		return []error{fmt.Errorf("replica: evict %s: %w", id, err)}
	}
	for _, g := range st.held[:n] {
		b.held -= g.bytes
	}
	st.held = slices.Delete(st.held, 0, n)
	rep.Evicted += d.Segments
	rep.Bytes += d.Bytes
	b.evictedSegs += uint64(d.Segments)
	b.evictedBytes += uint64(d.Bytes)
	if early {
		rep.Early += d.Segments
		b.earlySegs += uint64(d.Segments)
	}
	return nil
}

// evictForBudget evicts the oldest-ending segments across streams until
// the buffer fits its budget: the streams' fronts in a heap, so the cost
// is the number evicted times log(streams).
func (b *Buffer) evictForBudget(rep *Report) []error {
	rep.OverBudget = true
	h := &fronts{}
	for id, st := range b.streams {
		if len(st.held) > 0 {
			h.items = append(h.items, front{id, st, 0})
		}
	}
	heap.Init(h)
	var errs []error
	count := map[string]int{}
	over := b.held - b.policy.Budget
	for over > 0 && h.Len() > 0 {
		f := heap.Pop(h).(front)
		count[f.id]++
		over -= f.st.held[f.i].bytes
		if f.i+1 < len(f.st.held) {
			heap.Push(h, front{f.id, f.st, f.i + 1})
		}
	}
	for id, n := range count {
		errs = append(errs, b.evict(id, b.streams[id], n, true, rep)...)
	}
	return errs
}

func (st *stream) sum() (n int64) {
	for _, g := range st.held {
		n += g.bytes
	}
	return n
}

type front struct {
	id string
	st *stream
	i  int
}

type fronts struct{ items []front }

func (h *fronts) Len() int { return len(h.items) }
func (h *fronts) Less(i, j int) bool {
	a, c := h.items[i], h.items[j]
	return a.st.held[a.i].end.Before(c.st.held[c.i].end)
}
func (h *fronts) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *fronts) Push(x any)    { h.items = append(h.items, x.(front)) }
func (h *fronts) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
