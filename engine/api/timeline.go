package api

import (
	"cmp"
	"slices"
	"time"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/segment"
)

// Timeline is the coverage and the gaps of one stream over [start, end),
// tiling it exactly.
type Timeline struct {
	Coverage []TimelineInterval
	Gaps     []TimelineInterval
}

// TimelineInterval is one coverage interval or gap of a Timeline.
type TimelineInterval struct {
	segment.Interval
	Origin segment.Origin       // coverage only
	Kind   understudyv1.GapKind // gaps only
	Nodes  []string             // coverage only
}

// BuildTimeline computes the timeline of [start, end) from the segments
// held (by any node: SegmentInfo.Node, node when it is empty) and the
// recorded source outages. Each coverage interval lists the nodes that hold
// media for all of it: those holding it live when any does (ORIGIN_LIVE),
// else those holding a backfilled copy. Every hole is a gap, SOURCE where
// it overlaps a source outage and SYSTEM elsewhere (a gap is split at
// outage boundaries).
func BuildTimeline(segs []segment.SegmentInfo, outages []segment.Interval, node string, start, end time.Time) Timeline {
	live := map[string][]segment.Interval{}
	bf := map[string][]segment.Interval{}
	for _, si := range segs {
		nd := cmp.Or(si.Node, node)
		if si.Origin == segment.OriginBackfill {
			bf[nd] = append(bf[nd], si.Interval())
		} else {
			live[nd] = append(live[nd], si.Interval())
		}
	}
	var points []time.Time
	var all []segment.Interval
	for _, m := range []map[string][]segment.Interval{live, bf} {
		for nd, ivs := range m {
			m[nd] = segment.Clip(segment.Merge(ivs), start, end)
			for _, iv := range m[nd] {
				points = append(points, iv.Start, iv.End)
				all = append(all, iv)
			}
		}
	}
	slices.SortFunc(points, func(x, y time.Time) int { return x.Compare(y) })
	points = slices.CompactFunc(points, func(x, y time.Time) bool { return x.Equal(y) })
	holders := func(m map[string][]segment.Interval, at time.Time) []string {
		var out []string
		for nd, ivs := range m {
			i, _ := slices.BinarySearchFunc(ivs, at, func(iv segment.Interval, t time.Time) int {
				if !iv.End.After(t) {
					return -1
				}
				if iv.Start.After(t) {
					return 1
				}
				return 0
			})
			if i < len(ivs) && !ivs[i].Start.After(at) && ivs[i].End.After(at) {
				out = append(out, nd)
			}
		}
		slices.Sort(out)
		return out
	}
	var tl Timeline
	for i := 0; i+1 < len(points); i++ {
		iv := segment.Interval{Start: points[i], End: points[i+1]}
		origin, nodes := segment.OriginLive, holders(live, iv.Start)
		if len(nodes) == 0 {
			origin, nodes = segment.OriginBackfill, holders(bf, iv.Start)
		}
		if len(nodes) == 0 {
			continue
		}
		if k := len(tl.Coverage) - 1; k >= 0 && tl.Coverage[k].End.Equal(iv.Start) && tl.Coverage[k].Origin == origin && slices.Equal(tl.Coverage[k].Nodes, nodes) {
			tl.Coverage[k].End = iv.End
			continue
		}
		tl.Coverage = append(tl.Coverage, TimelineInterval{Interval: iv, Origin: origin, Nodes: nodes})
	}
	outages = segment.Merge(outages)
	for _, g := range segment.Subtract(segment.Interval{Start: start, End: end}, segment.Merge(all)) {
		var src []segment.Interval
		for _, o := range outages {
			s, e := maxTime(g.Start, o.Start), minTime(g.End, o.End)
			if e.After(s) {
				src = append(src, segment.Interval{Start: s, End: e})
			}
		}
		var parts []TimelineInterval
		for _, iv := range src {
			parts = append(parts, TimelineInterval{Interval: iv, Kind: understudyv1.GapKind_GAP_KIND_SOURCE})
		}
		for _, iv := range segment.Subtract(g, src) {
			parts = append(parts, TimelineInterval{Interval: iv, Kind: understudyv1.GapKind_GAP_KIND_SYSTEM})
		}
		slices.SortFunc(parts, func(x, y TimelineInterval) int { return x.Start.Compare(y.Start) })
		tl.Gaps = append(tl.Gaps, parts...)
	}
	return tl
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
