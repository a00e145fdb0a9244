package engine

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/internal/testkit"
)

// TestExportMeetsRottenSegment: a playback (GET /v1/export) whose range
// holds a local segment that no longer matches its checksum is served
// from what is left, the rotten segment quarantined and its range a gap,
// rather than failing with a 500 (found by the chaos suite's disk-flip:
// the playback that found the rot failed; the next one worked).
func TestExportMeetsRottenSegment(t *testing.T) {
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25, Bitrate: 500_000})
	cfg := Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead,
		SegmentDuration: time.Second}
	n := runNode(t, cfg)
	if _, err := n.catalog.Create(catalog.Stream{ID: "cam", URL: cams.URL(0), Enabled: true}); err != nil {
		t.Fatal(err)
	}
	from := time.Now()
	var segs []string
	var starts []time.Time
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 4 segments in 30 s: %v", segs)
		}
		ss, err := n.store.Segments("cam", from.Add(-time.Minute), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) >= 4 {
			for _, s := range ss[:3] {
				segs = append(segs, s.Path)
				starts = append(starts, s.Start)
			}
			break
		}
	}
	path := filepath.Join(cfg.DataDir, filepath.FromSlash(segs[1]))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x55
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"stream": {"cam"}, "start": {starts[0].UTC().Format(time.RFC3339Nano)},
		"end": {starts[2].Add(500 * time.Millisecond).UTC().Format(time.RFC3339Nano)}}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+n.Addr()+"/v1/export?"+q.Encode(), nil)
	resp, err := client(testRead).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("export over a rotten segment: %s, %d bytes: %s", resp.Status, len(body), body)
	}
	found := false
	filepath.WalkDir(filepath.Join(cfg.DataDir, "quarantine"), func(p string, d os.DirEntry, err error) error {
		found = found || (err == nil && !d.IsDir())
		return nil
	})
	if !found {
		t.Error("the rotten segment is not in quarantine")
	}
	if ss, _ := n.store.Segments("cam", starts[1], starts[1].Add(time.Millisecond)); len(ss) != 0 && ss[0].Path == segs[1] {
		t.Errorf("the rotten segment %s is still indexed", segs[1])
	}
}
