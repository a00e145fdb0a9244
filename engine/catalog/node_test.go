package catalog

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestNodeRegistry: a node's record is written once per change, kept
// apart from the streams, survives a reopen, replicates by Merge and is
// forgotten by a tombstone that wins over the older record.
func TestNodeRegistry(t *testing.T) {
	a, clk, db := newTestCatalog(t, "a")
	if _, err := a.Create(streamNamed("cam-1")); err != nil {
		t.Fatal(err)
	}
	r := NodeRecord{ID: "node-1", Domain: "zone=z0/host=h1", Weight: 2, State: "active"}
	if w, err := a.RegisterNode(r); err != nil || !w {
		t.Fatalf("RegisterNode = %v, %v; want a write", w, err)
	}
	if w, err := a.RegisterNode(r); err != nil || w {
		t.Fatalf("RegisterNode of the same record = %v, %v; want no write", w, err)
	}
	clk.Advance(time.Millisecond)
	r.Weight = 4
	if w, err := a.RegisterNode(r); err != nil || !w {
		t.Fatalf("RegisterNode of a new weight = %v, %v; want a write", w, err)
	}
	if _, err := a.RegisterNode(NodeRecord{ID: "bad", Domain: "zone=z0", Weight: 1, State: "failed"}); err == nil {
		t.Error("RegisterNode accepted state failed")
	}
	if got := a.Nodes(); !slices.Equal(got, []NodeRecord{r}) {
		t.Fatalf("Nodes = %v, want [%v]", got, r)
	}
	// The stream methods do not see node entries.
	list, _, err := a.List(0, "")
	if err != nil || len(list) != 1 || list[0].ID != "cam-1" {
		t.Fatalf("List = %v, %v; want cam-1 only", list, err)
	}
	if en := a.Enabled(); len(en) != 1 || en[0].ID != "cam-1" {
		t.Fatalf("Enabled = %v, want cam-1 only", en)
	}
	if _, err := a.Get(NodeEntryID("node-1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a node entry = %v, want ErrNotFound", err)
	}
	// Every entry encodes and decodes to itself.
	for _, e := range a.Entries() {
		d, err := DecodeEntry(EncodeEntry(e))
		if err != nil || d.String() != e.String() || d.Node != e.Node {
			t.Fatalf("round trip of %v = %v, %v", e, d, err)
		}
	}
	// Replication: another catalog merges the entries.
	b, _, _ := newTestCatalog(t, "b")
	for _, e := range a.Entries() {
		if _, err := b.Merge(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Nodes(); !slices.Equal(got, []NodeRecord{r}) {
		t.Fatalf("merged Nodes = %v", got)
	}
	// Forget on b; the tombstone wins on a.
	clk.Advance(time.Millisecond)
	if err := b.ForgetNode("node-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.ForgetNode("node-1"); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("second ForgetNode = %v, want ErrNodeNotFound", err)
	}
	for _, e := range b.Entries() {
		if _, err := a.Merge(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Nodes(); len(got) != 0 {
		t.Fatalf("Nodes after forget = %v", got)
	}
	// A reopened catalog reads the registry back.
	clk.Advance(time.Millisecond)
	if _, err := a.RegisterNode(r); err != nil {
		t.Fatal(err)
	}
	a2 := openCatalog(t, db, "catalog/", "a", clk)
	if got := a2.Nodes(); !slices.Equal(got, []NodeRecord{r}) {
		t.Fatalf("reopened Nodes = %v", got)
	}
}

// TestNodeEntryRejected: malformed node entries are refused by Merge.
func TestNodeEntryRejected(t *testing.T) {
	c, _, _ := newTestCatalog(t, "a")
	v := Version{WallMS: t0.UnixMilli(), Node: "x"}
	good := NodeRecord{ID: "n1", Domain: "host=h1", Weight: 1, State: "active"}
	for name, e := range map[string]Entry{
		"id mismatch":         {ID: NodeEntryID("n2"), Version: v, Node: good},
		"zero weight":         {ID: NodeEntryID("n1"), Version: v, Node: NodeRecord{ID: "n1", Domain: "host=h1", State: "active"}},
		"no domain":           {ID: NodeEntryID("n1"), Version: v, Node: NodeRecord{ID: "n1", Weight: 1, State: "active"}},
		"stream with node":    {ID: "cam", Version: v, Stream: streamNamed("cam"), Node: good},
		"tombstone with node": {ID: NodeEntryID("n1"), Version: v, Deleted: true, Node: good},
	} {
		if _, err := c.Merge(e); err == nil {
			t.Errorf("%s: merged", name)
		}
	}
}
