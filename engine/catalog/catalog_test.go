package catalog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// clock is an injectable wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func openTestDB(t *testing.T, dir string) *pebble.DB {
	t.Helper()
	db, err := OpenDB(dir, nil, nil)
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	return db
}

func openCatalog(t *testing.T, db *pebble.DB, prefix, node string, clk *clock) *Catalog {
	t.Helper()
	c, err := Open(Config{DB: db, Prefix: prefix, NodeID: node, Now: clk.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

// newTestCatalog opens a catalog on a fresh DB with real files.
func newTestCatalog(t *testing.T, node string) (*Catalog, *clock, *pebble.DB) {
	t.Helper()
	db := openTestDB(t, t.TempDir())
	t.Cleanup(func() { _ = db.Close() })
	clk := newClock()
	return openCatalog(t, db, "catalog/", node, clk), clk, db
}

func streamNamed(id string) Stream {
	s := validStream()
	s.ID = id
	return s
}

// storedKeys lists the keys under prefix in the DB.
func storedKeys(t *testing.T, db *pebble.DB, prefix string) []string {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd([]byte(prefix))})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, string(it.Key()))
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestOpenConfig(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no db", Config{NodeID: "n"}},
		{"no node", Config{DB: db}},
		{"bad node", Config{DB: db, NodeID: "a\nb"}},
		{"negative ttl", Config{DB: db, NodeID: "n", TombstoneTTL: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.cfg); err == nil {
				t.Fatal("Open succeeded")
			}
		})
	}
	var cfg Config
	cfg.EnsureDefaults()
	if cfg.Prefix != "catalog/" || cfg.TombstoneTTL != 24*time.Hour || cfg.Now == nil || cfg.Logger == nil {
		t.Fatalf("EnsureDefaults: %+v", cfg)
	}
}

func TestCreateGetUpdateDelete(t *testing.T) {
	c, clk, db := newTestCatalog(t, "node-a")

	in := streamNamed("cam-1")
	in.URL = "rtsp://admin:pw@cam/x"
	in.Replicas, in.ArchiveRetention = 0, 0 // defaults
	got, err := c.Create(in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if got.URL != "rtsp://cam/x" || got.Username != "admin" || got.Password != "pw" {
		t.Fatalf("credentials not normalized: %s %q %q", got.URL, got.Username, got.Password)
	}
	if got.Replicas != DefaultReplicas || got.ArchiveRetention != DefaultArchiveRetention {
		t.Fatalf("defaults not applied: %v", got)
	}
	if !got.CreateTime.Equal(t0) || !got.UpdateTime.Equal(t0) {
		t.Fatalf("times: %v", got)
	}
	if g, err := c.Get("cam-1"); err != nil || !reflect.DeepEqual(g, got) {
		t.Fatalf("Get = %v, %v; want %v", g, err, got)
	}
	// Get returns a copy: changing it changes nothing stored.
	g, _ := c.Get("cam-1")
	g.Labels["site"] = "changed"
	if g2, _ := c.Get("cam-1"); g2.Labels["site"] != "garage" {
		t.Fatal("Get aliases the stored labels")
	}

	if _, err := c.Create(streamNamed("cam-1")); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second Create: %v, want ErrAlreadyExists", err)
	}
	if _, err := c.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}

	clk.Advance(time.Second)
	up, err := c.Update("cam-1", func(s *Stream) error {
		s.Replicas = 3
		s.Labels["new"] = "x"
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if up.Replicas != 3 || up.Labels["new"] != "x" || !up.CreateTime.Equal(t0) || !up.UpdateTime.Equal(t0.Add(time.Second)) {
		t.Fatalf("Update result: %v", up)
	}
	if up.Username != "admin" {
		t.Fatal("Update lost the credentials")
	}

	// Failed updates change nothing and do not notify.
	before := c.Entries()
	ch, cancel := c.Watch()
	defer cancel()
	failures := []struct {
		name  string
		apply func(*Stream) error
		field string
	}{
		{"apply error", func(s *Stream) error { s.Replicas = 4; return errors.New("no") }, ""},
		{"invalid", func(s *Stream) error { s.Replicas = 9; return nil }, "replicas"},
		{"bad label", func(s *Stream) error { s.Labels["BAD"] = "x"; return nil }, "labels"},
		{"id change", func(s *Stream) error { s.ID = "cam-2"; return nil }, "id"},
		{"bad url", func(s *Stream) error { s.URL = "http://x"; return nil }, "url"},
	}
	for _, f := range failures {
		_, err := c.Update("cam-1", f.apply)
		if err == nil {
			t.Fatalf("%s: Update succeeded", f.name)
		}
		var fe *FieldError
		if f.field != "" && (!errors.As(err, &fe) || fe.Field != f.field) {
			t.Fatalf("%s: err = %v, want field %s", f.name, err, f.field)
		}
	}
	if _, err := c.Update("nope", func(*Stream) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update missing: %v", err)
	}
	if after := c.Entries(); !reflect.DeepEqual(after, before) {
		t.Fatalf("failed updates changed the catalog")
	}
	select {
	case <-ch:
		t.Fatal("failed writes notified watchers")
	default:
	}

	// Credentials given in a new URL replace the old ones.
	up, err = c.Update("cam-1", func(s *Stream) error { s.URL = "rtsp://root:toor@cam2/y"; return nil })
	if err != nil || up.Username != "root" || up.Password != "toor" || up.URL != "rtsp://cam2/y" {
		t.Fatalf("Update with URL credentials: %v %v", up, err)
	}

	if err := c.Delete("cam-1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.Get("cam-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := c.Delete("cam-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := c.Update("cam-1", func(*Stream) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update after Delete: %v", err)
	}
	// The tombstone stays (for replication) and is stored.
	if es := c.Entries(); len(es) != 1 || !es[0].Deleted {
		t.Fatalf("Entries after Delete: %v", es)
	}
	// Re-creating over a tombstone works and orders after it.
	tomb := c.Entries()[0]
	re, err := c.Create(streamNamed("cam-1"))
	if err != nil {
		t.Fatalf("Create over tombstone: %v", err)
	}
	if es := c.Entries(); es[0].Deleted || es[0].Version.Compare(tomb.Version) <= 0 || !reflect.DeepEqual(es[0].Stream, re) {
		t.Fatalf("Entries after re-create: %v", es)
	}

	// An invalid Create stores nothing.
	if _, err := c.Create(Stream{ID: "../etc", URL: "rtsp://x/"}); err == nil {
		t.Fatal("Create of an invalid stream succeeded")
	}
	if keys := storedKeys(t, db, "catalog/"); !slices.Equal(keys, []string{"catalog/cam-1"}) {
		t.Fatalf("stored keys: %q", keys)
	}
}

func TestListPagination(t *testing.T) {
	c, _, _ := newTestCatalog(t, "node-a")
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("cam-%02d", i)
		if _, err := c.Create(streamNamed(id)); err != nil {
			t.Fatal(err)
		}
		if i%4 == 1 {
			if err := c.Delete(id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want = append(want, id)
	}
	for _, size := range []int{1, 2, 3, 7, 18, 19, 0, 1000, 5000} {
		t.Run(fmt.Sprint("size ", size), func(t *testing.T) {
			var got []string
			token := ""
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("pagination does not end")
				}
				streams, next, err := c.List(size, token)
				if err != nil {
					t.Fatalf("List(%d, %q): %v", size, token, err)
				}
				limit := size
				if size == 0 {
					limit = DefaultPageSize
				}
				if len(streams) > limit {
					t.Fatalf("page of %d > %d", len(streams), limit)
				}
				for _, s := range streams {
					got = append(got, s.ID)
				}
				if next == "" {
					break
				}
				if len(streams) != limit {
					t.Fatalf("short page %d with a next token", len(streams))
				}
				token = next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("listed %q, want %q", got, want)
			}
		})
	}
	// A token past a deleted or unknown id still resumes by position.
	streams, _, err := c.List(2, base64.RawURLEncoding.EncodeToString([]byte("cam-01")))
	if err != nil || len(streams) != 2 || streams[0].ID != "cam-02" {
		t.Fatalf("List after deleted id: %v %v", streams, err)
	}
	bad := []struct {
		size  int
		token string
		field string
	}{
		{-1, "", "page_size"},
		{10, "!!!", "page_token"},
		{10, base64.RawURLEncoding.EncodeToString([]byte("../x")), "page_token"},
		{10, base64.StdEncoding.EncodeToString([]byte("cam-01")) + "=", "page_token"},
	}
	for _, b := range bad {
		_, _, err := c.List(b.size, b.token)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != b.field {
			t.Fatalf("List(%d, %q) = %v, want a %s error", b.size, b.token, err, b.field)
		}
	}
	// An empty catalog lists nothing.
	e, _, _ := newTestCatalog(t, "node-b")
	if s, next, err := e.List(0, ""); err != nil || len(s) != 0 || next != "" {
		t.Fatalf("empty List: %v %q %v", s, next, err)
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	clk := newClock()
	c := openCatalog(t, db, "catalog/", "node-a", clk)
	for _, id := range []string{"a", "b", "c", "d"} {
		s := streamNamed(id)
		s.URL = "rtsp://u:p@cam-" + id + "/x"
		if _, err := c.Create(s); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Millisecond)
	}
	if _, err := c.Update("b", func(s *Stream) error { s.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("c"); err != nil {
		t.Fatal(err)
	}
	// Another component sharing the DB under another prefix is not read.
	if err := db.Set([]byte("segments/x"), []byte("not a catalog entry"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	want := c.Entries()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTestDB(t, dir)
	defer db.Close()
	clk.Set(t0.Add(-time.Hour)) // the wall clock went backwards meanwhile
	c2 := openCatalog(t, db, "catalog/", "node-a", clk)
	if got := c2.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen:\n got %v\nwant %v", got, want)
	}
	if s, err := c2.Get("a"); err != nil || s.Password != "p" || s.URL != "rtsp://cam-a/x" {
		t.Fatalf("Get after reopen: %v %v", s, err)
	}
	if en := c2.Enabled(); len(en) != 2 || en[0].ID != "a" || en[1].ID != "d" {
		t.Fatalf("Enabled after reopen: %v", en)
	}
	// The HLC resumes past every loaded stamp despite the clock.
	if _, err := c2.Update("d", func(s *Stream) error { s.Replicas = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	var newest Version
	for _, e := range want {
		if e.Version.Compare(newest) > 0 {
			newest = e.Version
		}
	}
	if d := c2.Entries()[3]; d.ID != "d" || d.Version.Compare(newest) <= 0 {
		t.Fatalf("write after reopen stamped %v, not after %v", d.Version, newest)
	}

	// A corrupt stored value fails Open with the key named.
	if err := db.Set([]byte("catalog/zz"), []byte("garbage"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{DB: db, NodeID: "node-a", Now: clk.Now})
	if !errors.Is(err, ErrCorruptEntry) || !strings.Contains(err.Error(), `"catalog/zz"`) {
		t.Fatalf("Open over a corrupt value: %v", err)
	}
	// So does a value stored under another id's key.
	if err := db.Set([]byte("catalog/zz"), EncodeEntry(liveEntry()), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{DB: db, NodeID: "node-a", Now: clk.Now}); !errors.Is(err, ErrCorruptEntry) {
		t.Fatalf("Open over a misplaced value: %v", err)
	}
}

func TestHLC(t *testing.T) {
	clk := newClock()
	h := hlc{now: clk.Now}
	w0, l0 := h.next()
	if w0 != t0.UnixMilli() || l0 != 0 {
		t.Fatalf("first stamp %d.%d", w0, l0)
	}
	prev := Version{WallMS: w0, Logical: l0}
	step := func(what string) {
		w, l := h.next()
		v := Version{WallMS: w, Logical: l}
		if v.Compare(prev) <= 0 {
			t.Fatalf("%s: stamp %v not after %v", what, v, prev)
		}
		prev = v
	}
	step("same ms")
	step("same ms again")
	clk.Advance(-time.Minute)
	step("clock backwards")
	h.observe(t0.Add(time.Hour).UnixMilli(), 5)
	step("after remote stamp from the future")
	if prev.WallMS != t0.Add(time.Hour).UnixMilli() || prev.Logical != 6 {
		t.Fatalf("after observe: %v", prev)
	}
	h.observe(1, 1) // older: ignored
	step("after old remote stamp")
	h.logical = 1<<32 - 1
	step("logical overflow")
	if prev.Logical != 0 {
		t.Fatalf("overflow stamp %v", prev)
	}

	// The node id breaks ties between equal clock stamps.
	a := Version{WallMS: 5, Logical: 1, Node: "node-a"}
	b := Version{WallMS: 5, Logical: 1, Node: "node-b"}
	if a.Compare(b) >= 0 || b.Compare(a) <= 0 || a.Compare(a) != 0 {
		t.Fatal("node tie-break")
	}
}

// TestLWWConvergence writes concurrently on two nodes (two catalogs in one
// DB under two prefixes), then delivers each node's entries to the other
// and to fresh catalogs in many orders, with duplicates: every catalog ends
// in the same state.
func TestLWWConvergence(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	clkA, clkB := newClock(), newClock()
	clkB.Advance(-2 * time.Millisecond) // B's clock runs behind
	a := openCatalog(t, db, "a/", "node-a", clkA)
	b := openCatalog(t, db, "b/", "node-b", clkB)

	mustCreate := func(c *Catalog, id, url string) {
		s := streamNamed(id)
		s.URL = url
		if _, err := c.Create(s); err != nil {
			t.Fatal(err)
		}
	}
	// Same id created on both sides with different URLs.
	mustCreate(a, "both", "rtsp://from-a/x")
	mustCreate(b, "both", "rtsp://from-b/x")
	// Only on one side.
	mustCreate(a, "only-a", "rtsp://a/x")
	mustCreate(b, "only-b", "rtsp://b/x")
	// Created on A, then known to B, then deleted on B while A updates.
	mustCreate(a, "contested", "rtsp://a/c")
	if _, err := b.Merge(a.Entries()[1]); err != nil { // "contested"
		t.Fatal(err)
	}
	clkA.Advance(time.Millisecond)
	clkB.Advance(time.Millisecond)
	if _, err := a.Update("contested", func(s *Stream) error { s.Replicas = 4; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("contested"); err != nil {
		t.Fatal(err)
	}
	// A tie on the clock part: equal (wall, logical) broken by node id.
	clkA.Set(t0.Add(time.Second))
	clkB.Set(t0.Add(time.Second))
	mustCreate(a, "tie", "rtsp://a/t")
	mustCreate(b, "tie", "rtsp://b/t")

	ea, eb := a.Entries(), b.Entries()
	all := append(slices.Clone(ea), eb...)

	// Deliver each side's entries to the other.
	for _, e := range eb {
		if _, err := a.Merge(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range slices.Backward(ea) {
		if _, err := b.Merge(e); err != nil {
			t.Fatal(err)
		}
	}
	want := a.Entries()
	if got := b.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("A and B diverge:\nA %v\nB %v", want, got)
	}
	// The expected winners.
	winners := map[string]string{}
	for _, e := range want {
		winners[e.ID] = e.Version.Node
		if e.Deleted {
			winners[e.ID] += " deleted"
		}
	}
	wantWinners := map[string]string{
		"both":   "node-a", // A's clock is ahead
		"only-a": "node-a", "only-b": "node-b",
		"contested": "node-a", // A's update is newer than B's delete (B's clock behind)
		"tie":       "node-b", // same stamp, higher node id
	}
	if !reflect.DeepEqual(winners, wantWinners) {
		t.Fatalf("winners %v, want %v", winners, wantWinners)
	}

	// Any order, with duplicates, into fresh catalogs.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		order := append(slices.Clone(all), all[rng.IntN(len(all))], all[rng.IntN(len(all))])
		rng.Shuffle(len(order), func(x, y int) { order[x], order[y] = order[y], order[x] })
		c := openCatalog(t, db, fmt.Sprintf("fresh%d/", i), fmt.Sprintf("node-%d", i), newClock())
		for _, e := range order {
			if _, err := c.Merge(e); err != nil {
				t.Fatal(err)
			}
		}
		if got := c.Entries(); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %d diverges:\n got %v\nwant %v", i, got, want)
		}
	}
	// Merging what one already has applies nothing.
	for _, e := range want {
		if applied, err := a.Merge(e); err != nil || applied {
			t.Fatalf("re-merge of %v: applied %t err %v", e, applied, err)
		}
	}
}

func TestTombstoneOrdering(t *testing.T) {
	live := func(wall int64, node string) Entry {
		e := liveEntry()
		e.Version = Version{WallMS: wall, Node: node}
		return e
	}
	dead := func(wall int64, node string) Entry {
		return Entry{ID: "cam-1", Version: Version{WallMS: wall, Node: node}, Deleted: true}
	}
	base := t0.UnixMilli()
	tests := []struct {
		name        string
		first, then Entry
		applied     bool
		deleted     bool
	}{
		{"tombstone beats older write", dead(base+10, "n1"), live(base+5, "n2"), false, true},
		{"newer write beats tombstone", dead(base+10, "n1"), live(base+20, "n2"), true, false},
		{"tombstone replaces older write", live(base+5, "n2"), dead(base+10, "n1"), true, true},
		{"older tombstone loses", live(base+20, "n2"), dead(base+10, "n1"), false, false},
		{"tie broken by node: tombstone from higher node", live(base, "n1"), dead(base, "n2"), true, true},
		{"tie broken by node: write from lower node loses", dead(base, "n2"), live(base, "n1"), false, true},
		{"same version again", live(base, "n1"), live(base, "n1"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTestCatalog(t, "local")
			if applied, err := c.Merge(tt.first); err != nil || !applied {
				t.Fatalf("first Merge: %t %v", applied, err)
			}
			applied, err := c.Merge(tt.then)
			if err != nil || applied != tt.applied {
				t.Fatalf("second Merge: applied %t err %v, want %t", applied, err, tt.applied)
			}
			es := c.Entries()
			if len(es) != 1 || es[0].Deleted != tt.deleted {
				t.Fatalf("entries %v, want deleted=%t", es, tt.deleted)
			}
			_, err = c.Get("cam-1")
			if tt.deleted != errors.Is(err, ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
			// A local write after the merge orders after everything seen.
			if !tt.deleted {
				if err := c.Delete("cam-1"); err != nil {
					t.Fatal(err)
				}
				if v := c.Entries()[0].Version; v.Compare(tt.first.Version) <= 0 || v.Compare(tt.then.Version) <= 0 {
					t.Fatalf("local stamp %v not after merged ones", v)
				}
			}
		})
	}
}

func TestTombstoneCollection(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	clk := newClock()
	c, err := Open(Config{DB: db, NodeID: "node-a", Now: clk.Now, TombstoneTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"old", "young", "alive"} {
		if _, err := c.Create(streamNamed(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete("old"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	if err := c.Delete("young"); err != nil {
		t.Fatal(err)
	}
	ch, cancel := c.Watch()
	defer cancel()

	clk.Advance(30*time.Minute - time.Millisecond)
	if n := c.CollectTombstones(); n != 0 {
		t.Fatalf("collected %d before the TTL", n)
	}
	clk.Advance(time.Millisecond)
	if n := c.CollectTombstones(); n != 1 {
		t.Fatalf("collected %d at the TTL, want 1", n)
	}
	select {
	case <-ch:
	default:
		t.Fatal("collection did not notify")
	}
	ids := func(es []Entry) (out []string) {
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	if got := ids(c.Entries()); !slices.Equal(got, []string{"alive", "young"}) {
		t.Fatalf("entries after collection: %q", got)
	}
	// A stale tombstone arriving after the TTL for an id we do not hold is
	// not stored again.
	stale := Entry{ID: "old", Version: Version{WallMS: t0.UnixMilli(), Node: "node-z"}, Deleted: true}
	if applied, err := c.Merge(stale); err != nil || applied {
		t.Fatalf("stale tombstone: applied %t err %v", applied, err)
	}
	// But an expired tombstone still deletes an older live entry.
	old := liveEntry()
	old.ID, old.Stream.ID = "gone", "gone"
	old.Version = Version{WallMS: t0.UnixMilli() - 1, Node: "node-z"}
	if _, err := c.Merge(old); err != nil {
		t.Fatal(err)
	}
	if applied, err := c.Merge(Entry{ID: "gone", Version: Version{WallMS: t0.UnixMilli(), Node: "node-z"}, Deleted: true}); err != nil || !applied {
		t.Fatalf("expired tombstone over older write: applied %t err %v", applied, err)
	}
	if n := c.CollectTombstones(); n != 1 {
		t.Fatalf("collected %d, want 1", n)
	}
	clk.Advance(time.Hour)
	if n := c.CollectTombstones(); n != 1 {
		t.Fatalf("collected %d, want 1 (young)", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Collected tombstones are gone from disk too.
	db = openTestDB(t, dir)
	defer db.Close()
	if keys := storedKeys(t, db, "catalog/"); !slices.Equal(keys, []string{"catalog/alive"}) {
		t.Fatalf("stored keys after collection: %q", keys)
	}
}

func TestMergeRejectsInvalid(t *testing.T) {
	c, _, _ := newTestCatalog(t, "local")
	if _, err := c.Merge(liveEntry()); err != nil {
		t.Fatal(err)
	}
	before := c.Entries()
	newer := func(f func(*Entry)) Entry {
		e := liveEntry()
		e.Version.WallMS += 1000
		f(&e)
		return e
	}
	tests := map[string]Entry{
		"bad id":            newer(func(e *Entry) { e.ID, e.Stream.ID = "a/b", "a/b" }),
		"id mismatch":       newer(func(e *Entry) { e.Stream.ID = "other" }),
		"no node":           newer(func(e *Entry) { e.Version.Node = "" }),
		"zero wall":         newer(func(e *Entry) { e.Version.WallMS = 0 }),
		"invalid stream":    newer(func(e *Entry) { e.Stream.Replicas = 0 }),
		"url credentials":   newer(func(e *Entry) { e.Stream.URL = "rtsp://u:p@cam/x" }),
		"no times":          newer(func(e *Entry) { e.Stream.CreateTime = time.Time{} }),
		"tombstone payload": newer(func(e *Entry) { e.Deleted = true }),
	}
	for name, e := range tests {
		t.Run(name, func(t *testing.T) {
			if applied, err := c.Merge(e); err == nil || applied {
				t.Fatalf("Merge accepted: applied %t err %v", applied, err)
			}
			if after := c.Entries(); !reflect.DeepEqual(after, before) {
				t.Fatal("a rejected Merge changed the catalog")
			}
		})
	}
}

func TestWatch(t *testing.T) {
	c, _, _ := newTestCatalog(t, "node-a")
	ch, cancel := c.Watch()
	ch2, cancel2 := c.Watch()
	defer cancel2()
	// Several changes coalesce into one pending notification.
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.Create(streamNamed(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []<-chan struct{}{ch, ch2} {
		select {
		case <-w:
		default:
			t.Fatal("no notification")
		}
		select {
		case <-w:
			t.Fatal("notifications not coalesced")
		default:
		}
	}
	if err := c.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; !ok {
		t.Fatal("no notification for Delete")
	}
	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	if _, err := c.Update("b", func(s *Stream) error { s.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch2; !ok {
		t.Fatal("other watcher not notified after the first cancelled")
	}
	if en := c.Enabled(); len(en) != 1 || en[0].ID != "c" {
		t.Fatalf("Enabled = %v", en)
	}
}

// TestConcurrentUse runs writers, mergers, readers and a watcher at once;
// it is meant for -race, and checks the final state is consistent.
func TestConcurrentUse(t *testing.T) {
	a, _, _ := newTestCatalog(t, "node-a")
	b, _, _ := newTestCatalog(t, "node-b")
	ch, cancel := a.Watch()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-ch:
				_ = a.Enabled()
			}
		}
	})
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			for i := range 10 {
				id := fmt.Sprintf("w%d-%d", w, i)
				if _, err := a.Create(streamNamed(id)); err != nil {
					t.Error(err)
					return
				}
				if _, err := a.Update(id, func(s *Stream) error { s.Replicas = 1 + i%5; return nil }); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					if err := a.Delete(id); err != nil {
						t.Error(err)
					}
				}
				_, _, _ = a.List(5, "")
			}
		})
	}
	writers.Go(func() {
		for range 20 {
			for _, e := range a.Entries() {
				if _, err := b.Merge(e); err != nil {
					t.Error(err)
				}
			}
		}
	})
	writers.Wait()
	close(done)
	wg.Wait()
	cancel()
	for _, e := range a.Entries() {
		if _, err := b.Merge(e); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(a.Entries(), b.Entries()) {
		t.Fatal("B does not converge to A")
	}
	if n := len(a.Entries()); n != 40 {
		t.Fatalf("%d entries, want 40", n)
	}
}
