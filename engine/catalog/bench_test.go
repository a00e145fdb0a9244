package catalog

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func benchCatalog(b *testing.B, db *pebble.DB, node string) *Catalog {
	b.Helper()
	c, err := Open(Config{DB: db, NodeID: node, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkCreate measures a synced catalog write on real files.
func BenchmarkCreate(b *testing.B) {
	db, err := OpenDB(b.TempDir(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c := benchCatalog(b, db, "node-a")
	i := 0
	for b.Loop() {
		if _, err := c.Create(streamNamed(fmt.Sprintf("cam-%08d", i))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkEncodeDecode measures one entry's round trip through the
// binary encoding.
func BenchmarkEncodeDecode(b *testing.B) {
	e := liveEntry()
	b.ReportMetric(float64(len(EncodeEntry(e))), "bytes/entry")
	for b.Loop() {
		if _, err := DecodeEntry(EncodeEntry(e)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen10k measures loading a catalog of 10,000 streams.
func BenchmarkOpen10k(b *testing.B) {
	db, err := OpenDB(b.TempDir(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	src := benchCatalog(b, db, "node-a")
	batch := db.NewBatch()
	for i := range 10000 {
		e := liveEntry()
		e.ID = fmt.Sprintf("cam-%05d", i)
		e.Stream.ID = e.ID
		e.Version.Logical = uint32(i)
		if err := batch.Set([]byte(src.key(e.ID)), EncodeEntry(e), nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c := benchCatalog(b, db, "node-a")
		if n := len(c.Entries()); n != 10000 {
			b.Fatalf("%d entries", n)
		}
	}
}
