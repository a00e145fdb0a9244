package segment

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recordOn records the frames of the test media (video and audio) with
// wall time in [from, to) as stream cam1 of a new store of node, in
// segments of segDur, every wall time moved by skew (the node's clock).
func recordOn(t *testing.T, node string, from, to, segDur, skew time.Duration) *Store {
	t.Helper()
	m := loadMedia(t)
	s := openTestStore(t, Options{Node: node})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: segDur})
	if err != nil {
		t.Fatal(err)
	}
	var fs []Frame
	for _, f := range m.frames(testWall0, true, 10*testFPS) {
		if d := f.Wall.Sub(testWall0); d >= from && d < to {
			f.Wall = f.Wall.Add(skew)
			fs = append(fs, f)
		}
	}
	writeAll(t, w, fs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

// remoteOf lists the segments of stores as another node sees them, each
// fetched through corrupt (nil: as they are).
func remoteOf(t *testing.T, corrupt func(SegmentInfo, []byte) []byte, stores ...*Store) []RemoteSegment {
	t.Helper()
	var out []RemoteSegment
	for _, s := range stores {
		segs, err := s.Segments("cam1", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, si := range segs {
			out = append(out, RemoteSegment{Info: si, Fetch: func(context.Context) ([]byte, error) {
				b, err := s.ReadSegment(si)
				if err == nil && corrupt != nil {
					b = corrupt(si, b)
				}
				return b, err
			}})
		}
	}
	return out
}

// videoPackets returns the sizes and DTS (seconds) of the video packets
// of an MP4 file, in file order.
func videoPackets(t *testing.T, path string) (sizes []int, dts []float64) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=size,dts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets: %v: %s", err, stderrOf(err))
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 2 {
			continue
		}
		d, _ := strconv.ParseFloat(f[0], 64)
		n, _ := strconv.Atoi(f[1])
		dts, sizes = append(dts, d), append(sizes, n)
	}
	return sizes, dts
}

// TestCutClipAcrossNodes cuts a clip that no node holds alone: n1 recorded
// the first 6 s and died, n2 (its clock 7 ms ahead, other segment
// boundaries) took over from 2 s. Through n1, and through n3 that holds
// nothing, the clip has every frame the camera sent exactly once, in
// order, with monotonic timestamps, and plays for the whole 10 s.
func TestCutClipAcrossNodes(t *testing.T) {
	m := loadMedia(t)
	n1 := recordOn(t, "n1", 0, 6*time.Second, 4*time.Second, 0)
	n2 := recordOn(t, "n2", 2*time.Second, 10*time.Second, 3*time.Second, 7*time.Millisecond)
	n3 := openTestStore(t, Options{Node: "n3"})
	var want []int
	for i := 0; i < 10*testFPS; i++ {
		want = append(want, len(m.video[i%len(m.video)]))
	}
	from, to := testWall0, testWall0.Add(10*time.Second)
	dir := t.TempDir()
	for _, tc := range []struct {
		name       string
		via        *Store
		remote     []RemoteSegment
		want       []int // video packet sizes
		wantRemote int
		gaps       int
	}{
		{"via n1", n1, remoteOf(t, nil, n2), want, 2, 0},
		{"via n3", n3, remoteOf(t, nil, n1, n2), want, 4, 0},
		// n2's 5-8 s segment arrives corrupt: it is left out and the clip
		// has the hole [6 s, 8 s) instead, and no frame twice.
		{"corrupt copy", n3, remoteOf(t, func(si SegmentInfo, b []byte) []byte {
			if si.Start.Sub(testWall0).Round(time.Second) == 5*time.Second {
				b = bytes.Clone(b)
				b[len(b)/2] ^= 0xff
			}
			return b
		}, n1, n2), append(append([]int(nil), want[:6*testFPS]...), want[8*testFPS:]...), 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.via.CutClipFrom(context.Background(), "cam1", from, to, tc.remote)
			if err != nil {
				t.Fatal(err)
			}
			info := c.Info()
			path := filepath.Join(dir, tc.name+".mp4")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Write(context.Background(), f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Release(); err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob(filepath.Join(tc.via.Dir(), "tmp", "*")); len(left) > 0 {
				t.Errorf("copies left after Release: %v", left)
			}
			if info.Remote != tc.wantRemote || len(info.Gaps) != tc.gaps {
				t.Errorf("clip of %d segments, %d of other nodes, gaps %v; want %d of other nodes, %d gaps", info.Segments, info.Remote, info.Gaps, tc.wantRemote, tc.gaps)
			}
			pr := ffprobe(t, path)
			if pr.errors != "" {
				t.Errorf("ffprobe: %s", pr.errors)
			}
			if math.Abs(pr.duration-10) > 1.0/testFPS+1e-3 {
				t.Errorf("plays %.3f s, want 10 s", pr.duration)
			}
			sizes, dts := videoPackets(t, path)
			if !equalInts(sizes, tc.want) {
				t.Errorf("video packets %d, want %d, first difference at %d", len(sizes), len(tc.want), firstDiff(sizes, tc.want))
			}
			for i := 1; i < len(dts); i++ {
				if dts[i] <= dts[i-1] {
					t.Fatalf("packet %d: dts %.4f after %.4f", i, dts[i], dts[i-1])
				}
			}
		})
	}
}

func equalInts(a, b []int) bool { return firstDiff(a, b) < 0 }

func firstDiff(a, b []int) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestChooseChain: the chain stays on one node while it can, prefers this
// node's segments on a near tie and the one reaching furthest otherwise,
// and jumps holes.
func TestChooseChain(t *testing.T) {
	at := func(s float64) time.Time { return testWall0.Add(time.Duration(s * float64(time.Second))) }
	seg := func(node string, s, e float64) *clipSeg {
		return &clipSeg{node: node, start: at(s), end: at(e), name: node + strconv.FormatFloat(s, 'f', -1, 64)}
	}
	for _, tc := range []struct {
		cands []*clipSeg
		want  string
	}{
		{[]*clipSeg{seg("a", 0, 4), seg("a", 4, 8), seg("b", 0, 10)}, "b0"},
		{[]*clipSeg{seg("me", 0, 4), seg("me", 4, 8), seg("me", 8, 10), seg("b", 0, 5)}, "me0 me4 me8"},
		{[]*clipSeg{seg("me", 0, 4), seg("b", 0, 4.5), seg("b", 4.5, 10), seg("me", 4, 6)}, "me0 me4 b4.5"},
		{[]*clipSeg{seg("a", 0, 2), seg("b", 5, 7), seg("a", 7, 10)}, "a0 b5 a7"},
		{[]*clipSeg{seg("a", 0, 6), seg("b", 2, 10)}, "a0 b2"},
	} {
		var got []string
		for _, g := range chooseChain(tc.cands, at(0), at(10), "me") {
			got = append(got, g.name)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("chain %v, want %s", got, tc.want)
		}
	}
}
