package catalog

import (
	"slices"
	"testing"
	"time"
)

// TestHoldings: a node's holding of a stream is written when it changes,
// keeps its earliest Since, is kept apart from the streams, replicates by
// Merge, survives a reopen, and is dropped by a tombstone; the holdings of
// a stream are not mixed up with those of a stream whose id it prefixes.
func TestHoldings(t *testing.T) {
	a, clk, db := newTestCatalog(t, "a")
	if _, err := a.Create(streamNamed("cam")); err != nil {
		t.Fatal(err)
	}
	since := t0.Add(-time.Hour)
	h := Holding{Stream: "cam", Node: "n1", Since: since}
	if w, err := a.SetHolding(h); err != nil || !w {
		t.Fatalf("SetHolding = %v, %v; want a write", w, err)
	}
	if w, err := a.SetHolding(h); err != nil || w {
		t.Fatalf("SetHolding of the same holding = %v, %v; want no write", w, err)
	}
	// A later Since does not move the holding forward: it only grows back.
	clk.Advance(time.Millisecond)
	if w, err := a.SetHolding(Holding{Stream: "cam", Node: "n1", Since: t0}); err != nil || w {
		t.Fatalf("SetHolding with a later since = %v, %v; want no write", w, err)
	}
	until := t0.Add(time.Minute)
	if w, err := a.SetHolding(Holding{Stream: "cam", Node: "n1", Since: t0, Until: until}); err != nil || !w {
		t.Fatalf("SetHolding with an until = %v, %v; want a write", w, err)
	}
	for _, x := range []Holding{{Stream: "cam", Node: "n2", Since: t0}, {Stream: "cam-2", Node: "n1", Since: t0}, {Stream: "cam.x", Node: "n3", Since: t0}} {
		if _, err := a.SetHolding(x); err != nil {
			t.Fatal(err)
		}
	}
	// Times are kept in whole milliseconds.
	want := []Holding{{Stream: "cam", Node: "n1", Since: holdTime(since, false), Until: holdTime(until, true)}, {Stream: "cam", Node: "n2", Since: holdTime(t0, false)}}
	if !want[0].Until.After(until) || want[0].Since.After(since) {
		t.Fatalf("holding %v does not cover [%v, %v)", want[0], since, until)
	}
	if got := a.Holdings("cam"); !slices.Equal(got, want) {
		t.Fatalf("Holdings(cam) = %v, want %v", got, want)
	}
	if got := a.HoldingsOf("n1"); len(got) != 2 || got[0].Stream != "cam" || got[1].Stream != "cam-2" {
		t.Fatalf("HoldingsOf(n1) = %v", got)
	}
	if _, err := a.SetHolding(Holding{Stream: "bad:id", Node: "n1", Since: t0}); err == nil {
		t.Error("SetHolding accepted a stream id with ':'")
	}
	if _, err := a.SetHolding(Holding{Stream: "cam", Node: "n1"}); err == nil {
		t.Error("SetHolding accepted a zero since")
	}
	// The stream methods do not see holdings.
	if list, _, err := a.List(0, ""); err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v; want cam only", list, err)
	}
	if en := a.Enabled(); len(en) != 1 {
		t.Fatalf("Enabled = %v; want cam only", en)
	}
	// Every entry encodes and decodes to itself.
	for _, e := range a.Entries() {
		d, err := DecodeEntry(EncodeEntry(e))
		if err != nil || d.String() != e.String() || d.Hold != e.Hold {
			t.Fatalf("round trip of %v = %v, %v", e, d, err)
		}
	}
	// Replication, and a tombstone that wins.
	b, _, _ := newTestCatalog(t, "b")
	for _, e := range a.Entries() {
		if _, err := b.Merge(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Holdings("cam"); !slices.Equal(got, want) {
		t.Fatalf("merged Holdings = %v, want %v", got, want)
	}
	clk.Advance(time.Millisecond)
	if err := b.DropHolding("cam", "n2"); err != nil {
		t.Fatal(err)
	}
	if err := b.DropHolding("cam", "n9"); err != nil {
		t.Fatalf("DropHolding of no holding = %v", err)
	}
	for _, e := range b.Entries() {
		if _, err := a.Merge(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Holdings("cam"); len(got) != 1 || got[0].Node != "n1" {
		t.Fatalf("Holdings after the drop = %v", got)
	}
	a2 := openCatalog(t, db, "catalog/", "a", clk)
	if got := a2.Holdings("cam"); !slices.Equal(got, want[:1]) {
		t.Fatalf("reopened Holdings = %v, want %v", got, want[:1])
	}
}

// TestHoldingOverlaps: a holding overlaps the ranges it may hold segments
// of, an open one everything from its Since.
func TestHoldingOverlaps(t *testing.T) {
	closed := Holding{Stream: "s", Node: "n", Since: t0, Until: t0.Add(time.Hour)}
	open := Holding{Stream: "s", Node: "n", Since: t0}
	for _, c := range []struct {
		h          Holding
		start, end time.Time
		want       bool
	}{
		{closed, t0.Add(-time.Hour), t0, false},
		{closed, t0.Add(-time.Hour), t0.Add(time.Second), true},
		{closed, t0.Add(time.Hour), t0.Add(2 * time.Hour), false},
		{closed, t0.Add(time.Hour - time.Second), t0.Add(2 * time.Hour), true},
		{closed, time.Time{}, time.Time{}, true},
		{open, t0.Add(24 * time.Hour), t0.Add(25 * time.Hour), true},
		{open, time.Time{}, t0, false},
	} {
		if got := c.h.Overlaps(c.start, c.end); got != c.want {
			t.Errorf("%v.Overlaps(%v, %v) = %v, want %v", c.h, c.start, c.end, got, c.want)
		}
	}
}

// TestHoldEntryRejected: malformed holding entries are refused by Merge.
func TestHoldEntryRejected(t *testing.T) {
	c, _, _ := newTestCatalog(t, "a")
	v := Version{WallMS: t0.UnixMilli(), Node: "x"}
	good := Holding{Stream: "cam", Node: "n1", Since: t0}
	for name, e := range map[string]Entry{
		"id mismatch":            {ID: HoldEntryID("cam", "n2"), Version: v, Hold: good},
		"no node in id":          {ID: HoldEntryPrefix + "cam", Version: v, Hold: good},
		"until before since":     {ID: HoldEntryID("cam", "n1"), Version: v, Hold: Holding{Stream: "cam", Node: "n1", Since: t0, Until: t0.Add(-time.Second)}},
		"stream with holding":    {ID: "cam", Version: v, Stream: streamNamed("cam"), Hold: good},
		"tombstone with holding": {ID: HoldEntryID("cam", "n1"), Version: v, Deleted: true, Hold: good},
	} {
		if _, err := c.Merge(e); err == nil {
			t.Errorf("%s: merged", name)
		}
	}
}
