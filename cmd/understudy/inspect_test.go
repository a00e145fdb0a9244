package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/understudy-nvr/understudy/segment"
)

// record writes 5 s of LPCM audio in 2 s segments, a 1 s hole, then 2 s more.
func record(t *testing.T, dir string) time.Time {
	t.Helper()
	s, err := segment.Open(segment.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, run := range []struct{ at, n int }{{0, 250}, {300, 100}} {
		w, err := s.NewWriter(segment.WriterConfig{Stream: "cam1", SegmentDuration: 2 * time.Second,
			Tracks: []segment.Track{{ClockRate: 8000, Codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}}})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < run.n; i++ {
			ts := int64(run.at+i) * 160
			if err := w.WriteFrame(segment.Frame{PTS: ts, DTS: ts, Wall: w0.Add(time.Duration(run.at+i) * 20 * time.Millisecond),
				Random: true, Payload: make([]byte, 320)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return w0
}

func capture(t *testing.T, run func([]string) int, args ...string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	inspectOut = &buf
	defer func() { inspectOut = os.Stdout }()
	return run(args), buf.String()
}

func TestInspectCommands(t *testing.T) {
	dir := t.TempDir()
	w0 := record(t, dir)
	code, out := capture(t, runSegments, "--data-dir", dir, "--stream", "cam1", "--json")
	if code != 0 {
		t.Fatalf("segments exit %d: %s", code, out)
	}
	var res map[string][]map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("segments --json: %v\n%s", err, out)
	}
	if len(res) != 3 || len(res["segments"]) != 4 || len(res["coverage"]) != 2 || len(res["gaps"]) != 1 {
		t.Fatalf("segments --json: %s", out)
	}
	keys := []string{}
	for k := range res["segments"][0] {
		keys = append(keys, k)
	}
	if len(keys) != 7 {
		t.Errorf("segment object keys %v", keys)
	}
	if g := res["gaps"][0]; g["start"] != w0.Add(5*time.Second).Format(time.RFC3339Nano) || g["end"] != w0.Add(6*time.Second).Format(time.RFC3339Nano) {
		t.Errorf("gap %v, want 5 s .. 6 s", g)
	}
	code, out = capture(t, runSegments, "--data-dir", dir, "--stream", "cam1")
	if code != 0 || !strings.Contains(out, "4 segments") || !strings.Contains(out, "covered 7.000 s, gaps 1.000 s") {
		t.Fatalf("segments table (exit %d):\n%s", code, out)
	}
	// A range without a hole prints no empty "gaps:" heading.
	code, out = capture(t, runSegments, "--data-dir", dir, "--stream", "cam1", "--to", w0.Add(4*time.Second).Format(time.RFC3339Nano))
	if code != 0 || strings.Contains(out, "gaps:") || !strings.Contains(out, "gaps 0.000 s") {
		t.Errorf("segments over a range without gaps (exit %d):\n%s", code, out)
	}
	if code, _ := capture(t, runSegments, "--data-dir", dir, "--stream", "../etc"); code == 0 {
		t.Error("invalid stream id accepted")
	}

	clip := filepath.Join(dir, "clip.mp4")
	code, out = capture(t, runExport, "--data-dir", dir, "--stream", "cam1", "--from", w0.Add(time.Second).Format(time.RFC3339),
		"--to", w0.Add(7*time.Second).Format(time.RFC3339), "-o", clip)
	if code != 0 || !strings.Contains(out, "gap held over") {
		t.Fatalf("export exit %d: %s", code, out)
	}
	if st, err := os.Stat(clip); err != nil || st.Size() < 5*16000 {
		t.Fatalf("clip: %v", err)
	}
	code, _ = capture(t, runExport, "--data-dir", dir, "--stream", "cam1", "--from", w0.Add(time.Hour).Format(time.RFC3339),
		"--to", w0.Add(2*time.Hour).Format(time.RFC3339), "-o", clip+"2")
	if code == 0 {
		t.Error("export of an empty range succeeded")
	}

	if code, out := capture(t, runFsck, "--data-dir", dir); code != 0 || !strings.Contains(out, "consistent") {
		t.Fatalf("fsck on a clean store: exit %d: %s", code, out)
	}
	// corrupt one segment: fsck fails, --repair quarantines it, fsck passes
	var seg string
	filepath.WalkDir(filepath.Join(dir, "segments"), func(p string, d os.DirEntry, err error) error {
		if seg == "" && strings.HasSuffix(p, ".mp4") {
			seg = p
		}
		return nil
	})
	data, _ := os.ReadFile(seg)
	data[len(data)-10] ^= 0xff
	os.WriteFile(seg, data, 0o644)
	if code, out := capture(t, runFsck, "--data-dir", dir); code == 0 || !strings.Contains(out, "checksum-mismatch") {
		t.Fatalf("fsck missed corruption: exit %d: %s", code, out)
	}
	if code, out := capture(t, runFsck, "--data-dir", dir, "--repair"); code != 0 || !strings.Contains(out, "gap: stream cam1") {
		t.Fatalf("fsck --repair: exit %d: %s", code, out)
	}
	if code, out := capture(t, runFsck, "--data-dir", dir); code != 0 {
		t.Fatalf("fsck after repair: exit %d: %s", code, out)
	}
}
