package catalog_test

import (
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/understudy-nvr/understudy/engine/catalog"
)

// A node opens its control DB once, keeps its catalog under a prefix, and
// hands the recorder the URL with credentials while everything else sees
// the redacted stream.
func Example() {
	dir, err := os.MkdirTemp("", "catalog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := catalog.OpenDB(dir, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	cat, err := catalog.Open(catalog.Config{DB: db, NodeID: "node-a", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	s, err := cat.Create(catalog.Stream{ID: "garage", URL: "rtsp://admin:secret@192.0.2.7/ch1", Enabled: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.URL, s.Replicas, s.ArchiveRetention)
	fmt.Println(s.RecordingURL())
	_, err = cat.Create(catalog.Stream{ID: "porch", URL: "http://192.0.2.8/"})
	fmt.Println(err)
	// Output:
	// rtsp://192.0.2.7/ch1 2 720h0m0s
	// rtsp://admin:secret@192.0.2.7/ch1
	// url: scheme must be rtsp or rtsps
}
