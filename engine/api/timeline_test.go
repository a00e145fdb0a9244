package api

import (
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/segment"
)

func TestBuildTimeline(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	segs := []segment.SegmentInfo{
		{Start: at(0), End: at(10)},
		{Start: at(10), End: at(20)},
		{Start: at(30), End: at(40)},
		{Start: at(35), End: at(50), Origin: segment.OriginBackfill},
	}
	// An outage of 22..28 inside the 20..30 hole: SYSTEM 20..22, SOURCE
	// 22..28, SYSTEM 28..30.
	tl := BuildTimeline(segs, []segment.Interval{{Start: at(22), End: at(28)}}, "n1", at(-5), at(55))
	type iv struct {
		s, e float64
		k    string
	}
	var got []iv
	sec := func(x time.Time) float64 { return x.Sub(t0).Seconds() }
	for _, c := range tl.Coverage {
		got = append(got, iv{sec(c.Start), sec(c.End), c.Origin.String()})
	}
	for _, g := range tl.Gaps {
		got = append(got, iv{sec(g.Start), sec(g.End), g.Kind.String()})
	}
	want := []iv{{0, 20, "live"}, {30, 40, "live"}, {40, 50, "backfill"},
		{-5, 0, "GAP_KIND_SYSTEM"}, {20, 22, "GAP_KIND_SYSTEM"}, {22, 28, "GAP_KIND_SOURCE"}, {28, 30, "GAP_KIND_SYSTEM"}, {50, 55, "GAP_KIND_SYSTEM"}}
	if len(got) != len(want) {
		t.Fatalf("timeline %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("timeline %v, want %v", got, want)
		}
	}
	// The tiling is exact: coverage + gaps = the range.
	var total time.Duration
	for _, c := range tl.Coverage {
		total += c.Duration()
	}
	for _, g := range tl.Gaps {
		total += g.Duration()
	}
	if total != 60*time.Second {
		t.Fatalf("coverage + gaps = %v, want 60s", total)
	}
}
